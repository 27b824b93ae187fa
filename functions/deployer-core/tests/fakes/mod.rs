//! Hand-written fakes of every port (the eight traits of `deployer_core::ports`), and realistic fixtures: the
//! step tests' layer between the pure decisions and the end-to-end tests on local AWS.
//!
//! - [`FakeLambda`]: an in-memory Lambda. `$LATEST`, published versions and aliases each carry a RevisionId
//!   that changes on every write; the write calls enforce the RevisionId (and `PublishVersion` the CodeSha256)
//!   they are given, and refuse while an update is in progress. Invocations are answered by a behaviour per
//!   code sha (so `$LATEST` running a bad image answers wrongly while version 1 answers right), or by a queue
//!   of replies per qualifier. Every call is logged, so tests can assert what was *not* called; named calls
//!   can be made to fail, and a concurrent change can be injected just before the n-th call of a method.
//! - [`FakeStore`], [`FakeRegistry`], [`FakeExecutions`]: small in-memory stand-ins for DynamoDB, ECR and
//!   Step Functions. The registry's images carry the time ECR received them (each push a minute after the last).
//! - [`FakeLedger`]: the deployment lock and records per function, with the port's semantics: `acquire` takes
//!   a lock that is free, expired (`expires_at_ms < now_ms`, as deployer-aws's condition) or already the
//!   owner's (and then sets the new expiry; the image queued behind it stays), else answers who holds it;
//!   `release` deletes it only for its owner and only with nothing queued (or the queued image it drops);
//!   `put_pending` and `hand_over` hold only while their holder and queue do; `history` answers the newest
//!   records first. Every call is logged; named calls can be made to fail.
//!
//! The fake's errors are those deployer-aws maps Lambda's to: ResourceConflictException (an update in progress,
//! or "already exists") -> UpdateInProgress; PreconditionFailedException -> PreconditionFailed; a
//! ResourceNotFoundException on anything but a read -> AwsRefused; a CodeSha256 mismatch -> AwsRefused.
//! Reads of something missing answer `None`. Assumed: $LATEST's RevisionId also changes when an update ends.

// Shared by every test module of the binary; each uses a subset.
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use deployer_core::ids::{AliasName, FunctionName, ImageDigest, RepositoryName, Version};
use deployer_core::model::{
    AlarmState, AliasState, BuildState, Command, CurrentConfig, DeploymentRecord, FunctionState, ImageInfo, Invocation,
    LambdaState, LockOutcome, LockState, Outcome, PendingImage, Provisioned, Routing, StartOutcome, UpdateStatus,
    VersionStats,
};
use deployer_core::plan::{ExecutionRef, Plan};
use deployer_core::ports::{
    self, Builds, DeploymentLedger, Executions, FunctionApi, ImageRegistry, LogGroups, TargetStore, Telemetry,
};
use deployer_core::spec::{DesiredConfig, LogFormat, TargetSpec};
use deployer_core::DeployError;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------------------

pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";
pub const FN: &str = "ml-inference";
pub const REPO: &str = "ml-inference";
pub const REGISTRY: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
pub const EXECUTION: &str = "deploy-ml-inference-222222222222";
/// The steps' clock in the tests: 2026-11-27T12:00:00Z, in ms since the epoch.
pub const NOW_MS: i64 = 1_795_780_800_000;
/// When [`FakeRegistry::push`] received its first image (a day before [`NOW_MS`]); each push comes a minute later.
pub const FIRST_PUSH_MS: i64 = NOW_MS - 86_400_000;

/// The deployer stack's policy in these tests: `ml-` functions and roles of [`ACCOUNT`], repository
/// [`REPO`] (and `ml-batch`), any alarm.
pub fn policy() -> deployer_core::policy::StackPolicy {
    deployer_core::policy::StackPolicy {
        account: ACCOUNT.into(),
        function_prefix: "ml-".into(),
        role_prefix: "ml-".into(),
        repositories: vec![REPO.into(), "ml-batch".into()],
        alarm_prefix: String::new(),
    }
}

/// The execution a step runs in, as the context object gives it.
pub fn execution(name: &str) -> ExecutionRef {
    ExecutionRef { name: name.to_string(), start_time: "2026-11-27T11:59:58.123Z".into() }
}

/// A digest made of one repeated hex character: `digest('1')` is `sha256:111...1`.
pub fn digest(c: char) -> ImageDigest {
    ImageDigest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
}

/// The image that version 1 was built from, the candidate, and an image whose model is broken.
pub fn v1() -> ImageDigest {
    digest('1')
}
pub fn v2() -> ImageDigest {
    digest('2')
}
pub fn broken() -> ImageDigest {
    digest('b')
}

pub fn image_uri(repo: &str, d: &ImageDigest) -> String {
    format!("{REGISTRY}/{repo}@{d}")
}

pub fn version(v: &str) -> Version {
    Version::parse(v).unwrap()
}

pub fn fname(s: &str) -> FunctionName {
    FunctionName::parse(s).unwrap()
}

/// The payloads and answers of the golden smoke cases (a breast-cancer classifier).
pub const BENIGN_ROWS: [[f64; 4]; 1] = [[12.3, 14.1, 78.9, 464.1]];
pub const MALIGNANT_ROWS: [[f64; 4]; 1] = [[20.6, 29.3, 140.1, 1265.0]];

/// The target spec as a team would write it.
pub fn spec_json() -> Value {
    json!({
        "function": FN,
        "repository": REPO,
        "tagPattern": "^sha-[0-9a-f]{7,40}$",
        "alias": "live",
        "configuration": {
            "role": "arn:aws:iam::123456789012:role/ml-inference",
            "memoryMb": 1024,
            "timeoutSeconds": 15,
            "architecture": "x86_64",
            "ephemeralStorageMb": 512,
            "environment": {"MODEL_NAME": "breast-cancer", "MODEL_VERSION": "2026-11"},
            "logging": {"format": "JSON", "applicationLevel": "INFO", "systemLevel": "WARN"}
        },
        "smokeTest": {
            "latencyBudgetMs": 1000,
            "cases": [
                {"name": "golden-benign", "payload": {"rows": BENIGN_ROWS},
                 "expect": {"classes": [1], "probabilities": [[0.02, 0.98]]}, "tolerance": 1e-3},
                {"name": "golden-malignant", "payload": {"rows": MALIGNANT_ROWS},
                 "expect": {"classes": [0], "probabilities": [[0.97, 0.03]]}, "tolerance": 1e-3}
            ]
        },
        "strategy": {"type": "all-at-once"},
        "readyTimeoutSeconds": 120
    })
}

pub fn spec() -> TargetSpec {
    deployer_core::spec::parse(&spec_json().to_string()).unwrap()
}

/// The spec with `patch` merged in (objects key by key, anything else replaced).
pub fn spec_with(patch: Value) -> TargetSpec {
    let mut doc = spec_json();
    merge(&mut doc, patch);
    deployer_core::spec::parse(&doc.to_string()).unwrap()
}

pub fn merge(doc: &mut Value, patch: Value) {
    match (doc, patch) {
        (Value::Object(d), Value::Object(p)) => {
            for (k, v) in p {
                merge(d.entry(k).or_insert(Value::Null), v);
            }
        }
        (d, p) => *d = p,
    }
}

/// The plan Prepare would produce for deploying `d` (tag `sha-2222222`) to `target`.
pub fn plan(target: TargetSpec, d: ImageDigest, exists: bool, previous: Option<&str>) -> Plan {
    Plan {
        image_uri: image_uri(target.repository.as_str(), &d),
        image_digest: d,
        image_tag: "sha-2222222".into(),
        function_exists: exists,
        previous_version: previous.map(version),
        already_live: false,
        superseded_by: None,
        superseded_why: None,
        all_at_once_why: None,
        image_pushed_at_ms: None,
        queued: None,
        target,
    }
}

