//! What the steps need from AWS, in domain terms. `deployer-aws` implements these over the SDK; the step
//! tests implement them with hand-written fakes.

use std::future::Future;

use crate::ids::{AliasName, FunctionName, ImageDigest, RepositoryName, Version};
use crate::model::{
    AlarmState, AliasState, BuildState, Command, DeploymentRecord, FunctionState, ImageInfo, Invocation, LockOutcome,
    LockState, PendingImage, Provisioned, Routing, StartOutcome, VersionStats,
};
use crate::spec::{DesiredConfig, TargetSpec};
use crate::DeployError;

pub type Result<T> = std::result::Result<T, DeployError>;

pub trait FunctionApi: Send + Sync {
    /// The function's $LATEST (`qualifier` None) or a version; None if it does not exist.
    fn get_function(
        &self,
        name: &FunctionName,
        qualifier: Option<&str>,
    ) -> impl Future<Output = Result<Option<FunctionState>>> + Send;
    fn create_function(
        &self,
        name: &FunctionName,
        image_uri: &str,
        config: &DesiredConfig,
    ) -> impl Future<Output = Result<FunctionState>> + Send;
    fn update_configuration(
        &self,
        name: &FunctionName,
        config: &DesiredConfig,
        revision_id: &str,
    ) -> impl Future<Output = Result<FunctionState>> + Send;
    fn update_code(
        &self,
        name: &FunctionName,
        image_uri: &str,
        architecture: &str,
        revision_id: &str,
    ) -> impl Future<Output = Result<FunctionState>> + Send;
    /// Publish $LATEST only if it still has this code and revision.
    fn publish_version(
        &self,
        name: &FunctionName,
        code_sha256: &str,
        revision_id: &str,
        description: &str,
    ) -> impl Future<Output = Result<Version>> + Send;
    fn get_alias(
        &self,
        name: &FunctionName,
        alias: &AliasName,
    ) -> impl Future<Output = Result<Option<AliasState>>> + Send;
    fn create_alias(
        &self,
        name: &FunctionName,
        alias: &AliasName,
        version: &Version,
        description: &str,
    ) -> impl Future<Output = Result<AliasState>> + Send;
    /// Point the alias at one version (no weights), only if it is still at `revision_id`.
    fn update_alias(
        &self,
        name: &FunctionName,
        alias: &AliasName,
        version: &Version,
        description: &str,
        revision_id: &str,
    ) -> impl Future<Output = Result<AliasState>> + Send;
    fn invoke(
        &self,
        name: &FunctionName,
        qualifier: &str,
        payload: &[u8],
    ) -> impl Future<Output = Result<Invocation>> + Send;
    /// Weighted routing: the alias stays on `routing.main` and sends `routing.weight` of its traffic to
    /// `routing.candidate`, only if it is still at `revision_id`.
    fn route_alias(
        &self,
        name: &FunctionName,
        alias: &AliasName,
        routing: &Routing,
        description: &str,
        revision_id: &str,
    ) -> impl Future<Output = Result<AliasState>> + Send;
    /// Ask for `n` provisioned concurrent executions on a published version.
    fn put_provisioned(
        &self,
        name: &FunctionName,
        version: &Version,
        n: u32,
    ) -> impl Future<Output = Result<()>> + Send;
    /// The provisioned concurrency configurations of the function's versions and aliases.
    fn list_provisioned(&self, name: &FunctionName) -> impl Future<Output = Result<Vec<Provisioned>>> + Send;
    /// Remove a qualifier's provisioned concurrency (none there is fine).
    fn delete_provisioned(&self, name: &FunctionName, qualifier: &str) -> impl Future<Output = Result<()>> + Send;
    /// Reserve `Some(n)` concurrent executions for the function, or remove the reservation (`None`).
    fn set_reserved_concurrency(
        &self,
        name: &FunctionName,
        reserved: Option<u32>,
    ) -> impl Future<Output = Result<()>> + Send;
}

pub trait ImageRegistry: Send + Sync {
    /// The image with this digest in the repository; None if it is not there.
    fn describe_image(
        &self,
        repository: &RepositoryName,
        digest: &ImageDigest,
    ) -> impl Future<Output = Result<Option<ImageInfo>>> + Send;
    /// Every tagged image in the repository.
    fn list_images(&self, repository: &RepositoryName) -> impl Future<Output = Result<Vec<ImageInfo>>> + Send;
    /// Add `tag` to the image (an existing tag on the same image is fine).
    fn tag_image(
        &self,
        repository: &RepositoryName,
        digest: &ImageDigest,
        tag: &str,
    ) -> impl Future<Output = Result<()>> + Send;
}

