//! The deployment target: what a team declares about one function, validated before anything is stored.
//!
//! ```json
//! {
//!   "function": "ml-inference",
//!   "repository": "ml-inference",
//!   "tagPattern": "^sha-[0-9a-f]{7,40}$",
//!   "alias": "live",
//!   "configuration": {
//!     "role": "arn:aws:iam::123456789012:role/ml-inference",
//!     "memoryMb": 512, "timeoutSeconds": 10, "architecture": "x86_64", "ephemeralStorageMb": 512,
//!     "environment": {"MODEL_NAME": "breast-cancer"},
//!     "logging": {"format": "JSON", "applicationLevel": "INFO", "systemLevel": "WARN"}
//!   },
//!   "smokeTest": {
//!     "latencyBudgetMs": 1000,
//!     "cases": [{"name": "golden-0", "payload": {"rows": [[1.0, 2.0]]}, "expect": {"classes": [1]}, "tolerance": 1e-6}]
//!   },
//!   "strategy": {"type": "all-at-once"}
//! }
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{AliasName, FunctionName, RepositoryName};
use crate::DeployError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TargetSpec {
    pub function: FunctionName,
    pub repository: RepositoryName,
    /// Regular expression a pushed tag must match for this target to deploy it.
    pub tag_pattern: String,
    #[serde(default = "default_alias")]
    pub alias: AliasName,
    pub configuration: DesiredConfig,
    pub smoke_test: SmokeTest,
    #[serde(default)]
    pub strategy: Strategy,
    /// What a canary or linear step must show before more traffic moves to the new version.
    #[serde(default)]
    pub gates: Gates,
    /// Provisioned concurrency for the version being deployed: allocated and READY before any traffic
    /// moves to it, and removed from the version it replaces once the alias has moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioned_concurrency: Option<u32>,
    /// The team's integration suite, run in CodeBuild against the candidate version before any traffic
    /// moves; its result gates the deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acceptance: Option<Acceptance>,
    /// How long an update may stay in progress before the deployment gives up and rolls back.
    #[serde(default = "default_ready_timeout")]
    pub ready_timeout_seconds: u32,
}

fn default_alias() -> AliasName {
    AliasName::parse("live").unwrap_or_else(|_| unreachable!("'live' is a valid alias"))
}

fn default_ready_timeout() -> u32 {
    300
}

/// The function's configuration as it must be after every deployment (drift is repaired).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DesiredConfig {
    pub role: String,
    #[serde(default = "default_memory")]
    pub memory_mb: u32,
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u32,
    #[serde(default)]
    pub architecture: Architecture,
    #[serde(default = "default_ephemeral")]
    pub ephemeral_storage_mb: u32,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub logging: LoggingSpec,
    /// Concurrent executions reserved for the function (also its ceiling); absent: none reserved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_concurrency: Option<u32>,
}