/// A record as Finish writes it for `execution`: `outcome`, image `d` pushed at `pushed_at_ms`, the alias
/// moved from `before` to `after`, finished at `finished_at_ms`.
pub fn record(
    execution: &str,
    outcome: Outcome,
    d: &ImageDigest,
    pushed_at_ms: i64,
    before: Option<&str>,
    after: Option<&str>,
    finished_at_ms: i64,
) -> DeploymentRecord {
    DeploymentRecord {
        function: fname(FN),
        execution: execution.to_string(),
        started_at: String::new(),
        finished_at_ms,
        trigger: "ecr-push".into(),
        outcome,
        image_digest: Some(d.clone()),
        image_tag: Some(format!("sha-{}", &d.hex()[..7])),
        image_pushed_at_ms: Some(pushed_at_ms),
        version_before: before.map(str::to_string),
        version_after: after.map(str::to_string),
        error: None,
        cause: None,
        drift: vec![],
    }
}

/// The model the spec's golden cases describe: benign for small cells, malignant for large ones.
pub fn good_model() -> Model {
    Arc::new(|payload: &Value| {
        let radius = payload["rows"][0][0].as_f64().unwrap_or(0.0);
        if radius < 15.0 {
            Reply::ok(json!({"classes": [1], "probabilities": [[0.0201, 0.9799]], "model": "breast-cancer"}))
        } else {
            Reply::ok(json!({"classes": [0], "probabilities": [[0.9702, 0.0298]], "model": "breast-cancer"}))
        }
    })
}

/// A model whose weights are wrong: it answers every row with the opposite class.
pub fn flipped_model() -> Model {
    Arc::new(|payload: &Value| {
        let radius = payload["rows"][0][0].as_f64().unwrap_or(0.0);
        if radius < 15.0 {
            Reply::ok(json!({"classes": [0], "probabilities": [[0.98, 0.02]]}))
        } else {
            Reply::ok(json!({"classes": [1], "probabilities": [[0.03, 0.97]]}))
        }
    })
}

/// A model that cannot load its weights.
pub fn crashing_model() -> Model {
    Arc::new(|_: &Value| Reply::error("ModelLoadError", "weights file /opt/model/model.onnx is truncated"))
}

/// The Lambda error JSON Step Functions puts in a caught error's `Cause`.
pub fn lambda_error_cause(e: &DeployError) -> String {
    json!({"errorType": e.name(), "errorMessage": e.to_string()}).to_string()
}

/// The ECR "ECR Image Action" event EventBridge delivers to the trigger.
pub fn ecr_event(repo: &str, d: &ImageDigest, tag: &str) -> Value {
    json!({
        "version": "0",
        "id": "4f5ec4d5-4de4-7aad-a046-56d5cfe1df0e",
        "detail-type": "ECR Image Action",
        "source": "aws.ecr",
        "account": ACCOUNT,
        "time": "2026-11-27T10:00:00Z",
        "region": REGION,
        "resources": [],
        "detail": {
            "result": "SUCCESS",
            "repository-name": repo,
            "image-digest": d.as_str(),
            "action-type": "PUSH",
            "image-tag": tag
        }
    })
}

// ---------------------------------------------------------------------------------------------------------
// FakeLambda
// ---------------------------------------------------------------------------------------------------------

/// One scripted answer of a function.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub payload: Value,
    pub function_error: Option<String>,
    pub latency_ms: u64,
}

impl Reply {
    pub fn ok(payload: Value) -> Reply {
        Reply { payload, function_error: None, latency_ms: 40 }
    }

    /// An unhandled error, as the Rust runtime reports it (X-Amz-Function-Error: Unhandled).
    pub fn error(error_type: &str, message: &str) -> Reply {
        Reply {
            payload: json!({"errorType": error_type, "errorMessage": message}),
            function_error: Some("Unhandled".into()),
            latency_ms: 40,
        }
    }

    pub fn after_ms(mut self, ms: u64) -> Reply {
        self.latency_ms = ms;
        self
    }
}

/// How the code with one sha answers a payload.
pub type Model = Arc<dyn Fn(&Value) -> Reply + Send + Sync>;

type Hook = Box<dyn FnOnce(&mut LambdaWorld) + Send>;

/// One function: its $LATEST, its published versions (with their descriptions) and its aliases.
#[derive(Debug, Clone)]
pub struct FakeFunction {
    pub latest: FunctionState,
    pub image_uri: String,
    pub versions: BTreeMap<u64, FunctionState>,
    pub version_descriptions: BTreeMap<u64, String>,
    pub aliases: BTreeMap<String, AliasState>,
    /// Provisioned concurrency by qualifier.
    pub provisioned: BTreeMap<String, Provisioned>,
}

/// One invocation as the fake served it.
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    pub qualifier: String,
    pub executed_version: String,
    pub code_sha256: String,
}

/// Everything the fake Lambda holds. Tests reach it through [`FakeLambda::world`] to seed or change it (a
/// change made there is "someone else", not a logged call).
#[derive(Default)]
pub struct LambdaWorld {
    pub functions: BTreeMap<String, FakeFunction>,
    next_revision: u64,
    models: BTreeMap<String, Model>,
    queued: BTreeMap<String, VecDeque<Reply>>,
    failures: BTreeMap<String, VecDeque<DeployError>>,
    hooks: Vec<(String, usize, Hook)>,
    counts: BTreeMap<String, usize>,
    pub served: Vec<Served>,
}

fn lambda_conflict(name: &str, state: &FunctionState) -> DeployError {
    DeployError::UpdateInProgress {
        resource: name.to_string(),
        message: format!(
            "The operation cannot be performed at this time. State: {:?}, LastUpdateStatus: {:?}",
            state.state, state.last_update
        ),
    }
}

/// Lambda's ResourceNotFoundException on a call that is not a read: deployer-aws refuses it (AwsRefused).
fn not_found(operation: &'static str, message: String) -> DeployError {
    DeployError::AwsRefused { service: "Lambda", operation, message }
}

/// What Lambda reports for a configuration set from `d`.
fn current_from(d: &DesiredConfig, function: &str, architecture: &str) -> CurrentConfig {
    let json = d.logging.format == LogFormat::Json;
    let level = |l: &Option<String>| json.then(|| l.clone().unwrap_or_else(|| "INFO".into()));
    CurrentConfig {
        role: d.role.clone(),
        memory_mb: d.memory_mb,
        timeout_seconds: d.timeout_seconds,
        architecture: architecture.to_string(),
        ephemeral_storage_mb: d.ephemeral_storage_mb,
        environment: d.environment.clone(),
        log_format: d.logging.format.as_str().to_string(),
        application_level: level(&d.logging.application_level),
        system_level: level(&d.logging.system_level),
        log_group: Some(d.logging.log_group.clone().unwrap_or_else(|| format!("/aws/lambda/{function}"))),
        reserved_concurrency: d.reserved_concurrency,
    }
}

/// The digest's hex part of `<registry>/<repo>@sha256:<hex>`: what Lambda reports as CodeSha256.
fn sha_of_uri(uri: &str) -> Result<String, DeployError> {
    uri.split_once('@').and_then(|(_, d)| ImageDigest::parse(d).ok()).map(|d| d.hex().to_string()).ok_or_else(|| {
        DeployError::AwsRefused {
            service: "Lambda",
            operation: "UpdateFunctionCode",
            message: format!("fake Lambda: image URI {uri} carries no digest"),
        }
    })
}

impl LambdaWorld {
    fn revision(&mut self) -> String {
        self.next_revision += 1;
        format!("rev-{}", self.next_revision)
    }