pub trait TargetStore: Send + Sync {
    fn get(&self, function: &FunctionName) -> impl Future<Output = Result<Option<TargetSpec>>> + Send;
    fn list(&self) -> impl Future<Output = Result<Vec<TargetSpec>>> + Send;
    fn put(&self, spec: &TargetSpec) -> impl Future<Output = Result<()>> + Send;
    fn delete(&self, function: &FunctionName) -> impl Future<Output = Result<()>> + Send;
}

pub trait Executions: Send + Sync {
    fn start(&self, name: &str, input: &str) -> impl Future<Output = Result<StartOutcome>> + Send;
}

/// What the health gates read.
pub trait Telemetry: Send + Sync {
    /// `version`'s invocations through `alias` from `start_ms` to `end_ms`.
    fn version_stats(
        &self,
        function: &FunctionName,
        alias: &AliasName,
        version: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> impl Future<Output = Result<VersionStats>> + Send;
    /// The named alarms' states; an alarm that does not exist is missing from the answer.
    fn alarms(&self, names: &[String]) -> impl Future<Output = Result<Vec<AlarmState>>> + Send;
}

/// Per function: the deployment lock, and the record of every execution (outlives the executions).
pub trait DeploymentLedger: Send + Sync {
    /// Take the function's lock for `owner` (an execution name) until `expires_at_ms`. Free, expired, or
    /// already `owner`'s (handed over to it, or its own retry): acquired; otherwise: who holds it. An image
    /// waiting behind the lock stays queued.
    fn acquire(
        &self,
        function: &FunctionName,
        owner: &str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> impl Future<Output = Result<LockOutcome>> + Send;
    /// Release the lock if `owner` holds it and no image waits behind it, or the one waiting was queued by
    /// `dropping` (which is dropped with the lock); whether it did.
    fn release(
        &self,
        function: &FunctionName,
        owner: &str,
        dropping: Option<&str>,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// The function's lock, with the image waiting behind it (None: free, and nothing waits).
    fn lock_state(&self, function: &FunctionName) -> impl Future<Output = Result<Option<LockState>>> + Send;
    /// Queue `pending` behind `holder`, only while `holder` still holds the lock (unexpired at `now_ms`) and
    /// the image waiting is still the one `replacing` names (None: nothing waits); whether it did.
    fn put_pending(
        &self,
        function: &FunctionName,
        holder: &str,
        now_ms: i64,
        pending: &PendingImage,
        replacing: Option<&str>,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// Hand the lock from `owner` to `next` (until `expires_at_ms`), taking `pending` off the queue, only if
    /// `owner` still holds it and `pending` still waits; whether it did.
    fn hand_over(
        &self,
        function: &FunctionName,
        owner: &str,
        pending: &PendingImage,
        next: &str,
        expires_at_ms: i64,
    ) -> impl Future<Output = Result<bool>> + Send;
    fn record(&self, record: &DeploymentRecord) -> impl Future<Output = Result<()>> + Send;
    /// The function's records, newest first.
    fn history(
        &self,
        function: &FunctionName,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<DeploymentRecord>>> + Send;
    /// Who holds the function's lock, and until when (None: free).
    fn holder(&self, function: &FunctionName) -> impl Future<Output = Result<Option<(String, i64)>>> + Send {
        async move { Ok(self.lock_state(function).await?.map(|l| (l.owner, l.expires_at_ms))) }
    }
    /// Leave `command` (with the operator's reason) for `execution`; its next health check acts on it.
    fn send_command(
        &self,
        function: &FunctionName,
        execution: &str,
        command: &Command,
        reason: &str,
    ) -> impl Future<Output = Result<()>> + Send;
    /// The command left for `execution`, if any.
    fn command(
        &self,
        function: &FunctionName,
        execution: &str,
    ) -> impl Future<Output = Result<Option<(Command, String)>>> + Send;
}

/// The function's log group: created if missing, its retention set as the spec says.
pub trait LogGroups: Send + Sync {
    /// The group's retention in days (None: never expires), or Err/None-group if it does not exist.
    fn retention(&self, group: &str) -> impl Future<Output = Result<Option<Option<u32>>>> + Send;
    fn create(&self, group: &str) -> impl Future<Output = Result<()>> + Send;
    fn set_retention(&self, group: &str, days: u32) -> impl Future<Output = Result<()>> + Send;
}

/// The team's integration suite, run in AWS CodeBuild against the candidate version.
pub trait Builds: Send + Sync {
    fn start(&self, project: &str, environment: &[(String, String)])
        -> impl Future<Output = Result<BuildState>> + Send;
    fn get(&self, id: &str) -> impl Future<Output = Result<Option<BuildState>>> + Send;
}