fn default_memory() -> u32 {
    128
}
fn default_timeout() -> u32 {
    3
}
fn default_ephemeral() -> u32 {
    512
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Architecture {
    #[default]
    #[serde(rename = "x86_64")]
    X86_64,
    #[serde(rename = "arm64")]
    Arm64,
}

impl Architecture {
    pub fn as_str(&self) -> &'static str {
        match self {
            Architecture::X86_64 => "x86_64",
            Architecture::Arm64 => "arm64",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoggingSpec {
    #[serde(default = "default_log_format")]
    pub format: LogFormat,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_level: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_level: Option<String>,
    /// The log group, when not Lambda's default `/aws/lambda/<function>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_group: Option<String>,
    /// How long the function's log group keeps its logs (a CloudWatch Logs retention value); absent:
    /// the group's retention is left as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
}

impl Default for LoggingSpec {
    fn default() -> Self {
        LoggingSpec {
            format: LogFormat::Json,
            application_level: None,
            system_level: None,
            log_group: None,
            retention_days: None,
        }
    }
}

fn default_log_format() -> LogFormat {
    LogFormat::Json
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogFormat {
    #[serde(rename = "JSON")]
    Json,
    Text,
}

impl LogFormat {
    pub fn as_str(&self) -> &'static str {
        match self {
            LogFormat::Json => "JSON",
            LogFormat::Text => "Text",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SmokeTest {
    /// Each case's round trip must take at most this long, after one warm-up invocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_budget_ms: Option<u64>,
    pub cases: Vec<SmokeCase>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SmokeCase {
    pub name: String,
    pub payload: Value,
    /// What the answer must contain: objects are matched key by key (extra keys are fine), arrays element
    /// by element, numbers within `tolerance`. Absent: the answer only has to be a success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Value>,
    #[serde(default)]
    pub tolerance: f64,
}

/// An acceptance stage: a CodeBuild project whose build runs against the candidate version. The build
/// gets DEPLOY_FUNCTION, DEPLOY_QUALIFIER (the candidate version), DEPLOY_ALIAS, DEPLOY_PREVIOUS_VERSION,
/// DEPLOY_IMAGE_DIGEST and DEPLOY_IMAGE_TAG, plus `environment`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Acceptance {
    pub project: String,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// A build still running after this long fails the stage.
    #[serde(default = "default_acceptance_timeout")]
    pub timeout_seconds: u32,
}

fn default_acceptance_timeout() -> u32 {
    1800
}

/// How traffic moves to the new version. The alias's weighted routing carries the steps; Wait states carry
/// the bake time (nothing runs, or is billed, while a step bakes).
///
/// Read by [`read_strategy`], not by serde's internally tagged enums, which ignore unknown fields beside a
/// unit variant's tag (`{"type": "all-at-once", "bakeSeconds": 600}` would pass) and lose the path of a
/// wrong field inside.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case", rename_all_fields = "camelCase")]
pub enum Strategy {
    /// Everything moves at once, after the smoke test.
    #[default]
    AllAtOnce,
    /// `percent` of the traffic for `bakeSeconds`, then all of it.
    Canary { percent: u32, bake_seconds: u32 },
    /// `stepPercent` more every `intervalSeconds` (10: 10%, 20%, ... 90%), then all of it.
    Linear { step_percent: u32, interval_seconds: u32 },
}

impl Strategy {
    /// The weights (percent of traffic on the new version) the alias goes through before 100%.
    pub fn weights(&self) -> Vec<u32> {
        match *self {
            Strategy::AllAtOnce => Vec::new(),
            Strategy::Canary { percent, .. } => vec![percent],
            Strategy::Linear { step_percent, .. } if step_percent > 0 => {
                (1..).map(|i| i * step_percent).take_while(|w| *w < 100).collect()
            }
            Strategy::Linear { .. } => Vec::new(),
        }
    }

    /// How long each step bakes.
    pub fn bake_seconds(&self) -> u32 {
        match *self {
            Strategy::AllAtOnce => 0,
            Strategy::Canary { bake_seconds, .. } => bake_seconds,
            Strategy::Linear { interval_seconds, .. } => interval_seconds,
        }
    }

    /// The longest the traffic shift can take (every step baked, metric lag and the longest wait for
    /// traffic included): what the deployment lock must outlive.
    pub fn max_seconds(&self, gates: &Gates) -> u32 {
        let steps = self.weights().len() as u32;
        let per_step = self.bake_seconds() + gates.metric_lag_seconds + gates.max_wait_seconds;
        steps.saturating_mul(per_step)
    }
}

/// Health gates, evaluated every `checkIntervalSeconds` while a step bakes and at its end. The candidate is
/// judged on its own (absolute limits) and against the version it replaces in the same window (margins),
/// both by `ExecutedVersion` under the alias.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Gates {
    /// CloudWatch alarms that must not be in ALARM.
    #[serde(default)]
    pub alarms: Vec<String>,
    /// The candidate's error rate (errors / invocations, 0 to 1) must not exceed this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error_rate: Option<f64>,
    /// The candidate's p99 duration must not exceed this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_p99_ms: Option<f64>,
    /// The alias may be throttled at most this many times in a step (Lambda counts throttles by alias, not
    /// by version: a throttled request executes none).
    #[serde(default)]
    pub max_throttles: u64,
    /// The candidate's error rate may exceed the baseline's by at most this much (0.01: one point).
    #[serde(default = "default_error_rate_margin")]
    pub error_rate_margin: f64,
    /// The candidate's p99 may exceed the baseline's by at most this fraction (0.5: 50% slower).
    #[serde(default = "default_p99_margin")]
    pub p99_margin: f64,
    /// ... and by more than this many milliseconds: below it, a difference is noise (a few ms on a fast
    /// function are a large fraction).
    #[serde(default = "default_p99_tolerance")]
    pub p99_tolerance_ms: f64,
    /// Fewer candidate invocations than this in a step is too little traffic to judge.
    #[serde(default = "default_min_invocations")]
    pub min_invocations: u64,
    #[serde(default = "default_check_interval")]
    pub check_interval_seconds: u32,
    /// How late CloudWatch's data may arrive: a step is judged this long after its bake ends. Default: the
    /// function's timeout + 60 s (an invocation's metrics come when it ends, then CloudWatch's ingest lag).
    #[serde(default = "default_metric_lag")]
    pub metric_lag_seconds: u32,
    /// Too little traffic at the end of a step: wait longer (up to `maxWaitSeconds`), or fail at once.
    #[serde(default)]
    pub on_insufficient_data: OnInsufficientData,
    #[serde(default = "default_max_wait")]
    pub max_wait_seconds: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnInsufficientData {
    #[default]
    Wait,
    Fail,
}

fn default_error_rate_margin() -> f64 {
    0.01
}
fn default_p99_margin() -> f64 {
    0.5
}
fn default_p99_tolerance() -> f64 {
    20.0
}
fn default_min_invocations() -> u64 {
    20
}
fn default_check_interval() -> u32 {
    60
}
fn default_metric_lag() -> u32 {
    60
}
fn default_max_wait() -> u32 {
    600
}

impl Default for Gates {
    fn default() -> Self {
        Gates {
            alarms: Vec::new(),
            max_error_rate: None,
            max_p99_ms: None,
            max_throttles: 0,
            error_rate_margin: default_error_rate_margin(),
            p99_margin: default_p99_margin(),
            p99_tolerance_ms: default_p99_tolerance(),
            min_invocations: default_min_invocations(),
            check_interval_seconds: default_check_interval(),
            metric_lag_seconds: default_metric_lag(),
            on_insufficient_data: OnInsufficientData::Wait,
            max_wait_seconds: default_max_wait(),
        }
    }
}

const RESERVED_ENV: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

/// Parse and validate a spec; the error lists every problem, each with the field it is about.
pub fn parse(json: &str) -> Result<TargetSpec, DeployError> {
    // Straight from the text (not through a Value), so a key given twice is refused, not silently the last.
    let de = &mut serde_json::Deserializer::from_str(json);
    let mut spec: TargetSpec = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let nested = serde_json::from_str::<Value>(json).ok().and_then(|doc| nested_error(&doc, &path));
        let at = if path == "." { String::new() } else { format!("{path}: ") };
        DeployError::invalid(nested.unwrap_or_else(|| format!("target spec: {at}{}", e.inner())))
    })?;
    // One document and nothing after it: what follows would be ignored, and what is ignored is not reviewed.
    de.end().map_err(|e| {
        DeployError::invalid(format!("target spec: {e}: the file must hold one JSON document and nothing after it"))
    })?;
    // Lambda publishes an invocation's metrics when it ends, up to the function's timeout after it began, and
    // CloudWatch takes about a minute more: unless the spec says otherwise, a step is judged that much later.
    let lag_given =
        serde_json::from_str::<Value>(json).ok().is_some_and(|doc| doc.pointer("/gates/metricLagSeconds").is_some());
    if !lag_given {
        spec.gates.metric_lag_seconds = spec.configuration.timeout_seconds + default_metric_lag();
    }
    spec.validate()?;
    Ok(spec)
}

impl<'de> Deserialize<'de> for Strategy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        read_strategy(&v)
            .map_err(|(path, why)| serde::de::Error::custom(if path == "." { why } else { format!("{path}: {why}") }))
    }
}

/// A strategy object by its `type`, every other field checked against that type's: (the path inside the
/// strategy, what is wrong) when it does not fit.
fn read_strategy(v: &Value) -> Result<Strategy, (String, String)> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Canary {
        #[serde(rename = "type")]
        _type: String,
        percent: u32,
        bake_seconds: u32,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Linear {
        #[serde(rename = "type")]
        _type: String,
        step_percent: u32,
        interval_seconds: u32,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct AllAtOnce {
        #[serde(rename = "type")]
        _type: String,
    }
    fn read<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T, (String, String)> {
        serde_path_to_error::deserialize(v).map_err(|e| (e.path().to_string(), e.inner().to_string()))
    }
    let kind = match v.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(other) => return Err(("type".into(), format!("{other} is not a strategy type (a string)"))),
        None if v.is_object() => return Err((".".into(), "missing field `type`".into())),
        None => return Err((".".into(), format!("{v} is not a strategy (an object with a `type`)"))),
    };
    match kind {
        "all-at-once" => read::<AllAtOnce>(v).map(|_| Strategy::AllAtOnce),
        "canary" => read::<Canary>(v).map(|c| Strategy::Canary { percent: c.percent, bake_seconds: c.bake_seconds }),
        "linear" => read::<Linear>(v)
            .map(|l| Strategy::Linear { step_percent: l.step_percent, interval_seconds: l.interval_seconds }),
        other => Err((
            "type".into(),
            format!("unknown variant `{other}`, expected one of `all-at-once`, `canary`, `linear`"),
        )),
    }
}

/// The error at `path` again, with the field inside the strategy named (`strategy.percent`).
fn nested_error(doc: &Value, path: &str) -> Option<String> {
    if path != "strategy" {
        return None;
    }
    let (inner, why) = read_strategy(doc.get("strategy")?).err()?;
    let field = if inner == "." { "strategy".to_string() } else { format!("strategy.{inner}") };
    Some(format!("target spec: {field}: {why}"))
}

impl TargetSpec {
    pub fn validate(&self) -> Result<(), DeployError> {
        let mut problems: Vec<String> = Vec::new();
        let mut bad = |field: &str, why: String| problems.push(format!("{field}: {why}"));

        if let Err(e) = regex_lite::Regex::new(&self.tag_pattern) {
            bad("tagPattern", format!("not a valid regular expression ({e})"));
        }
        let c = &self.configuration;
        let role_ok = c.role.starts_with("arn:aws")
            && c.role.contains(":iam::")
            && c.role.split(':').nth(4).is_some_and(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()))
            && c.role.split(":role/").nth(1).is_some_and(|n| !n.is_empty());
        if !role_ok {
            bad(
                "configuration.role",
                format!("{:?} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)", c.role),
            );
        }
        if !(128..=10240).contains(&c.memory_mb) {
            bad("configuration.memoryMb", format!("{} is outside Lambda's 128-10240 MB", c.memory_mb));
        }
        if !(1..=900).contains(&c.timeout_seconds) {
            bad("configuration.timeoutSeconds", format!("{} is outside Lambda's 1-900 s", c.timeout_seconds));
        }
        if !(512..=10240).contains(&c.ephemeral_storage_mb) {
            bad(
                "configuration.ephemeralStorageMb",
                format!("{} is outside Lambda's 512-10240 MB", c.ephemeral_storage_mb),
            );
        }
        let mut env_size = 0;
        for (k, v) in &c.environment {
            env_size += k.len() + v.len();
            let key_ok = k.len() >= 2
                && k.as_bytes()[0].is_ascii_alphabetic()
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !key_ok {
                bad(
                    &format!("configuration.environment.{k}"),
                    "names are a letter, then letters, digits or '_'".into(),
                );
            } else if RESERVED_ENV.contains(&k.as_str()) {
                bad(&format!("configuration.environment.{k}"), "is reserved by Lambda and cannot be set".into());
            }
            if looks_like_secret(k, v) {
                bad(
                    &format!("configuration.environment.{k}"),
                    "looks like a secret: store it in Secrets Manager or SSM and put its ARN here instead".into(),
                );
            }
        }
        if c.reserved_concurrency.is_some_and(|n| n > 1000) {
            bad("configuration.reservedConcurrency", "is above the default account limit of 1000".into());
        }
        if env_size > 4096 {
            bad("configuration.environment", format!("{env_size} bytes exceed Lambda's 4 KB limit"));
        }
        let l = &c.logging;
        if l.format == LogFormat::Text && (l.application_level.is_some() || l.system_level.is_some()) {
            bad("configuration.logging", "log levels need format JSON; set format to JSON or drop the levels".into());
        }
        const APP: &[&str] = &["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
        const SYS: &[&str] = &["DEBUG", "INFO", "WARN"];
        if let Some(level) = &l.application_level {
            if !APP.contains(&level.as_str()) {
                bad("configuration.logging.applicationLevel", format!("{level:?} is not one of {APP:?}"));
            }
        }
        if let Some(level) = &l.system_level {
            if !SYS.contains(&level.as_str()) {
                bad("configuration.logging.systemLevel", format!("{level:?} is not one of {SYS:?}"));
            }
        }
        const RETENTION: &[u32] =
            &[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];
        if let Some(days) = l.retention_days {
            if !RETENTION.contains(&days) {
                bad(
                    "configuration.logging.retentionDays",
                    format!("{days} is not a CloudWatch Logs retention ({RETENTION:?})"),
                );
            }
        }
        if self.smoke_test.cases.is_empty() {
            bad("smokeTest.cases", "at least one case is needed: nothing reaches the alias untested".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, case) in self.smoke_test.cases.iter().enumerate() {
            if case.name.trim().is_empty() {
                bad(&format!("smokeTest.cases[{i}].name"), "must not be empty".into());
            } else if !names.insert(case.name.as_str()) {
                bad(&format!("smokeTest.cases[{i}].name"), format!("{:?} is used twice", case.name));
            }
            if !(case.tolerance.is_finite() && case.tolerance >= 0.0) {
                bad(&format!("smokeTest.cases[{i}].tolerance"), "must be a number >= 0".into());
            }
            if case.payload.to_string().len() > 256 * 1024 {
                bad(&format!("smokeTest.cases[{i}].payload"), "is larger than 256 KB".into());
            }
        }
        if self.smoke_test.latency_budget_ms == Some(0) {
            bad("smokeTest.latencyBudgetMs", "must be more than 0".into());
        }
        if !(10..=3600).contains(&self.ready_timeout_seconds) {
            bad("readyTimeoutSeconds", format!("{} is outside 10-3600 s", self.ready_timeout_seconds));
        }
        match self.strategy {
            Strategy::AllAtOnce => {}
            Strategy::Canary { percent, bake_seconds } => {
                if !(1..=99).contains(&percent) {
                    bad("strategy.percent", format!("{percent} is outside 1-99 (the canary's share of traffic)"));
                }
                if bake_seconds == 0 {
                    bad("strategy.bakeSeconds", "must be more than 0".into());
                }
            }
            Strategy::Linear { step_percent, interval_seconds } => {
                if !(1..=50).contains(&step_percent) {
                    bad("strategy.stepPercent", format!("{step_percent} is outside 1-50 (at least two steps)"));
                }
                if interval_seconds == 0 {
                    bad("strategy.intervalSeconds", "must be more than 0".into());
                }
            }
        }
        if let Some(a) = &self.acceptance {
            let ok = a.project.len() >= 2
                && a.project.len() <= 255
                && a.project.starts_with(|c: char| c.is_ascii_alphanumeric())
                && a.project.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !ok {
                bad("acceptance.project", format!("{:?} is not a CodeBuild project name", a.project));
            }
            if !(60..=28_800).contains(&a.timeout_seconds) {
                bad("acceptance.timeoutSeconds", format!("{} is outside 60-28800 s", a.timeout_seconds));
            }
            for k in a.environment.keys() {
                if k.starts_with("DEPLOY_") || k.starts_with("CODEBUILD_") {
                    bad(
                        &format!("acceptance.environment.{k}"),
                        "DEPLOY_* and CODEBUILD_* are set by the deployer".into(),
                    );
                }
            }
        }
        if self.provisioned_concurrency.is_some_and(|n| !(1..=10_000).contains(&n)) {
            bad("provisionedConcurrency", "must be 1 to 10000 (leave it out for none)".into());
        }
        let g = &self.gates;
        const MAX_SHIFT_SECONDS: u32 = 5 * 3600;
        if self.strategy.max_seconds(g) > MAX_SHIFT_SECONDS {
            bad(
                "strategy",
                format!(
                    "the shift could take {} s (steps x (bake + metricLagSeconds + maxWaitSeconds)); the limit is \
                     {MAX_SHIFT_SECONDS} s: use fewer or shorter steps",
                    self.strategy.max_seconds(g)
                ),
            );
        }
        for (i, alarm) in g.alarms.iter().enumerate() {
            if alarm.is_empty() || alarm.len() > 255 {
                bad(&format!("gates.alarms[{i}]"), "an alarm name is 1 to 255 characters".into());
            }
        }
        if g.max_error_rate.is_some_and(|r| !(0.0..=1.0).contains(&r)) {
            bad("gates.maxErrorRate", "is a fraction from 0 to 1 (0.01 is 1%)".into());
        }
        if g.max_p99_ms.is_some_and(|ms| !(ms.is_finite() && ms > 0.0)) {
            bad("gates.maxP99Ms", "must be a number > 0".into());
        }
        if !(g.error_rate_margin.is_finite() && (0.0..=1.0).contains(&g.error_rate_margin)) {
            bad("gates.errorRateMargin", "is a fraction from 0 to 1 (0.01 is one point)".into());
        }
        if !(g.p99_margin.is_finite() && g.p99_margin >= 0.0) {
            bad("gates.p99Margin", "must be a number >= 0 (0.5 allows 50% slower)".into());
        }
        if !(g.p99_tolerance_ms.is_finite() && g.p99_tolerance_ms >= 0.0) {
            bad("gates.p99ToleranceMs", "must be a number >= 0".into());
        }
        if g.min_invocations == 0 {
            bad("gates.minInvocations", "must be at least 1: a step with no traffic proves nothing".into());
        }
        if g.check_interval_seconds == 0 {
            bad("gates.checkIntervalSeconds", "must be more than 0".into());
        }
        for (field, why) in crate::budget::problems(self) {
            bad(field, why);
        }
        let size = serde_json::to_vec(self).map_or(0, |v| v.len());
        if size > MAX_SPEC_BYTES {
            bad(
                "(spec)",
                format!(
                    "is {size} bytes as JSON; the limit is {MAX_SPEC_BYTES}: every step of the state machine carries \
                     the spec, and a Step Functions state holds at most 262,144 bytes. The largest parts: {}",
                    largest_parts(self)
                ),
            );
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(DeployError::invalid(format!(
                "target spec for {} has {} problem(s):\n- {}",
                self.function,
                problems.len(),
                problems.join("\n- ")
            )))
        }
    }

    /// Whether a pushed tag is one this target deploys. The pattern was validated at parse time.
    pub fn allows_tag(&self, tag: &str) -> bool {
        regex_lite::Regex::new(&self.tag_pattern).is_ok_and(|re| re.is_match(tag))
    }

    /// The log group the function writes to.
    pub fn log_group(&self) -> String {
        self.configuration.logging.log_group.clone().unwrap_or_else(|| format!("/aws/lambda/{}", self.function))
    }
}

/// The largest a spec may be, as JSON: the state machine carries it through every step, beside the input and
/// each step's output, and a state holds at most 256 KiB. (A stored spec is also far from DynamoDB's 400 KB
/// item limit.)
pub const MAX_SPEC_BYTES: usize = 64 * 1024;

/// The spec's three largest smoke cases and environment, with their sizes: what to shrink.
fn largest_parts(spec: &TargetSpec) -> String {
    let len = |v: &Value| v.to_string().len();
    let mut parts: Vec<(String, usize)> = spec
        .smoke_test
        .cases
        .iter()
        .enumerate()
        .flat_map(|(i, c)| {
            [
                (format!("smokeTest.cases[{i}].payload"), len(&c.payload)),
                (format!("smokeTest.cases[{i}].expect"), c.expect.as_ref().map_or(0, len)),
            ]
        })
        .collect();
    let env: usize = spec.configuration.environment.iter().map(|(k, v)| k.len() + v.len() + 6).sum();
    parts.push(("configuration.environment".into(), env));
    parts.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    parts.iter().take(3).map(|(f, n)| format!("{f} ({n} bytes)")).collect::<Vec<_>>().join(", ")
}

/// Secrets belong in Secrets Manager or SSM: a value under a secret-sounding name that is not an ARN
/// or a parameter path is refused.
fn looks_like_secret(key: &str, value: &str) -> bool {
    let k = key.to_ascii_uppercase();
    let secret_name = ["SECRET", "PASSWORD", "TOKEN", "PRIVATE_KEY", "API_KEY"].iter().any(|s| k.contains(s));
    let reference = value.starts_with("arn:") || value.starts_with('/') || value.is_empty();
    secret_name && !reference
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid() -> Value {
        json!({
            "function": "ml-inference",
            "repository": "ml-inference",
            "tagPattern": "^sha-[0-9a-f]{7,40}$",
            "configuration": {"role": "arn:aws:iam::123456789012:role/ml", "memoryMb": 512, "timeoutSeconds": 10,
                              "environment": {"MODEL_NAME": "bc"}},
            "smokeTest": {"latencyBudgetMs": 800, "cases": [{"name": "golden", "payload": {"x": 1}, "expect": {"y": 2}}]}
        })
    }

    fn problems(doc: Value) -> String {
        parse(&doc.to_string()).unwrap_err().to_string()
    }

    #[test]
    fn a_valid_spec_gets_its_defaults() {
        let spec = parse(&valid().to_string()).unwrap();
        assert_eq!(spec.alias.as_str(), "live");
        assert_eq!(spec.strategy, Strategy::AllAtOnce);
        assert_eq!(spec.configuration.architecture, Architecture::X86_64);
        assert_eq!(spec.configuration.logging.format, LogFormat::Json);
        assert_eq!(spec.configuration.ephemeral_storage_mb, 512);
        assert_eq!(spec.ready_timeout_seconds, 300);
        assert!(spec.allows_tag("sha-0123abc"));
        assert!(!spec.allows_tag("latest"));
        assert_eq!(spec.log_group(), "/aws/lambda/ml-inference");
    }

    #[test]
    fn each_bad_field_is_named_with_what_is_wrong() {
        let cases: Vec<(&str, Value, &str)> = vec![
            (
                "unknown field",
                json!({"configuration": {"memoryMB": 1}}),
                "configuration.memoryMB: unknown field `memoryMB`",
            ),
            ("bad function", json!({"function": "has space"}), "function: function name \"has space\" is not valid"),
            ("bad pattern", json!({"tagPattern": "(unclosed"}), "tagPattern: not a valid regular expression"),
            ("memory", json!({"configuration": {"memoryMb": 64}}), "configuration.memoryMb: 64 is outside"),
            ("timeout", json!({"configuration": {"timeoutSeconds": 901}}), "configuration.timeoutSeconds: 901"),
            (
                "role",
                json!({"configuration": {"role": "ml-role"}}),
                "configuration.role: \"ml-role\" is not an IAM role ARN",
            ),
            ("reserved env", json!({"configuration": {"environment": {"AWS_REGION": "x"}}}), "AWS_REGION: is reserved"),
            (
                "secret env",
                json!({"configuration": {"environment": {"DB_PASSWORD": "hunter2"}}}),
                "looks like a secret",
            ),
            (
                "levels on text",
                json!({"configuration": {"logging": {"format": "Text", "applicationLevel": "INFO"}}}),
                "log levels need format JSON",
            ),
            ("no cases", json!({"smokeTest": {"cases": []}}), "smokeTest.cases: at least one case"),
            (
                "dup case",
                json!({"smokeTest": {"cases": [{"name": "a", "payload": 1}, {"name": "a", "payload": 2}]}}),
                "\"a\" is used twice",
            ),
            ("strategy", json!({"strategy": {"type": "blue-green"}}), "strategy.type: unknown variant `blue-green`"),
            (
                "architecture",
                json!({"configuration": {"architecture": "x86"}}),
                "configuration.architecture: unknown variant `x86`",
            ),
        ];
        for (what, patch, want) in cases {
            let mut doc = valid();
            merge(&mut doc, patch);
            let got = problems(doc);
            assert!(got.contains(want), "{what}: {got}");
        }
    }

    #[test]
    fn only_one_json_document_is_a_spec_and_each_key_counts_once() {
        let text = format!("{}\n{{\"function\": \"other\"}}", valid());
        let got = parse(&text).unwrap_err().to_string();
        assert!(got.contains("trailing characters at line 2"), "{got}");
        assert!(got.contains("one JSON document and nothing after it"), "{got}");
        let twice = valid().to_string().replacen('{', r#"{"function": "ml-other", "#, 1);
        let got = parse(&twice).unwrap_err().to_string();
        assert!(got.contains("duplicate field `function`"), "{got}");
        assert!(parse(&format!("{}\n\n", valid())).is_ok(), "whitespace after the document is fine");
    }

    #[test]
    fn a_wrong_field_inside_the_strategy_is_named_by_its_path() {
        let cases = [
            (json!({"type": "canary", "percent": "ten", "bakeSeconds": 60}), "strategy.percent: invalid type: string"),
            (json!({"type": "canary", "percent": 10}), "strategy: missing field `bakeSeconds`"),
            (
                json!({"type": "linear", "stepPercent": 10, "intervalSeconds": -1}),
                "strategy.intervalSeconds: invalid value",
            ),
            (
                json!({"type": "canary", "percent": 10, "bakeSeconds": 6, "bake": 1}),
                "strategy.bake: unknown field `bake`",
            ),
            (json!({"type": "all-at-once", "percent": 10}), "strategy.percent: unknown field `percent`"),
        ];
        for (strategy, want) in cases {
            let mut doc = valid();
            doc["strategy"] = strategy.clone();
            let got = problems(doc);
            assert!(got.contains(want), "{strategy}: {got}");
        }
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let mut doc = valid();
        merge(&mut doc, json!({"configuration": {"memoryMb": 1, "timeoutSeconds": 0}, "readyTimeoutSeconds": 1}));
        let got = problems(doc);
        assert!(got.contains("has 3 problem(s)"), "{got}");
    }

    #[test]
    fn a_spec_whose_stages_cannot_fit_the_state_machines_timeout_is_refused_with_the_numbers() {
        // GIVEN an 8-hour acceptance stage and a linear shift of up to 5 hours
        let mut doc = valid();
        merge(
            &mut doc,
            json!({"acceptance": {"project": "ml-it", "timeoutSeconds": 28800},
                   "strategy": {"type": "linear", "stepPercent": 10, "intervalSeconds": 1200}}),
        );
        let got = problems(doc);
        // THEN it is refused, with the total, the limit and the stages, largest first
        assert!(
            got.contains("(stages): the deployment could take 47530 s, more than the state machine's 21600 s"),
            "{got}"
        );
        assert!(got.contains("acceptance (acceptance.timeoutSeconds) 28800 s, traffic shift"), "{got}");
    }

    #[test]
    fn a_spec_whose_polling_could_overflow_the_execution_history_is_refused() {
        // GIVEN 50 steps of a shift checked every second: about 1,300 checks a step
        let mut doc = valid();
        merge(
            &mut doc,
            json!({"strategy": {"type": "linear", "stepPercent": 2, "intervalSeconds": 30},
                   "gates": {"checkIntervalSeconds": 1, "maxWaitSeconds": 240}}),
        );
        let got = problems(doc);
        assert!(got.contains("(stages): the deployment's polling could write"), "{got}");
        assert!(got.contains("Use fewer steps or a longer gates.checkIntervalSeconds"), "{got}");
        // AND the same shift checked every 30 s fits
        let mut doc = valid();
        merge(
            &mut doc,
            json!({"strategy": {"type": "linear", "stepPercent": 2, "intervalSeconds": 30},
                   "gates": {"checkIntervalSeconds": 30, "maxWaitSeconds": 240}}),
        );
        assert!(parse(&doc.to_string()).is_ok());
    }

    #[test]
    fn smoke_cases_that_cannot_run_in_one_step_invocation_are_refused() {
        let mut doc = valid();
        merge(&mut doc, json!({"configuration": {"timeoutSeconds": 300}}));
        let cases: Vec<Value> = (0..3).map(|i| json!({"name": format!("c{i}"), "payload": {}, "expect": {}})).collect();
        doc["smokeTest"]["cases"] = json!(cases);
        let got = problems(doc);
        assert!(
            got.contains(
                "smokeTest.cases: 3 case(s) and a warm-up at configuration.timeoutSeconds 300 could take 1230 s"
            ),
            "{got}"
        );
    }

    #[test]
    fn a_spec_too_large_to_carry_through_the_state_machine_is_refused_naming_its_largest_part() {
        let mut doc = valid();
        doc["smokeTest"]["cases"][0]["payload"] = json!({"rows": "x".repeat(70_000)});
        let got = problems(doc);
        assert!(got.contains("(spec): is 70"), "{got}");
        assert!(got.contains("the limit is 65536"), "{got}");
        assert!(got.contains("The largest parts: smokeTest.cases[0].payload (70011 bytes)"), "{got}");
    }

    #[test]
    fn the_example_service_spec_fits_every_budget() {
        let text = include_str!("../../../examples/ml-inference/target.json");
        let spec = parse(text).expect("the example spec is valid");
        let budget = crate::budget::Budget::of(&spec);
        assert!(budget.seconds() <= crate::budget::STATE_MACHINE_TIMEOUT_SECONDS, "{budget:?}");
        assert!(budget.events() <= crate::budget::HISTORY_BUDGET, "{budget:?}");
    }

    #[test]
    fn metric_lag_defaults_to_the_functions_timeout_plus_a_minute_unless_given() {
        let spec = parse(&valid().to_string()).unwrap();
        assert_eq!(spec.gates.metric_lag_seconds, 10 + 60, "timeoutSeconds 10 + 60");
        let mut doc = valid();
        merge(&mut doc, json!({"gates": {"metricLagSeconds": 5}}));
        assert_eq!(parse(&doc.to_string()).unwrap().gates.metric_lag_seconds, 5);
    }

    #[test]
    fn secret_references_are_allowed() {
        let mut doc = valid();
        merge(
            &mut doc,
            json!({"configuration": {"environment": {"DB_PASSWORD": "arn:aws:secretsmanager:us-east-1:123456789012:secret:db"}}}),
        );
        assert!(parse(&doc.to_string()).is_ok());
    }

    fn merge(doc: &mut Value, patch: Value) {
        match (doc, patch) {
            (Value::Object(d), Value::Object(p)) => {
                for (k, v) in p {
                    merge(d.entry(k).or_insert(Value::Null), v);
                }
            }
            (d, p) => *d = p,
        }
    }
}