    pub fn function(&self, name: &str) -> &FakeFunction {
        self.functions.get(name).unwrap_or_else(|| panic!("fake Lambda has no function {name}"))
    }

    pub fn function_mut(&mut self, name: &str) -> &mut FakeFunction {
        self.functions.get_mut(name).unwrap_or_else(|| panic!("fake Lambda has no function {name}"))
    }

    fn existing(&mut self, name: &str, op: &'static str) -> Result<&mut FakeFunction, DeployError> {
        self.functions.get_mut(name).ok_or_else(|| not_found(op, format!("Function not found: {name}")))
    }

    /// The next `n` calls of `op` fail with `error`; from a [`FakeLambda::before_call`] hook, this one.
    pub fn fail_next(&mut self, op: &str, n: usize, error: DeployError) {
        self.failures.entry(op.to_string()).or_default().extend(std::iter::repeat_n(error, n));
    }

    /// Someone else writes $LATEST (a console edit): its RevisionId changes.
    pub fn touch(&mut self, name: &str) {
        let rev = self.revision();
        self.function_mut(name).latest.revision_id = rev;
    }

    /// Someone else starts an update of $LATEST.
    pub fn start_foreign_update(&mut self, name: &str) {
        let rev = self.revision();
        let f = self.function_mut(name);
        f.latest.last_update = UpdateStatus::InProgress;
        f.latest.revision_id = rev;
    }

    /// Someone else moves an alias.
    pub fn move_alias(&mut self, name: &str, alias: &str, to: &str) {
        let rev = self.revision();
        let a = self.function_mut(name).aliases.get_mut(alias).expect("alias exists");
        a.version = to.to_string();
        a.revision_id = rev;
    }

    /// The update in progress ends: Successful (`Ok`) or Failed with a reason. A function still being
    /// created becomes Active, or Failed.
    pub fn finish_update(&mut self, name: &str, outcome: Result<(), &str>) {
        let rev = self.revision();
        let f = &mut self.function_mut(name).latest;
        f.revision_id = rev;
        match outcome {
            Ok(()) => {
                f.state = LambdaState::Active;
                f.state_reason = None;
                f.last_update = UpdateStatus::Successful;
                f.last_update_reason = None;
            }
            Err(reason) => {
                if f.state == LambdaState::Pending {
                    f.state = LambdaState::Failed;
                    f.state_reason = Some(reason.to_string());
                }
                f.last_update = UpdateStatus::Failed;
                f.last_update_reason = Some(reason.to_string());
            }
        }
    }

    fn create(&mut self, name: &FunctionName, uri: &str, d: &DesiredConfig) -> Result<FunctionState, DeployError> {
        if self.functions.contains_key(name.as_str()) {
            // ResourceConflictException, which deployer-aws reads as UpdateInProgress.
            return Err(DeployError::UpdateInProgress {
                resource: name.to_string(),
                message: format!("Function already exist: {name}"),
            });
        }
        let sha = sha_of_uri(uri)?;
        let rev = self.revision();
        let latest = FunctionState {
            name: name.clone(),
            version: "$LATEST".into(),
            revision_id: rev,
            code_sha256: sha,
            state: LambdaState::Pending,
            state_reason: Some("The function is being created.".into()),
            last_update: UpdateStatus::Unknown,
            last_update_reason: None,
            package_type: "Image".into(),
            resolved_image_uri: None,
            config: current_from(d, name.as_str(), d.architecture.as_str()),
        };
        let f = FakeFunction {
            latest: latest.clone(),
            image_uri: uri.to_string(),
            versions: BTreeMap::new(),
            version_descriptions: BTreeMap::new(),
            aliases: BTreeMap::new(),
            provisioned: BTreeMap::new(),
        };
        self.functions.insert(name.to_string(), f);
        Ok(latest)
    }

    /// The preconditions of every write to $LATEST: no update in progress, and the caller's RevisionId.
    fn writable(&mut self, name: &str, revision_id: &str, op: &'static str) -> Result<(), DeployError> {
        let f = self.existing(name, op)?;
        let l = &f.latest;
        if l.state == LambdaState::Pending || l.last_update == UpdateStatus::InProgress {
            return Err(lambda_conflict(name, l));
        }
        if l.revision_id != revision_id {
            return Err(DeployError::PreconditionFailed {
                resource: name.to_string(),
                message: format!("RevisionId {revision_id} given, $LATEST is at {}", l.revision_id),
            });
        }
        Ok(())
    }

    fn update_configuration(
        &mut self,
        name: &str,
        d: &DesiredConfig,
        rev_in: &str,
    ) -> Result<FunctionState, DeployError> {
        self.writable(name, rev_in, "UpdateFunctionConfiguration")?;
        let rev = self.revision();
        let l = &mut self.function_mut(name).latest;
        let architecture = l.config.architecture.clone();
        l.config = current_from(d, name, &architecture);
        l.last_update = UpdateStatus::InProgress;
        l.last_update_reason = None;
        l.revision_id = rev;
        Ok(l.clone())
    }

    fn update_code(&mut self, name: &str, uri: &str, arch: &str, rev_in: &str) -> Result<FunctionState, DeployError> {
        self.writable(name, rev_in, "UpdateFunctionCode")?;
        let sha = sha_of_uri(uri)?;
        let rev = self.revision();
        let f = self.function_mut(name);
        f.image_uri = uri.to_string();
        let l = &mut f.latest;
        l.code_sha256 = sha;
        l.config.architecture = arch.to_string();
        l.last_update = UpdateStatus::InProgress;
        l.last_update_reason = None;
        l.revision_id = rev;
        Ok(l.clone())
    }

    fn publish(&mut self, name: &str, sha: &str, rev_in: &str, description: &str) -> Result<Version, DeployError> {
        self.writable(name, rev_in, "PublishVersion")?;
        let f = self.function(name);
        if f.latest.code_sha256 != sha {
            return Err(DeployError::AwsRefused {
                service: "Lambda",
                operation: "PublishVersion",
                message: format!("CodeSha256 {sha} does not match $LATEST's {}", f.latest.code_sha256),
            });
        }
        // Lambda does not publish a version when neither code nor configuration changed since the last one.
        if let Some((n, last)) = f.versions.last_key_value() {
            if last.code_sha256 == f.latest.code_sha256 && last.config == f.latest.config {
                return Ok(version(&n.to_string()));
            }
        }
        let n = f.versions.last_key_value().map(|(n, _)| n + 1).unwrap_or(1);
        let rev = self.revision();
        let f = self.function_mut(name);
        let mut published = f.latest.clone();
        published.version = n.to_string();
        published.revision_id = rev;
        f.versions.insert(n, published);
        f.version_descriptions.insert(n, description.to_string());
        Ok(version(&n.to_string()))
    }

    fn check_version(&mut self, name: &str, v: &Version, op: &'static str) -> Result<(), DeployError> {
        let f = self.existing(name, op)?;
        if !f.versions.contains_key(&v.number()) {
            return Err(not_found(op, format!("Function not found: {name}:{v}")));
        }
        Ok(())
    }

    fn create_alias(
        &mut self,
        name: &str,
        alias: &str,
        v: &Version,
        description: &str,
    ) -> Result<AliasState, DeployError> {
        self.check_version(name, v, "CreateAlias")?;
        if self.function(name).aliases.contains_key(alias) {
            // ResourceConflictException, which deployer-aws reads as UpdateInProgress.
            return Err(DeployError::UpdateInProgress {
                resource: format!("{name}:{alias}"),
                message: format!("Alias already exists: {name}:{alias}"),
            });
        }
        let rev = self.revision();
        let a = AliasState {
            name: AliasName::parse(alias).unwrap(),
            version: v.to_string(),
            revision_id: rev,
            description: description.to_string(),
            additional: None,
        };
        self.function_mut(name).aliases.insert(alias.to_string(), a.clone());
        Ok(a)
    }

