//! What the state machine carries between steps. All camelCase JSON, so the ASL's paths are predictable.

use serde::{Deserialize, Serialize};

use crate::ids::{FunctionName, ImageDigest, RepositoryName, Version};
use crate::model::{Drift, Outcome};
use crate::spec::TargetSpec;

/// The input of an execution: from the trigger (deploy) or from an operator (either).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum ExecutionInput {
    Deploy(DeployRequest),
    Rollback(RollbackRequest),
}

/// Deploy one image (by digest) to one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeployRequest {
    pub target: FunctionName,
    pub repository: RepositoryName,
    pub image_digest: ImageDigest,
    /// A tag the image carries in ECR (checked there, never taken on trust); absent: Prepare picks the
    /// image's first tag that the target allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_tag: Option<String>,
    /// Set on a deployment started from the function's queue: who queued the image, and behind whom it waited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued: Option<QueuedStart>,
}

/// A deployment started from the queue when the one it waited behind ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueuedStart {
    /// The execution that found the function busy and queued the image.
    pub queued_by: String,
    /// The execution it waited behind, which started this one as it ended.
    pub after: String,
}

/// This execution's image waits behind the function's running deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Queued {
    /// The running execution it waits behind.
    pub behind: String,
    /// The image that waited before, which this one replaced (recorded `superseded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced: Option<crate::model::PendingImage>,
    /// What happened, for the record.
    pub why: String,
}

/// Move a function's alias back: to `to_version`, or to the version it served before the current one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollbackRequest {
    /// "rollback" when the request is an execution's whole input (Manual Rollback passes it as is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    pub function: FunctionName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_version: Option<Version>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The execution a step runs in (from the context object: `$$.Execution`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionRef {
    pub name: String,
    /// ISO 8601, as Step Functions gives it.
    #[serde(default)]
    pub start_time: String,
}

/// Prepare's input: the execution's input and the execution itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrepareInput {
    pub request: serde_json::Value,
    pub execution: ExecutionRef,
}

