//! The deployer's data: what AWS reports of a function, an alias, an image, a build, an alarm; the lock
//! and the queue; an execution's record and its outcome; a drifted field. Plain data, no I/O: the ports
//! (traits) read and write it, the decisions judge it, the plan carries it between steps.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{AliasName, FunctionName, ImageDigest, RepositoryName, Version};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LambdaState {
    Pending,
    Active,
    Inactive,
    Failed,
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateStatus {
    InProgress,
    Successful,
    Failed,
    /// Not reported (a function being created).
    Unknown,
}

/// The configuration fields the deployer manages, as Lambda reports them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CurrentConfig {
    pub role: String,
    pub memory_mb: u32,
    pub timeout_seconds: u32,
    pub architecture: String,
    pub ephemeral_storage_mb: u32,
    pub environment: BTreeMap<String, String>,
    pub log_format: String,
    pub application_level: Option<String>,
    pub system_level: Option<String>,
    pub log_group: Option<String>,
    /// Reserved concurrency (None: the function uses the account's unreserved pool).
    pub reserved_concurrency: Option<u32>,
}

/// A function (its $LATEST or a published version).
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionState {
    pub name: FunctionName,
    pub version: String,
    pub revision_id: String,
    pub code_sha256: String,
    pub state: LambdaState,
    pub state_reason: Option<String>,
    pub last_update: UpdateStatus,
    pub last_update_reason: Option<String>,
    pub package_type: String,
    /// The image, by digest, that Lambda resolved the function's ImageUri to (GetFunction's
    /// `Code.ResolvedImageUri`); None where the call's answer has no Code (CreateFunction, the updates).
    pub resolved_image_uri: Option<String>,
    pub config: CurrentConfig,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AliasState {
    pub name: AliasName,
    pub version: String,
    pub revision_id: String,
    pub description: String,
    /// A weighted alias's second version and its weight.
    pub additional: Option<(String, f64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub payload: Vec<u8>,
    /// Set when the function's code failed (Lambda's X-Amz-Function-Error).
    pub function_error: Option<String>,
    pub executed_version: String,
    pub latency_ms: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImageInfo {
    pub digest: ImageDigest,
    pub tags: Vec<String>,
    pub manifest_media_type: Option<String>,
    /// `<account>.dkr.ecr.<region>.amazonaws.com/<repository>`.
    pub repository_uri: String,
    /// When ECR received the push (ms since the epoch), to tell a newer image from an older one.
    pub pushed_at_ms: Option<i64>,
}

/// Provisioned concurrency on one qualifier (a version or an alias).
#[derive(Debug, Clone, PartialEq)]
pub struct Provisioned {
    pub qualifier: String,
    pub requested: u32,
    pub allocated: u32,
    /// IN_PROGRESS, READY or FAILED.
    pub status: String,
    pub reason: Option<String>,
}

/// A weighted alias: `main` takes the traffic `candidate` does not (`weight`, 0 to 1).
#[derive(Debug, Clone, PartialEq)]
pub struct Routing {
    pub main: Version,
    pub candidate: Version,
    pub weight: f64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutcome {
    Started {
        execution_arn: String,
    },
    /// An execution with this name already exists (a duplicate event): nothing new was started.
    AlreadyStarted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockOutcome {
    Acquired,
    /// Another execution holds the lock until `expires_at_ms`.
    Held {
        owner: String,
        expires_at_ms: i64,
    },
}

/// One version's invocations under an alias in a time window (CloudWatch, by `ExecutedVersion`).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionStats {
    pub invocations: u64,
    pub errors: u64,
    pub throttles: u64,
    /// The 99th percentile of Duration; None without data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlarmState {
    pub name: String,
    /// OK, ALARM or INSUFFICIENT_DATA.
    pub state: String,
    pub reason: String,
}

/// An operator's word to a running deployment (`deployctl promote` / `abort`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Command {
    /// Skip the rest of the bake: move all traffic now (the gates still judge what has been seen).
    Promote,
    /// Roll back now.
    Abort,
}

/// A pushed image waiting for the function's running deployment to end: at most one per function (the
/// newest push wins), kept on the function's lock.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingImage {
    pub repository: RepositoryName,
    pub image_digest: ImageDigest,
    pub image_tag: String,
    /// When ECR received it (ms since the epoch; ECR gives whole seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed_at_ms: Option<i64>,
    /// The execution that queued it (and ended `queued`).
    pub queued_by: String,
    pub queued_at_ms: i64,
}

/// A function's lock as it stands: who holds it until when, the image waiting behind it, and, after a
/// hand-over, the execution that handed it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockState {
    pub owner: String,
    pub expires_at_ms: i64,
    pub pending: Option<PendingImage>,
    /// Set from a hand-over until the next owner's Prepare takes the lock: who handed it on, and the image
    /// the next owner deploys (so that a retry of the hand-over can start it again).
    pub handed_over: Option<(String, PendingImage)>,
}

/// A CodeBuild build as the acceptance stage sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildState {
    pub id: String,
    /// IN_PROGRESS, SUCCEEDED, FAILED, FAULT, STOPPED or TIMED_OUT.
    pub status: String,
    /// The phase that failed, and what CodeBuild said about it.
    pub failed_phase: Option<(String, String)>,
    /// `<log group>/<log stream>` of the build's output.
    pub logs: Option<String>,
}

/// How an execution ended, as the Finish step records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Deployed,
    AlreadyLive,
    Superseded,
    Rejected,
    RolledBack,
    RollbackFailed,
    ManualRollback,
    /// Another deployment of the function was running: the image was queued behind it (the newest push
    /// waiting deploys when that one ends; an older one waiting is recorded `superseded`).
    Queued,
    /// The execution stopped (aborted, timed out, or failed outside the steps) before it recorded itself;
    /// recorded from Step Functions' status-change event.
    Abandoned,
}

impl Outcome {
    /// Whether the execution succeeds (the others end in a Fail state).
    pub fn succeeds(&self) -> bool {
        matches!(
            self,
            Outcome::Deployed | Outcome::AlreadyLive | Outcome::Superseded | Outcome::ManualRollback | Outcome::Queued
        )
    }
}

/// One execution, as it stays on record after the execution is gone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentRecord {
    pub function: FunctionName,
    pub execution: String,
    pub started_at: String,
    pub finished_at_ms: i64,
    /// "ecr-push" (the trigger), "operator" (a rollback request) or "manual" (a deploy input by hand).
    pub trigger: String,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<ImageDigest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pushed_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<Drift>,
}

/// One field that differs between the spec and the function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Drift {
    pub field: String,
    pub expected: String,
    pub actual: String,
}