    fn update_alias(
        &mut self,
        name: &str,
        alias: &str,
        v: &Version,
        description: &str,
        rev_in: &str,
    ) -> Result<AliasState, DeployError> {
        self.existing(name, "UpdateAlias")?;
        let current = self
            .function(name)
            .aliases
            .get(alias)
            .ok_or_else(|| not_found("UpdateAlias", format!("Alias not found: {name}:{alias}")))?;
        if current.revision_id != rev_in {
            return Err(DeployError::PreconditionFailed {
                resource: format!("{name}:{alias}"),
                message: format!("RevisionId {rev_in} given, the alias is at {}", current.revision_id),
            });
        }
        self.check_version(name, v, "UpdateAlias")?;
        let rev = self.revision();
        let a = self.function_mut(name).aliases.get_mut(alias).expect("checked above");
        a.version = v.to_string();
        a.description = description.to_string();
        a.additional = None;
        a.revision_id = rev;
        Ok(a.clone())
    }

    fn route_alias(
        &mut self,
        name: &str,
        alias: &str,
        routing: &Routing,
        description: &str,
        rev_in: &str,
    ) -> Result<AliasState, DeployError> {
        let Routing { main, candidate, weight } = routing;
        let weight = *weight;
        if main == candidate {
            return Err(DeployError::AwsRefused {
                service: "Lambda",
                operation: "UpdateAlias",
                message: "the additional version cannot be the alias's own version".into(),
            });
        }
        if !(0.0..1.0).contains(&weight) {
            return Err(DeployError::AwsRefused {
                service: "Lambda",
                operation: "UpdateAlias",
                message: format!("weight {weight} is outside [0.0, 1.0)"),
            });
        }
        self.check_version(name, candidate, "UpdateAlias")?;
        let mut a = self.update_alias(name, alias, main, description, rev_in)?;
        a.additional = Some((candidate.to_string(), weight));
        self.function_mut(name).aliases.insert(alias.to_string(), a.clone());
        Ok(a)
    }

    fn invoke(&mut self, name: &str, qualifier: &str, payload: &[u8]) -> Result<Invocation, DeployError> {
        let f = self.existing(name, "Invoke")?;
        let executed = if qualifier == "$LATEST" || qualifier.bytes().all(|b| b.is_ascii_digit()) {
            qualifier.to_string()
        } else {
            f.aliases
                .get(qualifier)
                .map(|a| a.version.clone())
                .ok_or_else(|| not_found("Invoke", format!("Function not found: {name}:{qualifier}")))?
        };
        let state = if executed == "$LATEST" {
            f.latest.clone()
        } else {
            let n: u64 = executed.parse().unwrap_or(0);
            f.versions.get(&n).cloned().ok_or_else(|| not_found("Invoke", format!("Function not found: {name}:{n}")))?
        };
        if state.state == LambdaState::Pending {
            return Err(lambda_conflict(name, &state));
        }
        let body: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
        let reply = match self.queued.get_mut(qualifier).and_then(VecDeque::pop_front) {
            Some(r) => r,
            None => match self.models.get(&state.code_sha256) {
                Some(model) => model(&body),
                None => {
                    Reply::error("FakeLambda.NoModel", &format!("no model scripted for code {}", state.code_sha256))
                }
            },
        };
        self.served.push(Served {
            qualifier: qualifier.to_string(),
            executed_version: executed.clone(),
            code_sha256: state.code_sha256.clone(),
        });
        Ok(Invocation {
            payload: serde_json::to_vec(&reply.payload).unwrap(),
            function_error: reply.function_error,
            executed_version: executed,
            latency_ms: reply.latency_ms,
        })
    }
}

/// An in-memory Lambda control and data plane.
#[derive(Default)]
pub struct FakeLambda {
    world: Mutex<LambdaWorld>,
    pub calls: Mutex<Vec<String>>,
}

/// The API operations that change something.
pub const WRITES: &[&str] = &[
    "CreateFunction",
    "UpdateFunctionConfiguration",
    "UpdateFunctionCode",
    "PublishVersion",
    "CreateAlias",
    "UpdateAlias",
    "SetReservedConcurrency",
    "PutProvisionedConcurrencyConfig",
    "DeleteProvisionedConcurrencyConfig",
];

impl FakeLambda {
    pub fn new() -> FakeLambda {
        FakeLambda::default()
    }

    pub fn world(&self) -> MutexGuard<'_, LambdaWorld> {
        self.world.lock().unwrap()
    }

    /// Every call so far, e.g. `UpdateAlias ml-inference:live -> 3 rev=rev-7`.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    /// The operation names called, in order.
    pub fn ops(&self) -> Vec<String> {
        self.calls().iter().map(|c| c.split(' ').next().unwrap_or_default().to_string()).collect()
    }

    pub fn count(&self, op: &str) -> usize {
        self.ops().iter().filter(|o| *o == op).count()
    }

    /// The calls that changed (or tried to change) something.
    pub fn writes(&self) -> Vec<String> {
        self.calls().into_iter().filter(|c| WRITES.iter().any(|w| c.split(' ').next() == Some(*w))).collect()
    }

    pub fn clear_calls(&self) {
        self.calls.lock().unwrap().clear();
        self.world().served.clear();
    }

    /// The code with this image digest answers with `model`, whatever qualifier reaches it.
    pub fn model(&self, d: &ImageDigest, model: Model) {
        self.world().models.insert(d.hex().to_string(), model);
    }

    /// The next invocations of exactly this qualifier answer these replies, in order (before any model).
    pub fn queue(&self, qualifier: &str, replies: impl IntoIterator<Item = Reply>) {
        self.world().queued.entry(qualifier.to_string()).or_default().extend(replies);
    }

    /// The next `n` calls of `op` fail with `error` (after being logged).
    pub fn fail_next(&self, op: &str, n: usize, error: DeployError) {
        self.world().fail_next(op, n, error);
    }

    /// Just before the `nth` (1-based) call of `op` is served, `change` runs on the world: someone else acting
    /// concurrently.
    pub fn before_call(&self, op: &str, nth: usize, change: impl FnOnce(&mut LambdaWorld) + Send + 'static) {
        self.world().hooks.push((op.to_string(), nth, Box::new(change)));
    }

    /// Log the call, run what is scripted for it, and hand over the world to serve it.
    fn enter(&self, op: &str, entry: String) -> Result<MutexGuard<'_, LambdaWorld>, DeployError> {
        self.calls.lock().unwrap().push(entry);
        let mut w = self.world();
        let n = {
            let c = w.counts.entry(op.to_string()).or_default();
            *c += 1;
            *c
        };
        while let Some(i) = w.hooks.iter().position(|(o, k, _)| o == op && *k == n) {
            let (_, _, change) = w.hooks.remove(i);
            change(&mut w);
        }
        if let Some(e) = w.failures.get_mut(op).and_then(VecDeque::pop_front) {
            return Err(e);
        }
        Ok(w)
    }

    // ---- seeding: what existed before the test, not logged ----

    /// A function that runs `d` with the spec's configuration, Active and Successful.
    pub fn seed_function(&self, t: &TargetSpec, d: &ImageDigest) {
        let mut w = self.world();
        w.create(&t.function, &image_uri(t.repository.as_str(), d), &t.configuration).unwrap();
        w.finish_update(t.function.as_str(), Ok(()));
    }

    /// $LATEST runs `d` with the spec's configuration, Active and Successful (created if need be).
    pub fn seed_latest(&self, t: &TargetSpec, d: &ImageDigest) {
        let name = t.function.as_str();
        if !self.world().functions.contains_key(name) {
            self.seed_function(t, d);
        }
        let mut w = self.world();
        let rev = w.revision();
        let f = w.function_mut(name);
        f.image_uri = image_uri(t.repository.as_str(), d);
        let l = &mut f.latest;
        l.code_sha256 = d.hex().to_string();
        l.config = current_from(&t.configuration, name, t.configuration.architecture.as_str());
        l.state = LambdaState::Active;
        l.state_reason = None;
        l.last_update = UpdateStatus::Successful;
        l.last_update_reason = None;
        l.revision_id = rev;
    }

    /// $LATEST set to `d` with the spec's configuration and published: the new version's number.
    pub fn seed_release(&self, t: &TargetSpec, d: &ImageDigest) -> Version {
        self.seed_latest(t, d);
        let mut w = self.world();
        let l = w.function(t.function.as_str()).latest.clone();
        w.publish(t.function.as_str(), &l.code_sha256, &l.revision_id, &format!("seeded {d}")).unwrap()
    }

    /// The alias points at `v`.
    pub fn seed_alias(&self, t: &TargetSpec, v: &Version, description: &str) {
        let mut w = self.world();
        let (name, alias) = (t.function.as_str(), t.alias.as_str());
        if w.function(name).aliases.contains_key(alias) {
            let rev = w.function(name).aliases[alias].revision_id.clone();
            w.update_alias(name, alias, v, description, &rev).unwrap();
        } else {
            w.create_alias(name, alias, v, description).unwrap();
        }
    }

    // ---- reading the world back ----

    pub fn latest(&self, name: &str) -> FunctionState {
        self.world().function(name).latest.clone()
    }

    pub fn alias(&self, name: &str, alias: &str) -> Option<AliasState> {
        self.world().functions.get(name).and_then(|f| f.aliases.get(alias).cloned())
    }

    pub fn version_numbers(&self, name: &str) -> Vec<u64> {
        self.world().functions.get(name).map(|f| f.versions.keys().copied().collect()).unwrap_or_default()
    }

    pub fn version_state(&self, name: &str, n: u64) -> FunctionState {
        self.world().function(name).versions[&n].clone()
    }

    pub fn version_description(&self, name: &str, n: u64) -> String {
        self.world().function(name).version_descriptions[&n].clone()
    }

    pub fn served(&self) -> Vec<Served> {
        self.world().served.clone()
    }

    /// Someone else changes $LATEST's reported state in place (no new RevisionId).
    pub fn edit_latest(&self, name: &str, edit: impl FnOnce(&mut FunctionState)) {
        edit(&mut self.world().function_mut(name).latest);
    }

    pub fn finish_update(&self, name: &str) {
        self.world().finish_update(name, Ok(()));
    }

    pub fn fail_update(&self, name: &str, reason: &str) {
        self.world().finish_update(name, Err(reason));
    }
}