/// Prepare's output: everything the later steps need, read once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub target: TargetSpec,
    /// `<registry>/<repository>@sha256:...`: Lambda is always given the digest, never a tag.
    pub image_uri: String,
    pub image_digest: ImageDigest,
    /// The tag the deployment is known by: one the image carries in ECR and the target allows.
    pub image_tag: String,
    pub function_exists: bool,
    /// The version the alias served when the deployment started (what a rollback returns to).
    pub previous_version: Option<Version>,
    /// The alias already serves this image with this configuration: nothing to do.
    pub already_live: bool,
    /// A newer image already went live: deploying this one would put an older build back.
    #[serde(default)]
    pub superseded_by: Option<ImageDigest>,
    /// Why it is superseded (recorded as the execution's cause).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_why: Option<String>,
    /// When ECR received this image (ms since the epoch).
    #[serde(default)]
    pub image_pushed_at_ms: Option<i64>,
    /// A canary or linear spec that must move all traffic at once, and why (the execution role changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_at_once_why: Option<String>,
    /// Another deployment of the function is running: this image is queued behind it, nothing else done.
    #[serde(default)]
    pub queued: Option<Queued>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateAction {
    /// The function did not exist and was created with the image and configuration.
    Created,
    /// The configuration drifted and was reconciled (code follows once that update is done).
    Configuration,
    /// The code was pointed at the new image digest.
    Code,
    /// Already converged.
    None,
    /// An update was already in progress; nothing was sent.
    Waiting,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateOutput {
    pub action: UpdateAction,
    pub drift: Vec<Drift>,
    /// When this update was sent (ms since the epoch); the readiness deadline counts from here.
    pub started_at_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReadyStatus {
    Ready,
    Pending,
    Drifted,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadyOutput {
    pub status: ReadyStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// While pending: how long the state machine waits before the next look (it backs off, so a long wait
    /// stays within the history budget).
    #[serde(default)]
    pub wait_seconds: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckReadyInput {
    pub plan: Plan,
    pub update: UpdateOutput,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaseResult {
    pub name: String,
    pub latency_ms: u64,
}

/// What passed the smoke test: exactly this revision of $LATEST, which is what gets published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SmokeOutput {
    pub revision_id: String,
    pub code_sha256: String,
    pub warmup_ms: u64,
    pub cases: Vec<CaseResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanInput {
    pub plan: Plan,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishInput {
    pub plan: Plan,
    pub smoke: SmokeOutput,
    /// The execution's name, recorded in the version's description.
    pub execution: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Published {
    pub version: Version,
    pub code_sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShiftInput {
    pub plan: Plan,
    pub published: Published,
    pub execution: String,
    /// What drifted from the spec and was reconciled on the way (reported in the result).
    #[serde(default)]
    pub drift: Vec<Drift>,
}

/// The deployment's result: the alias, the version it serves, and what it served before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployed {
    pub function: FunctionName,
    pub alias: String,
    pub version: Version,
    pub previous_version: Option<Version>,
    pub image_digest: ImageDigest,
    pub image_tag: String,
    /// False when the alias already pointed at the version (a re-run).
    pub moved: bool,
    /// Configuration that had drifted from the spec (an edit in the console) and was put back.
    #[serde(default)]
    pub drift: Vec<Drift>,
}

/// A failed step as Step Functions' Catch records it: `Error` is the error name, `Cause` its payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepFailure {
    #[serde(rename = "Error")]
    pub error: String,
    #[serde(rename = "Cause", default)]
    pub cause: String,
}

impl StepFailure {
    /// The human part of the cause: a Lambda error's `errorMessage`, else the cause as given.
    pub fn message(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.cause)
            .ok()
            .and_then(|v| v.get("errorMessage").and_then(|m| m.as_str()).map(str::to_string))
            .unwrap_or_else(|| self.cause.clone())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "camelCase")]
pub enum RollbackInput {
    /// After a failed deployment: put the alias back where it was and verify it.
    Automatic {
        plan: Box<Plan>,
        error: StepFailure,
        /// The execution rolling back: it moves the alias only while it holds the function's lock.
        #[serde(default)]
        execution: Option<String>,
    },
    /// An operator's request. The rollback takes the function's lock for `execution`.
    Manual { request: RollbackRequest, execution: ExecutionRef },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolledBack {
    pub function: FunctionName,
    pub alias: String,
    pub from_version: Option<Version>,
    pub to_version: Option<Version>,
    pub verified_cases: usize,
    /// One paragraph for a human: what failed, where the alias is now, what was verified.
    pub cause: String,
}

/// What each path of the state machine hands to Finish (`$.finish`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FinishInput {
    pub outcome: Outcome,
    #[serde(default)]
    pub plan: Option<Plan>,
    #[serde(default)]
    pub deployed: Option<Deployed>,
    #[serde(default)]
    pub rollback: Option<RolledBack>,
    #[serde(default)]
    pub error: Option<StepFailure>,
    #[serde(default)]
    pub drift: Vec<Drift>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FinishRequest {
    pub finish: FinishInput,
    pub execution: ExecutionRef,
    /// The execution's own input (`$$.Execution.Input`): who or what asked for it.
    pub input: serde_json::Value,
}

/// Where a canary or linear shift stands: the alias sends `weight` percent to the candidate since
/// `stepStartedAtMs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficState {
    /// 0 for the first weight.
    pub step: usize,
    pub steps: usize,
    pub weight: u32,
    pub step_started_at_ms: i64,
    /// The baseline: the version the alias keeps serving the rest of the traffic.
    pub baseline: Version,
    pub candidate: Version,
    /// How long the Wait state waits before the next health check.
    pub wait_seconds: u32,
}

/// Shift Traffic's input: the next weight after `traffic` (the first weight when absent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficInput {
    pub plan: Plan,
    pub published: Published,
    #[serde(default)]
    pub traffic: Option<TrafficState>,
    pub execution: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthInput {
    pub plan: Plan,
    pub traffic: TrafficState,
    pub execution: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NextMove {
    /// Keep baking (or waiting for traffic): wait, then check again.
    Bake,
    /// This step passed: the next weight.
    Shift,
    /// The last step passed (or an operator promoted): all traffic to the candidate.
    Complete,
}

/// What a health check saw and decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthReport {
    pub next: NextMove,
    pub traffic: TrafficState,
    pub candidate: crate::model::VersionStats,
    pub baseline: crate::model::VersionStats,
    pub window_seconds: i64,
    /// One line for a human: the readings against the limits, or why it is waiting.
    pub verdict: String,
}

/// Provision's input: the published version, and where provisioning stands (absent the first time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProvisionInput {
    pub plan: Plan,
    pub published: Published,
    #[serde(default)]
    pub provision: Option<ProvisionState>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProvisionStatus {
    /// The spec asks for none.
    None,
    /// Allocating: wait, then ask again.
    Pending,
    Ready,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProvisionState {
    pub status: ProvisionStatus,
    pub requested: u32,
    pub allocated: u32,
    /// When the request was made (ms since the epoch): the readiness deadline counts from here.
    pub started_at_ms: i64,
    pub wait_seconds: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AcceptanceInput {
    pub plan: Plan,
    pub published: Published,
    #[serde(default)]
    pub acceptance: Option<AcceptanceState>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AcceptanceStatus {
    /// The target has no acceptance stage.
    None,
    Running,
    Passed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AcceptanceState {
    pub status: AcceptanceStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,
    pub started_at_ms: i64,
    pub wait_seconds: u32,
}