fn q(name: &FunctionName, qualifier: Option<&str>) -> String {
    match qualifier {
        Some(v) => format!("{name}:{v}"),
        None => name.to_string(),
    }
}

impl FunctionApi for FakeLambda {
    async fn get_function(&self, name: &FunctionName, qualifier: Option<&str>) -> ports::Result<Option<FunctionState>> {
        let w = self.enter("GetFunction", format!("GetFunction {}", q(name, qualifier)))?;
        let Some(f) = w.functions.get(name.as_str()) else { return Ok(None) };
        let state = match qualifier {
            None | Some("$LATEST") => Some(f.latest.clone()),
            Some(v) => v.parse::<u64>().ok().and_then(|n| f.versions.get(&n).cloned()),
        };
        // GetFunction's Code: the image the code's digest resolves to in the function's repository.
        let repository = f.image_uri.split_once('@').map_or(f.image_uri.as_str(), |(r, _)| r);
        Ok(state.map(|mut s| {
            s.resolved_image_uri = Some(format!("{repository}@sha256:{}", s.code_sha256));
            s
        }))
    }

    async fn create_function(
        &self,
        name: &FunctionName,
        image_uri: &str,
        config: &DesiredConfig,
    ) -> ports::Result<FunctionState> {
        self.enter("CreateFunction", format!("CreateFunction {name} {image_uri}"))?.create(name, image_uri, config)
    }

    async fn update_configuration(
        &self,
        name: &FunctionName,
        config: &DesiredConfig,
        revision_id: &str,
    ) -> ports::Result<FunctionState> {
        self.enter("UpdateFunctionConfiguration", format!("UpdateFunctionConfiguration {name} rev={revision_id}"))?
            .update_configuration(name.as_str(), config, revision_id)
    }

    async fn update_code(
        &self,
        name: &FunctionName,
        image_uri: &str,
        architecture: &str,
        revision_id: &str,
    ) -> ports::Result<FunctionState> {
        let entry = format!("UpdateFunctionCode {name} {image_uri} arch={architecture} rev={revision_id}");
        self.enter("UpdateFunctionCode", entry)?.update_code(name.as_str(), image_uri, architecture, revision_id)
    }

    async fn publish_version(
        &self,
        name: &FunctionName,
        code_sha256: &str,
        revision_id: &str,
        description: &str,
    ) -> ports::Result<Version> {
        let entry = format!("PublishVersion {name} sha={code_sha256} rev={revision_id} description={description}");
        self.enter("PublishVersion", entry)?.publish(name.as_str(), code_sha256, revision_id, description)
    }

    async fn get_alias(&self, name: &FunctionName, alias: &AliasName) -> ports::Result<Option<AliasState>> {
        let w = self.enter("GetAlias", format!("GetAlias {name}:{alias}"))?;
        Ok(w.functions.get(name.as_str()).and_then(|f| f.aliases.get(alias.as_str()).cloned()))
    }

    async fn create_alias(
        &self,
        name: &FunctionName,
        alias: &AliasName,
        version: &Version,
        description: &str,
    ) -> ports::Result<AliasState> {
        let entry = format!("CreateAlias {name}:{alias} -> {version} description={description}");
        self.enter("CreateAlias", entry)?.create_alias(name.as_str(), alias.as_str(), version, description)
    }

    async fn update_alias(
        &self,
        name: &FunctionName,
        alias: &AliasName,
        version: &Version,
        description: &str,
        revision_id: &str,
    ) -> ports::Result<AliasState> {
        let entry = format!("UpdateAlias {name}:{alias} -> {version} rev={revision_id} description={description}");
        self.enter("UpdateAlias", entry)?.update_alias(name.as_str(), alias.as_str(), version, description, revision_id)
    }

    async fn invoke(&self, name: &FunctionName, qualifier: &str, payload: &[u8]) -> ports::Result<Invocation> {
        self.enter("Invoke", format!("Invoke {name}:{qualifier}"))?.invoke(name.as_str(), qualifier, payload)
    }

    async fn route_alias(
        &self,
        name: &FunctionName,
        alias: &AliasName,
        routing: &Routing,
        description: &str,
        revision_id: &str,
    ) -> ports::Result<AliasState> {
        let Routing { main, candidate, weight } = routing;
        let entry = format!("UpdateAlias {name}:{alias} -> {main} + {candidate}@{weight} rev={revision_id}");
        self.enter("UpdateAlias", entry)?.route_alias(name.as_str(), alias.as_str(), routing, description, revision_id)
    }

    async fn put_provisioned(&self, name: &FunctionName, version: &Version, n: u32) -> ports::Result<()> {
        let mut w = self.enter(
            "PutProvisionedConcurrencyConfig",
            format!("PutProvisionedConcurrencyConfig {name}:{version} {n}"),
        )?;
        w.check_version(name.as_str(), version, "PutProvisionedConcurrencyConfig")?;
        let p = Provisioned {
            qualifier: version.to_string(),
            requested: n,
            allocated: 0,
            status: "IN_PROGRESS".into(),
            reason: None,
        };
        w.function_mut(name.as_str()).provisioned.insert(version.to_string(), p);
        Ok(())
    }

    async fn list_provisioned(&self, name: &FunctionName) -> ports::Result<Vec<Provisioned>> {
        let mut w =
            self.enter("ListProvisionedConcurrencyConfigs", format!("ListProvisionedConcurrencyConfigs {name}"))?;
        Ok(w.function_mut(name.as_str()).provisioned.values().cloned().collect())
    }

    async fn delete_provisioned(&self, name: &FunctionName, qualifier: &str) -> ports::Result<()> {
        let entry = format!("DeleteProvisionedConcurrencyConfig {name}:{qualifier}");
        let mut w = self.enter("DeleteProvisionedConcurrencyConfig", entry)?;
        w.function_mut(name.as_str()).provisioned.remove(qualifier);
        Ok(())
    }

    async fn set_reserved_concurrency(&self, name: &FunctionName, reserved: Option<u32>) -> ports::Result<()> {
        let mut world = self.enter("SetReservedConcurrency", format!("SetReservedConcurrency {name} {reserved:?}"))?;
        world.function_mut(name.as_str()).latest.config.reserved_concurrency = reserved;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------------------
// FakeStore, FakeRegistry, FakeExecutions
// ---------------------------------------------------------------------------------------------------------

/// Deployment targets by function name.
#[derive(Default)]
pub struct FakeStore {
    pub targets: Mutex<BTreeMap<String, TargetSpec>>,
}

impl FakeStore {
    pub fn with(specs: impl IntoIterator<Item = TargetSpec>) -> FakeStore {
        let store = FakeStore::default();
        store.targets.lock().unwrap().extend(specs.into_iter().map(|s| (s.function.to_string(), s)));
        store
    }
}

impl TargetStore for FakeStore {
    async fn get(&self, function: &FunctionName) -> ports::Result<Option<TargetSpec>> {
        Ok(self.targets.lock().unwrap().get(function.as_str()).cloned())
    }

    async fn list(&self) -> ports::Result<Vec<TargetSpec>> {
        Ok(self.targets.lock().unwrap().values().cloned().collect())
    }

    async fn put(&self, spec: &TargetSpec) -> ports::Result<()> {
        self.targets.lock().unwrap().insert(spec.function.to_string(), spec.clone());
        Ok(())
    }

    async fn delete(&self, function: &FunctionName) -> ports::Result<()> {
        self.targets.lock().unwrap().remove(function.as_str());
        Ok(())
    }
}

pub const SINGLE_ARCH: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Images by (repository, digest).
#[derive(Default)]
pub struct FakeRegistry {
    pub images: Mutex<BTreeMap<(String, String), ImageInfo>>,
    pushes: Mutex<i64>,
    /// Every call, e.g. `DescribeImage ml-inference sha256:...`.
    calls: Mutex<Vec<String>>,
}

impl FakeRegistry {
    /// ECR receives the image now: a minute after the previous push, the first at [`FIRST_PUSH_MS`].
    pub fn push(&self, repo: &str, d: &ImageDigest, tag: &str, media_type: &str) {
        let at = {
            let mut n = self.pushes.lock().unwrap();
            *n += 1;
            FIRST_PUSH_MS + (*n - 1) * 60_000
        };
        self.push_at(repo, d, tag, media_type, Some(at));
    }

    /// ECR received the image at `pushed_at_ms` (None: ECR did not say).
    pub fn push_at(&self, repo: &str, d: &ImageDigest, tag: &str, media_type: &str, pushed_at_ms: Option<i64>) {
        let info = ImageInfo {
            digest: d.clone(),
            tags: vec![tag.to_string()],
            manifest_media_type: Some(media_type.to_string()),
            repository_uri: format!("{REGISTRY}/{repo}"),
            pushed_at_ms,
        };
        self.images.lock().unwrap().insert((repo.to_string(), d.to_string()), info);
    }

    /// A lifecycle policy (or a person) deletes the image.
    pub fn delete(&self, repo: &str, d: &ImageDigest) {
        self.images.lock().unwrap().remove(&(repo.to_string(), d.to_string()));
    }

    pub fn pushed_at(&self, repo: &str, d: &ImageDigest) -> Option<i64> {
        self.images.lock().unwrap().get(&(repo.to_string(), d.to_string())).and_then(|i| i.pushed_at_ms)
    }

    /// Give an image in the registry one more tag (ECR's PutImage of its manifest under the tag).
    pub fn tag(&self, repo: &str, d: &ImageDigest, tag: &str) {
        let mut images = self.images.lock().unwrap();
        let image = images.get_mut(&(repo.to_string(), d.to_string())).expect("the image is in the registry");
        image.tags.push(tag.to_string());
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl ImageRegistry for FakeRegistry {
    async fn describe_image(
        &self,
        repository: &RepositoryName,
        digest: &ImageDigest,
    ) -> ports::Result<Option<ImageInfo>> {
        self.calls.lock().unwrap().push(format!("DescribeImage {repository} {digest}"));
        Ok(self.images.lock().unwrap().get(&(repository.to_string(), digest.to_string())).cloned())
    }

    async fn tag_image(&self, repository: &RepositoryName, digest: &ImageDigest, tag: &str) -> ports::Result<()> {
        self.calls.lock().unwrap().push(format!("TagImage {repository} {digest} {tag}"));
        let mut images = self.images.lock().unwrap();
        let Some(image) = images.get_mut(&(repository.to_string(), digest.to_string())) else {
            return Err(DeployError::invalid(format!("image {repository}@{digest} is no longer in the repository")));
        };
        if !image.tags.iter().any(|t| t == tag) {
            image.tags.push(tag.to_string());
        }
        Ok(())
    }

    async fn list_images(&self, repository: &RepositoryName) -> ports::Result<Vec<ImageInfo>> {
        self.calls.lock().unwrap().push(format!("ListImages {repository}"));
        let images = self.images.lock().unwrap();
        Ok(images
            .iter()
            .filter(|((r, _), i)| r == repository.as_str() && !i.tags.is_empty())
            .map(|(_, i)| i.clone())
            .collect())
    }
}

/// A targets table that does not answer.
pub struct UnansweringStore;

impl deployer_core::ports::TargetStore for UnansweringStore {
    async fn get(
        &self,
        _: &deployer_core::ids::FunctionName,
    ) -> deployer_core::ports::Result<Option<deployer_core::spec::TargetSpec>> {
        Err(DeployError::Throttled { service: "DynamoDB", message: "GetItem on the targets table".into() })
    }
    async fn list(&self) -> deployer_core::ports::Result<Vec<deployer_core::spec::TargetSpec>> {
        Err(DeployError::Throttled { service: "DynamoDB", message: "Scan".into() })
    }
    async fn put(&self, _: &deployer_core::spec::TargetSpec) -> deployer_core::ports::Result<()> {
        unreachable!("no step under test writes a target")
    }
    async fn delete(&self, _: &deployer_core::ids::FunctionName) -> deployer_core::ports::Result<()> {
        unreachable!("no step under test deletes a target")
    }
}

/// Step Functions executions: a name can be started once.
#[derive(Default)]
pub struct FakeExecutions {
    /// (name, input) of every execution started.
    pub started: Mutex<Vec<(String, String)>>,
    /// Every name `start` was called with, started or not.
    pub attempts: Mutex<Vec<String>>,
    /// Every execution started is still running: a start with the same name and input succeeds again (as
    /// Step Functions answers for a running standard execution). Off: every started name is taken for good.
    pub running: bool,
}

impl FakeExecutions {
    pub fn started(&self) -> Vec<(String, String)> {
        self.started.lock().unwrap().clone()
    }

    pub fn attempts(&self) -> Vec<String> {
        self.attempts.lock().unwrap().clone()
    }
}

pub fn execution_arn(name: &str) -> String {
    format!("arn:aws:states:{REGION}:{ACCOUNT}:execution:deployer-deploy:{name}")
}

impl Executions for FakeExecutions {
    async fn start(&self, name: &str, input: &str) -> ports::Result<StartOutcome> {
        self.attempts.lock().unwrap().push(name.to_string());
        let mut started = self.started.lock().unwrap();
        if let Some((_, earlier)) = started.iter().find(|(n, _)| n == name) {
            if self.running && earlier == input {
                return Ok(StartOutcome::Started { execution_arn: execution_arn(name) });
            }
            return Ok(StartOutcome::AlreadyStarted);
        }
        started.push((name.to_string(), input.to_string()));
        Ok(StartOutcome::Started { execution_arn: execution_arn(name) })
    }
}

// ---------------------------------------------------------------------------------------------------------
// FakeLedger
// ---------------------------------------------------------------------------------------------------------

/// A function's deployment lock, with the image queued behind it and, after a hand-over, who handed it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    pub owner: String,
    pub expires_at_ms: i64,
    pub pending: Option<PendingImage>,
    pub handed_over: Option<(String, PendingImage)>,
}

impl Lock {
    /// Held by `owner` until `expires_at_ms`, nothing queued.
    pub fn new(owner: impl Into<String>, expires_at_ms: i64) -> Lock {
        Lock { owner: owner.into(), expires_at_ms, pending: None, handed_over: None }
    }
}

/// Everything the fake ledger holds. Tests reach it through [`FakeLedger::world`] to seed or change it (a
/// change made there is not a logged call).
#[derive(Default)]
pub struct LedgerWorld {
    /// By function name.
    pub locks: BTreeMap<String, Lock>,
    /// Operators' commands by (function, execution).
    pub commands: BTreeMap<(String, String), (Command, String)>,
    /// Every function's records, newest first (by `finished_at_ms`; the later written first on a tie).
    pub records: Vec<DeploymentRecord>,
    failures: BTreeMap<String, VecDeque<DeployError>>,
}

impl LedgerWorld {
    fn insert(&mut self, record: DeploymentRecord) {
        let at =
            self.records.iter().position(|r| r.finished_at_ms <= record.finished_at_ms).unwrap_or(self.records.len());
        self.records.insert(at, record);
    }
}

/// The deployment ledger (a DynamoDB table in deployer-aws).
#[derive(Default)]
pub struct FakeLedger {
    world: Mutex<LedgerWorld>,
    pub calls: Mutex<Vec<String>>,
}

/// The ledger operations that change something.
pub const LEDGER_WRITES: &[&str] = &["Acquire", "Release", "Record", "PutPending", "HandOver", "SendCommand"];

impl FakeLedger {
    pub fn new() -> FakeLedger {
        FakeLedger::default()
    }

    pub fn world(&self) -> MutexGuard<'_, LedgerWorld> {
        self.world.lock().unwrap()
    }

    /// A ledger whose records of [`FN`] are these (in any order; kept newest first), and no lock.
    pub fn with_records(records: impl IntoIterator<Item = DeploymentRecord>) -> FakeLedger {
        let ledger = FakeLedger::new();
        for r in records {
            ledger.seed_record(r);
        }
        ledger
    }

    /// A ledger in which [`EXECUTION`] holds [`FN`]'s lock (for an hour from [`NOW_MS`]), as it does between
    /// its Prepare and its Finish.
    pub fn held() -> FakeLedger {
        let ledger = FakeLedger::new();
        ledger.seed_lock(FN, EXECUTION, NOW_MS + 3_600_000);
        ledger
    }

    /// A record written before the test (not logged).
    pub fn seed_record(&self, record: DeploymentRecord) {
        self.world().insert(record);
    }

    /// `owner` holds the lock of `function` until `expires_at_ms` (not logged).
    pub fn seed_lock(&self, function: &str, owner: &str, expires_at_ms: i64) {
        self.world().locks.insert(
            function.to_string(),
            Lock { owner: owner.to_string(), expires_at_ms, pending: None, handed_over: None },
        );
    }

    /// An operator's `command` (with `reason`) waits for `execution` of `function` (not logged).
    pub fn seed_command(&self, function: &str, execution: &str, command: Command, reason: &str) {
        self.world().commands.insert((function.to_string(), execution.to_string()), (command, reason.to_string()));
    }

    /// `pending` waits behind the lock of `function` (which must be seeded; not logged).
    pub fn seed_pending(&self, function: &str, pending: PendingImage) {
        self.world().locks.get_mut(function).expect("a seeded lock").pending = Some(pending);
    }

    pub fn lock(&self, function: &str) -> Option<Lock> {
        self.world().locks.get(function).cloned()
    }

    /// The function's records, newest first.
    pub fn records(&self, function: &str) -> Vec<DeploymentRecord> {
        self.world().records.iter().filter(|r| r.function.as_str() == function).cloned().collect()
    }

    /// Every call so far, e.g. `Acquire ml-inference owner=x now=1 expires=2`.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    /// The operation names called, in order.
    pub fn ops(&self) -> Vec<String> {
        self.calls().iter().map(|c| c.split(' ').next().unwrap_or_default().to_string()).collect()
    }

    /// The calls that changed (or tried to change) something.
    pub fn writes(&self) -> Vec<String> {
        self.calls().into_iter().filter(|c| LEDGER_WRITES.iter().any(|w| c.split(' ').next() == Some(*w))).collect()
    }

    pub fn clear_calls(&self) {
        self.calls.lock().unwrap().clear();
    }

    /// The next `n` calls of `op` (Acquire, Release, Record, History) fail with `error` (after being logged).
    pub fn fail_next(&self, op: &str, n: usize, error: DeployError) {
        self.world().failures.entry(op.to_string()).or_default().extend(std::iter::repeat_n(error, n));
    }

    fn enter(&self, op: &str, entry: String) -> Result<MutexGuard<'_, LedgerWorld>, DeployError> {
        self.calls.lock().unwrap().push(entry);
        let mut w = self.world();
        if let Some(e) = w.failures.get_mut(op).and_then(VecDeque::pop_front) {
            return Err(e);
        }
        Ok(w)
    }
}

impl DeploymentLedger for FakeLedger {
    async fn acquire(
        &self,
        function: &FunctionName,
        owner: &str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> ports::Result<LockOutcome> {
        let entry = format!("Acquire {function} owner={owner} now={now_ms} expires={expires_at_ms}");
        let mut w = self.enter("Acquire", entry)?;
        match w.locks.get_mut(function.as_str()) {
            Some(l) if l.owner != owner && l.expires_at_ms >= now_ms => {
                Ok(LockOutcome::Held { owner: l.owner.clone(), expires_at_ms: l.expires_at_ms })
            }
            // Taken (free, expired or its own): the queue behind it stays, the hand-over is done.
            Some(l) => {
                (l.owner, l.expires_at_ms, l.handed_over) = (owner.to_string(), expires_at_ms, None);
                Ok(LockOutcome::Acquired)
            }
            None => {
                w.locks.insert(
                    function.to_string(),
                    Lock { owner: owner.to_string(), expires_at_ms, pending: None, handed_over: None },
                );
                Ok(LockOutcome::Acquired)
            }
        }
    }

    async fn release(&self, function: &FunctionName, owner: &str, dropping: Option<&str>) -> ports::Result<bool> {
        let mut w = self.enter("Release", format!("Release {function} owner={owner} dropping={dropping:?}"))?;
        let free = w.locks.get(function.as_str()).is_some_and(|l| {
            l.owner == owner && l.pending.as_ref().is_none_or(|p| Some(p.queued_by.as_str()) == dropping)
        });
        if free {
            w.locks.remove(function.as_str());
        }
        Ok(free)
    }

    async fn lock_state(&self, function: &FunctionName) -> ports::Result<Option<LockState>> {
        let w = self.enter("LockState", format!("LockState {function}"))?;
        Ok(w.locks.get(function.as_str()).map(|l| LockState {
            owner: l.owner.clone(),
            expires_at_ms: l.expires_at_ms,
            pending: l.pending.clone(),
            handed_over: l.handed_over.clone(),
        }))
    }

    async fn put_pending(
        &self,
        function: &FunctionName,
        holder: &str,
        now_ms: i64,
        pending: &PendingImage,
        replacing: Option<&str>,
    ) -> ports::Result<bool> {
        let entry = format!(
            "PutPending {function} holder={holder} image={} by={} replacing={replacing:?}",
            pending.image_digest, pending.queued_by
        );
        let mut w = self.enter("PutPending", entry)?;
        let Some(l) = w.locks.get_mut(function.as_str()) else { return Ok(false) };
        if l.owner != holder
            || l.expires_at_ms < now_ms
            || l.pending.as_ref().map(|p| p.queued_by.as_str()) != replacing
        {
            return Ok(false);
        }
        l.pending = Some(pending.clone());
        Ok(true)
    }

    async fn hand_over(
        &self,
        function: &FunctionName,
        owner: &str,
        pending: &PendingImage,
        next: &str,
        expires_at_ms: i64,
    ) -> ports::Result<bool> {
        let entry = format!("HandOver {function} owner={owner} next={next} image={}", pending.image_digest);
        let mut w = self.enter("HandOver", entry)?;
        let Some(l) = w.locks.get_mut(function.as_str()) else { return Ok(false) };
        if l.owner != owner || l.pending.as_ref().map(|p| &p.queued_by) != Some(&pending.queued_by) {
            return Ok(false);
        }
        *l = Lock {
            owner: next.to_string(),
            expires_at_ms,
            pending: None,
            handed_over: Some((owner.to_string(), pending.clone())),
        };
        Ok(true)
    }

    async fn record(&self, record: &DeploymentRecord) -> ports::Result<()> {
        let outcome = serde_json::to_value(record.outcome).unwrap();
        let entry = format!(
            "Record {} execution={} outcome={}",
            record.function,
            record.execution,
            outcome.as_str().unwrap_or_default()
        );
        self.enter("Record", entry)?.insert(record.clone());
        Ok(())
    }

    async fn history(&self, function: &FunctionName, limit: usize) -> ports::Result<Vec<DeploymentRecord>> {
        let w = self.enter("History", format!("History {function} limit={limit}"))?;
        Ok(w.records.iter().filter(|r| r.function == *function).take(limit).cloned().collect())
    }

    async fn send_command(
        &self,
        function: &FunctionName,
        execution: &str,
        command: &Command,
        reason: &str,
    ) -> ports::Result<()> {
        let mut w = self.enter("SendCommand", format!("SendCommand {function} {execution} {command:?}"))?;
        w.commands.insert((function.to_string(), execution.to_string()), (command.clone(), reason.to_string()));
        Ok(())
    }

    async fn command(&self, function: &FunctionName, execution: &str) -> ports::Result<Option<(Command, String)>> {
        let w = self.enter("Command", format!("Command {function} {execution}"))?;
        Ok(w.commands.get(&(function.to_string(), execution.to_string())).cloned())
    }
}

/// CloudWatch as the health gates read it: stats per version, alarm states; every call logged.
#[derive(Default)]
pub struct FakeTelemetry {
    pub stats: Mutex<BTreeMap<String, VersionStats>>,
    pub alarms: Mutex<Vec<AlarmState>>,
    pub calls: Mutex<Vec<String>>,
}

impl FakeTelemetry {
    pub fn with(candidate: (&str, VersionStats), baseline: (&str, VersionStats)) -> FakeTelemetry {
        let t = FakeTelemetry::default();
        t.stats.lock().unwrap().extend([(candidate.0.to_string(), candidate.1), (baseline.0.to_string(), baseline.1)]);
        t
    }

    pub fn alarm(&self, name: &str, state: &str, reason: &str) {
        self.alarms.lock().unwrap().push(AlarmState { name: name.into(), state: state.into(), reason: reason.into() });
    }
}

impl Telemetry for FakeTelemetry {
    async fn version_stats(
        &self,
        function: &FunctionName,
        alias: &AliasName,
        version: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> ports::Result<VersionStats> {
        self.calls.lock().unwrap().push(format!("Stats {function}:{alias} v{version} {start_ms}..{end_ms}"));
        Ok(self.stats.lock().unwrap().get(version).copied().unwrap_or_default())
    }

    async fn alarms(&self, names: &[String]) -> ports::Result<Vec<AlarmState>> {
        self.calls.lock().unwrap().push(format!("Alarms {names:?}"));
        Ok(self.alarms.lock().unwrap().iter().filter(|a| names.contains(&a.name)).cloned().collect())
    }
}

/// CloudWatch Logs groups by name, with their retention (None: never expire).
#[derive(Default)]
pub struct FakeLogGroups {
    pub groups: Mutex<BTreeMap<String, Option<u32>>>,
    pub calls: Mutex<Vec<String>>,
}

impl LogGroups for FakeLogGroups {
    async fn retention(&self, group: &str) -> ports::Result<Option<Option<u32>>> {
        self.calls.lock().unwrap().push(format!("DescribeLogGroups {group}"));
        Ok(self.groups.lock().unwrap().get(group).copied())
    }

    async fn create(&self, group: &str) -> ports::Result<()> {
        self.calls.lock().unwrap().push(format!("CreateLogGroup {group}"));
        self.groups.lock().unwrap().entry(group.to_string()).or_insert(None);
        Ok(())
    }

    async fn set_retention(&self, group: &str, days: u32) -> ports::Result<()> {
        self.calls.lock().unwrap().push(format!("PutRetentionPolicy {group} {days}"));
        self.groups.lock().unwrap().insert(group.to_string(), Some(days));
        Ok(())
    }
}

/// A build's environment variables.
pub type BuildEnv = Vec<(String, String)>;

/// CodeBuild as the acceptance stage sees it: builds by id, their state set by the test.
#[derive(Default)]
pub struct FakeBuilds {
    pub builds: Mutex<BTreeMap<String, BuildState>>,
    /// (project, environment) of every StartBuild.
    pub started: Mutex<Vec<(String, BuildEnv)>>,
}

impl FakeBuilds {
    pub fn finish(&self, id: &str, status: &str, failed_phase: Option<(&str, &str)>) {
        let mut builds = self.builds.lock().unwrap();
        let b = builds.get_mut(id).expect("a started build");
        b.status = status.into();
        b.failed_phase = failed_phase.map(|(p, w)| (p.into(), w.into()));
    }
}

impl Builds for FakeBuilds {
    async fn start(&self, project: &str, environment: &[(String, String)]) -> ports::Result<BuildState> {
        let mut started = self.started.lock().unwrap();
        started.push((project.to_string(), environment.to_vec()));
        let id = format!("{project}:build-{}", started.len());
        let b = BuildState {
            id: id.clone(),
            status: "IN_PROGRESS".into(),
            failed_phase: None,
            logs: Some(format!("/aws/codebuild/{project}/build-{}", started.len())),
        };
        self.builds.lock().unwrap().insert(id, b.clone());
        Ok(b)
    }

    async fn get(&self, id: &str) -> ports::Result<Option<BuildState>> {
        Ok(self.builds.lock().unwrap().get(id).cloned())
    }
}
