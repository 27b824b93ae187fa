//! Pure decisions: given what AWS reports, what is true and what to do next. No I/O, table-tested.

use serde_json::Value;

use crate::ids::{AliasName, FunctionName, ImageDigest, Version};
use crate::model::{
    AlarmState, AliasState, DeploymentRecord, Drift, FunctionState, Invocation, LambdaState, Outcome, PendingImage,
    UpdateStatus, VersionStats,
};
use crate::spec::{DesiredConfig, Gates, LogFormat, SmokeCase};
use crate::DeployError;

fn drift(field: &str, expected: impl ToString, actual: impl ToString) -> Drift {
    Drift { field: field.to_string(), expected: expected.to_string(), actual: actual.to_string() }
}

/// How a drifted environment variable is reported: whether it is set, never its value.
pub const ENV_SET: &str = "(set)";
pub const ENV_UNSET: &str = "(unset)";
pub const ENV_OTHER: &str = "(set to another value, not shown)";

/// The configuration fields (not the code) that differ from the spec. Architecture is part of the code
/// (Lambda sets it with UpdateFunctionCode) and is compared by [`code_matches`].
pub fn config_drift(desired: &DesiredConfig, current: &FunctionState, default_log_group: &str) -> Vec<Drift> {
    let c = &current.config;
    let mut out = Vec::new();
    if desired.role != c.role {
        out.push(drift("role", &desired.role, &c.role));
    }
    if desired.memory_mb != c.memory_mb {
        out.push(drift("memoryMb", desired.memory_mb, c.memory_mb));
    }
    if desired.timeout_seconds != c.timeout_seconds {
        out.push(drift("timeoutSeconds", desired.timeout_seconds, c.timeout_seconds));
    }
    if desired.ephemeral_storage_mb != c.ephemeral_storage_mb {
        out.push(drift("ephemeralStorageMb", desired.ephemeral_storage_mb, c.ephemeral_storage_mb));
    }
    let keys: std::collections::BTreeSet<&String> = desired.environment.keys().chain(c.environment.keys()).collect();
    for key in keys {
        let (want, have) = (desired.environment.get(key), c.environment.get(key));
        if want != have {
            // Never a value: one set out of band may be a secret, and a drift report is copied into the
            // execution's output, the deployment record and the logs.
            let (expected, actual) = match (want, have) {
                (Some(_), None) => (ENV_SET, ENV_UNSET),
                (None, _) => (ENV_UNSET, ENV_SET),
                (Some(_), Some(_)) => (ENV_SET, ENV_OTHER),
            };
            out.push(drift(&format!("environment.{key}"), expected, actual));
        }
    }
    let l = &desired.logging;
    if l.format.as_str() != c.log_format {
        out.push(drift("logging.format", l.format.as_str(), &c.log_format));
    }
    if l.format == LogFormat::Json {
        let app = l.application_level.as_deref().unwrap_or("INFO");
        let sys = l.system_level.as_deref().unwrap_or("INFO");
        if c.application_level.as_deref().unwrap_or("INFO") != app {
            out.push(drift("logging.applicationLevel", app, c.application_level.as_deref().unwrap_or("(unset)")));
        }
        if c.system_level.as_deref().unwrap_or("INFO") != sys {
            out.push(drift("logging.systemLevel", sys, c.system_level.as_deref().unwrap_or("(unset)")));
        }
    }
    let want_group = l.log_group.as_deref().unwrap_or(default_log_group);
    let have_group = c.log_group.as_deref().unwrap_or(default_log_group);
    if want_group != have_group {
        out.push(drift("logging.logGroup", want_group, have_group));
    }
    out
}

/// Reserved concurrency is set apart from the configuration (PutFunctionConcurrency, no update cycle).
pub fn concurrency_drift(desired: &DesiredConfig, current: &FunctionState) -> Option<Drift> {
    let show = |v: Option<u32>| v.map(|n| n.to_string()).unwrap_or_else(|| "(unreserved)".into());
    (desired.reserved_concurrency != current.config.reserved_concurrency).then(|| {
        drift("reservedConcurrency", show(desired.reserved_concurrency), show(current.config.reserved_concurrency))
    })
}

/// Whether the function runs exactly this image on this architecture.
pub fn code_matches(current: &FunctionState, digest: &ImageDigest, architecture: &str) -> bool {
    current.code_sha256 == digest.hex() && current.config.architecture == architecture
}

/// What Update Function must do next.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateDecision {
    Create,
    /// An update is in progress: send nothing, let the readiness loop wait.
    Wait,
    UpdateConfiguration(Vec<Drift>),
    UpdateCode,
    Nothing,
}

pub fn next_update(
    current: Option<&FunctionState>,
    desired: &DesiredConfig,
    default_log_group: &str,
    digest: &ImageDigest,
) -> UpdateDecision {
    let Some(f) = current else { return UpdateDecision::Create };
    if f.state == LambdaState::Pending || f.last_update == UpdateStatus::InProgress {
        return UpdateDecision::Wait;
    }
    let drift = config_drift(desired, f, default_log_group);
    if !drift.is_empty() {
        return UpdateDecision::UpdateConfiguration(drift);
    }
    if !code_matches(f, digest, desired.architecture.as_str()) {
        return UpdateDecision::UpdateCode;
    }
    UpdateDecision::Nothing
}

#[derive(Debug, Clone, PartialEq)]
pub enum Readiness {
    Ready,
    Pending,
    /// Ready, but not yet what the spec asks for (the configuration went first; the code is next).
    Drifted,
    Failed(String),
}

/// Is the function ready to be smoke-tested? Never sleeps: the state machine waits and asks again.
pub fn readiness(
    f: &FunctionState,
    desired: &DesiredConfig,
    default_log_group: &str,
    digest: &ImageDigest,
    elapsed_ms: u64,
    timeout_ms: u64,
) -> Readiness {
    if f.state == LambdaState::Failed {
        let reason = f.state_reason.as_deref().unwrap_or("no reason given");
        return Readiness::Failed(format!("function {} is in state Failed: {reason}", f.name));
    }
    if f.last_update == UpdateStatus::Failed {
        let reason = f.last_update_reason.as_deref().unwrap_or("no reason given");
        return Readiness::Failed(format!("the last update of {} failed: {reason}", f.name));
    }
    if f.state == LambdaState::Pending || f.last_update == UpdateStatus::InProgress {
        if elapsed_ms > timeout_ms {
            return Readiness::Failed(format!(
                "{} was still updating after {} s (readyTimeoutSeconds is {} s)",
                f.name,
                elapsed_ms / 1000,
                timeout_ms / 1000
            ));
        }
        return Readiness::Pending;
    }
    // An image function's code is confirmed twice: CodeSha256, and the image Lambda resolved its ImageUri to.
    if f.package_type == "Image" && f.code_sha256 == digest.hex() {
        match f.resolved_image_uri.as_deref() {
            Some(uri) if uri.ends_with(&format!("@{digest}")) => {}
            Some(uri) => {
                return Readiness::Failed(format!(
                    "{} reports CodeSha256 {} but its ResolvedImageUri is {uri}, not an image with digest {digest}: \
                     Lambda does not run the image this deployment set",
                    f.name, f.code_sha256
                ))
            }
            None => {
                return Readiness::Failed(format!(
                    "GetFunction returned no Code.ResolvedImageUri for image function {}: which image it runs \
                     cannot be confirmed",
                    f.name
                ))
            }
        }
    }
    if !config_drift(desired, f, default_log_group).is_empty()
        || !code_matches(f, digest, desired.architecture.as_str())
    {
        return Readiness::Drifted;
    }
    Readiness::Ready
}

/// Everything wrong with one smoke case's answer; empty when it passed.
pub fn judge_case(case: &SmokeCase, got: &Invocation, latency_budget_ms: Option<u64>) -> Vec<String> {
    let mut out = Vec::new();
    let payload: Result<Value, _> = serde_json::from_slice(&got.payload);
    if let Some(kind) = &got.function_error {
        let detail = payload
            .as_ref()
            .ok()
            .map(|v| {
                format!("{}: {}", v["errorType"].as_str().unwrap_or(kind), v["errorMessage"].as_str().unwrap_or(""))
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&got.payload).into_owned());
        out.push(format!("case {:?}: the function failed ({detail})", case.name));
        return out;
    }
    match (&case.expect, payload) {
        (Some(_), Err(e)) => out.push(format!("case {:?}: the answer is not JSON ({e})", case.name)),
        (Some(expected), Ok(actual)) => {
            let mut diffs = Vec::new();
            compare(expected, &actual, case.tolerance, "$", &mut diffs);
            out.extend(diffs.into_iter().map(|d| format!("case {:?}: {d}", case.name)));
        }
        (None, _) => {}
    }
    if let Some(budget) = latency_budget_ms {
        if got.latency_ms > budget {
            out.push(format!("case {:?}: took {} ms, over the {budget} ms latency budget", case.name, got.latency_ms));
        }
    }
    out
}

/// Compare an expected JSON value with the actual one. Objects: each expected key must match (extra keys
/// are fine). Arrays: same length, element by element. Numbers: within `tolerance`.
pub fn compare(expected: &Value, actual: &Value, tolerance: f64, path: &str, out: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            // Sorted, so the report reads the same whatever order serde_json's maps keep.
            let mut keys: Vec<&String> = e.keys().collect();
            keys.sort();
            for k in keys {
                let ev = &e[k];
                match a.get(k) {
                    Some(av) => compare(ev, av, tolerance, &format!("{path}.{k}"), out),
                    None => out.push(format!("{path}.{k} is missing (expected {ev})")),
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                out.push(format!("{path} has {} items, expected {}", a.len(), e.len()));
                return;
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                compare(ev, av, tolerance, &format!("{path}[{i}]"), out);
            }
        }
        (Value::Number(e), Value::Number(a)) => {
            let (e, a) = (e.as_f64().unwrap_or(f64::NAN), a.as_f64().unwrap_or(f64::NAN));
            // NaN on either side is a mismatch, hence the explicit `is_le` rather than `>`.
            if !(e - a).abs().partial_cmp(&tolerance).is_some_and(|o| o.is_le()) {
                out.push(format!("{path} is {a}, expected {e} (tolerance {tolerance})"));
            }
        }
        (e, a) if e == a => {}
        (e, a) => out.push(format!("{path} is {a}, expected {e}")),
    }
}

/// The prefix of the trigger's execution names; anything else was started by hand.
const TRIGGER_PREFIX: &str = "deploy-";

/// The execution name for deploying `digest` to `target`: the same event twice gives the same name,
/// so Step Functions starts it once.
pub fn execution_name(target: &FunctionName, digest: &ImageDigest) -> String {
    attempt_name(target, digest, 1)
}

/// Step Functions' limit on an execution's name.
const NAME_MAX: usize = 80;

/// The name of attempt `attempt` at deploying `digest` to `target`: the first is [`execution_name`]; a
/// later one (a start from the queue, a reconcile of an image whose earlier attempt was queued or turned
/// away) ends `_<attempt>`, so an image is never lost to a name an earlier attempt burned.
pub fn attempt_name(target: &FunctionName, digest: &ImageDigest, attempt: u32) -> String {
    let suffix = if attempt <= 1 { String::new() } else { format!("_{attempt}") };
    let t = target.as_str();
    let room = NAME_MAX - TRIGGER_PREFIX.len() - 13 - suffix.len();
    format!("{TRIGGER_PREFIX}{}-{}{suffix}", clip(t, room.min(60)), &digest.hex()[..12])
}

/// Which attempt an execution's name says it is (1 without an `_<n>` suffix).
pub fn attempt_of(execution: &str) -> u32 {
    execution
        .rsplit_once('_')
        .filter(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(1)
}

/// The name of the next attempt after `execution` at deploying `digest` to `target`: the trigger's naming
/// for the trigger's executions, `<name>_<n>` (clipped to Step Functions' limit) for one started by hand.
pub fn next_attempt(execution: &str, target: &FunctionName, digest: &ImageDigest) -> String {
    let next = attempt_of(execution) + 1;
    if started_by_trigger(execution) {
        return attempt_name(target, digest, next);
    }
    let base = match execution.rsplit_once('_') {
        Some((b, n)) if !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()) => b,
        _ => execution,
    };
    let suffix = format!("_{next}");
    format!("{}{suffix}", clip(base, NAME_MAX - suffix.len()))
}

/// Whether the image `new` takes the queue's place from `old`: it was pushed later, or in the same second
/// (ECR's push times are whole seconds) with the lower digest, so the same image wins whichever of two
/// such pushes' events arrives first, and it is the one the reconcile would pick.
pub fn replaces_in_queue(new: &PendingImage, old: &PendingImage) -> bool {
    let (n, o) = (new.pushed_at_ms.unwrap_or(0), old.pushed_at_ms.unwrap_or(0));
    n > o || (n == o && new.image_digest.as_str() < old.image_digest.as_str())
}

/// Whether the trigger started `execution` (named by [`execution_name`]), not an operator.
pub fn started_by_trigger(execution: &str) -> bool {
    execution.starts_with(TRIGGER_PREFIX)
}

/// The first `max` characters of `s` (AWS limits descriptions by length).
pub(crate) fn clip(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// A published version's description: which image, tag and execution made it (Lambda allows 256 chars).
pub fn version_description(digest: &ImageDigest, tag: &str, execution: &str) -> String {
    format!("image {digest} tag {} execution {}", clip(tag, 40), clip(execution, 80))
}

const PREVIOUS: &str = "previous=";

/// The alias's description records the version it served before, for a later rollback.
pub fn alias_description(previous: Option<&Version>, digest: &ImageDigest, execution: &str) -> String {
    let prev = previous.map(Version::as_str).unwrap_or("none");
    format!("deployer {PREVIOUS}{prev} image={} execution={}", &digest.hex()[..12], clip(execution, 80))
}

/// The previous version recorded by [`alias_description`], if any.
pub fn previous_from_description(description: &str) -> Option<Version> {
    description.split_whitespace().find_map(|w| w.strip_prefix(PREVIOUS)).and_then(|v| Version::parse(v).ok())
}

/// Where a rollback takes the alias: the version asked for, else the one recorded as previous.
pub fn rollback_target(
    function: &FunctionName,
    alias_name: &AliasName,
    requested: Option<&Version>,
    alias: &AliasState,
) -> Result<Version, DeployError> {
    if let Some(v) = requested {
        return Ok(v.clone());
    }
    previous_from_description(&alias.description).ok_or_else(|| {
        DeployError::invalid(format!(
            "alias {alias_name} of {function} (on version {}) records no previous version; \
             name the version to return to with \"toVersion\"",
            alias.version
        ))
    })
}

/// How long a deployment may hold its function's lock: the readiness deadline plus 20 minutes for the
/// rest of the flow. A crashed or aborted execution's lock expires after that; a live one releases it.
pub fn lock_ttl_ms(ready_timeout_seconds: u32) -> i64 {
    (i64::from(ready_timeout_seconds) + 20 * 60) * 1000
}

/// The version the alias served before `current`, from the records: the one that deployed `current`
/// says what it replaced.
pub fn previous_good_version(history: &[DeploymentRecord], current: &str) -> Option<Version> {
    history
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Deployed))
        .find(|r| r.version_after.as_deref() == Some(current))
        .and_then(|r| r.version_before.as_deref())
        .and_then(|v| Version::parse(v).ok())
}

/// Versions the records show served successfully (deployed, or rolled back to and verified).
pub fn recorded_good_versions(history: &[DeploymentRecord]) -> Vec<String> {
    let mut out: Vec<String> = history
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Deployed | Outcome::ManualRollback | Outcome::RolledBack))
        .filter_map(|r| r.version_after.clone())
        // What a successful deployment replaced was serving until then: good too.
        .chain(history.iter().filter(|r| r.outcome == Outcome::Deployed).filter_map(|r| r.version_before.clone()))
        .collect();
    out.sort_by_key(|v| v.parse::<u64>().unwrap_or(0));
    out.dedup();
    out
}

/// The image already live, and why deploying `digest` (pushed at `pushed_at_ms`) must not replace it: it
/// was pushed later, or in the same instant ECR reports (its push times are whole seconds), when which of the
/// two is newer cannot be known. Refusing the tie keeps the invariant (an older image never replaces a newer
/// one that went live) at the cost of holding the other image back; the reason says how to release it: a
/// deployment started by hand (`by_hand`: not the trigger's) is an operator's choice, and goes ahead on a tie.
pub fn superseded_by(
    history: &[DeploymentRecord],
    digest: &ImageDigest,
    pushed_at_ms: Option<i64>,
    by_hand: bool,
) -> Option<(ImageDigest, String)> {
    let live = history.iter().find(|r| matches!(r.outcome, Outcome::Deployed))?;
    let (live_digest, live_pushed) = (live.image_digest.as_ref()?, live.image_pushed_at_ms?);
    let pushed = pushed_at_ms?;
    // An operator who names an image by hand, pushed in the same second as the live one, has chosen it.
    if live_digest == digest || pushed > live_pushed || (pushed == live_pushed && by_hand) {
        return None;
    }
    let why = if pushed < live_pushed {
        format!(
            "{digest} was pushed {} ms before {live_digest}, which is live (execution {}): deploying it would put \
             an older build back. To go back on purpose, roll back to a recorded version",
            live_pushed - pushed,
            live.execution
        )
    } else {
        format!(
            "{digest} and the live {live_digest} (execution {}) have the same ECR push time, so which is newer \
             cannot be known: the live image stays. To deploy {digest} anyway, deploy it by hand (`deployctl deploy`, \
             or an execution input with its digest)",
            live.execution
        )
    };
    Some((live_digest.clone(), why))
}

/// What the health gates make of one step's readings.
#[derive(Debug, Clone, PartialEq)]
pub enum Health {
    /// Enough traffic, every limit kept; the line has the readings.
    Healthy(String),
    /// Too few candidate invocations to judge; the line says how many of how many.
    TooLittleTraffic(String),
    /// A limit broken, or an alarm in ALARM: every reason, with its numbers.
    Unhealthy(Vec<String>),
}

fn rate(s: &VersionStats) -> f64 {
    if s.invocations == 0 {
        0.0
    } else {
        s.errors as f64 / s.invocations as f64
    }
}

fn pct(r: f64) -> String {
    format!("{:.1}%", r * 100.0)
}

/// Judge a step: alarms and throttles at any sample size; error rate and p99 once the candidate has
/// `minInvocations`, on their own and against the baseline (when the baseline has that many too).
pub fn judge_health(gates: &Gates, candidate: &VersionStats, baseline: &VersionStats, alarms: &[AlarmState]) -> Health {
    let mut broken = Vec::new();
    for name in &gates.alarms {
        match alarms.iter().find(|a| &a.name == name) {
            None => broken.push(format!("alarm {name} does not exist (create it, or remove it from gates.alarms)")),
            Some(a) if a.state == "ALARM" => broken.push(format!("alarm {name} is in ALARM: {}", clip(&a.reason, 200))),
            Some(_) => {}
        }
    }
    if candidate.throttles > gates.max_throttles {
        broken.push(format!("{} throttles (limit {})", candidate.throttles, gates.max_throttles));
    }
    let enough = candidate.invocations >= gates.min_invocations;
    let errors = format!("{} errors in {} invocations", candidate.errors, candidate.invocations);
    // A broken candidate fails at once: even if every invocation still needed succeeded, the rate would
    // be over the limit.
    if let Some(max) = gates.max_error_rate {
        let at_best = candidate.errors as f64 / gates.min_invocations.max(candidate.invocations) as f64;
        if (enough && rate(candidate) > max) || (!enough && at_best > max) {
            broken.push(format!("error rate {} ({errors}) is over the limit {}", pct(rate(candidate)), pct(max)));
        }
    }
    let compare = enough && baseline.invocations >= gates.min_invocations;
    if compare && rate(candidate) > rate(baseline) + gates.error_rate_margin {
        broken.push(format!(
            "error rate {} ({errors}) is over the baseline's {} ({} of {}) + {} points",
            pct(rate(candidate)),
            pct(rate(baseline)),
            baseline.errors,
            baseline.invocations,
            gates.error_rate_margin * 100.0
        ));
    }
    if let (true, Some(p99)) = (enough, candidate.p99_ms) {
        if let Some(max) = gates.max_p99_ms.filter(|max| p99 > *max) {
            broken.push(format!("p99 duration {p99:.0} ms is over the limit {max:.0} ms"));
        }
        if let (true, Some(base)) = (compare, baseline.p99_ms) {
            if p99 > base * (1.0 + gates.p99_margin) && p99 - base > gates.p99_tolerance_ms {
                broken.push(format!(
                    "p99 duration {p99:.0} ms is over the baseline's {base:.0} ms + {:.0}% (and by more than {:.0} ms)",
                    gates.p99_margin * 100.0,
                    gates.p99_tolerance_ms
                ));
            }
        }
    }
    if !broken.is_empty() {
        return Health::Unhealthy(broken);
    }
    let p99 = |s: &VersionStats| s.p99_ms.map(|p| format!("{p:.0} ms")).unwrap_or_else(|| "-".into());
    let line = format!(
        "candidate {} errors / {} invocations, p99 {}; baseline {} / {}, p99 {}",
        candidate.errors,
        candidate.invocations,
        p99(candidate),
        baseline.errors,
        baseline.invocations,
        p99(baseline)
    );
    if !enough {
        return Health::TooLittleTraffic(format!(
            "too little traffic to judge: {} candidate invocations, {} needed ({line})",
            candidate.invocations, gates.min_invocations
        ));
    }
    let line = if compare {
        line
    } else {
        format!("{line}; baseline below {} invocations: compared on absolute limits only", gates.min_invocations)
    };
    Health::Healthy(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CurrentConfig;
    use crate::spec::{Architecture, LoggingSpec};
    use serde_json::json;
    use std::collections::BTreeMap;

    fn digest(c: char) -> ImageDigest {
        ImageDigest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
    }

    fn desired() -> DesiredConfig {
        DesiredConfig {
            role: "arn:aws:iam::123456789012:role/r".into(),
            memory_mb: 512,
            timeout_seconds: 10,
            architecture: Architecture::X86_64,
            ephemeral_storage_mb: 512,
            environment: BTreeMap::from([("A".into(), "1".into())]),
            logging: LoggingSpec::default(),
            reserved_concurrency: None,
        }
    }

    fn function(state: LambdaState, update: UpdateStatus) -> FunctionState {
        FunctionState {
            name: FunctionName::parse("f").unwrap(),
            version: "$LATEST".into(),
            revision_id: "r1".into(),
            code_sha256: digest('a').hex().into(),
            state,
            state_reason: Some("state reason".into()),
            last_update: update,
            last_update_reason: Some("update reason".into()),
            package_type: "Image".into(),
            resolved_image_uri: Some(format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/r@{}", digest('a'))),
            config: CurrentConfig {
                role: "arn:aws:iam::123456789012:role/r".into(),
                memory_mb: 512,
                timeout_seconds: 10,
                architecture: "x86_64".into(),
                ephemeral_storage_mb: 512,
                environment: BTreeMap::from([("A".into(), "1".into())]),
                log_format: "JSON".into(),
                application_level: Some("INFO".into()),
                system_level: Some("INFO".into()),
                log_group: Some("/aws/lambda/f".into()),
                reserved_concurrency: None,
            },
        }
    }

    #[test]
    fn drift_names_each_field_that_differs() {
        let mut f = function(LambdaState::Active, UpdateStatus::Successful);
        assert!(config_drift(&desired(), &f, "/aws/lambda/f").is_empty());
        f.config.memory_mb = 256;
        f.config.environment.insert("EXTRA".into(), "x".into());
        f.config.environment.insert("A".into(), "2".into());
        f.config.log_format = "Text".into();
        f.config.application_level = None;
        let fields: Vec<_> = config_drift(&desired(), &f, "/aws/lambda/f").into_iter().map(|d| d.field).collect();
        assert_eq!(fields, ["memoryMb", "environment.A", "environment.EXTRA", "logging.format"]);
    }

    #[test]
    fn environment_drift_names_the_keys_and_never_a_value() {
        let mut d = desired();
        d.environment.insert("GONE".into(), "spec-value".into());
        let mut f = function(LambdaState::Active, UpdateStatus::Successful);
        f.config.environment = d.environment.clone();
        f.config.environment.remove("GONE");
        f.config.environment.insert("A".into(), "s3cr3t-changed".into());
        f.config.environment.insert("DB_PASSWORD".into(), "hunter2-planted".into());
        let got = config_drift(&d, &f, "/aws/lambda/f");
        let rows: Vec<(&str, &str, &str)> =
            got.iter().map(|d| (d.field.as_str(), d.expected.as_str(), d.actual.as_str())).collect();
        assert_eq!(
            rows,
            [
                ("environment.A", ENV_SET, ENV_OTHER),
                ("environment.DB_PASSWORD", ENV_UNSET, ENV_SET),
                ("environment.GONE", ENV_SET, ENV_UNSET)
            ]
        );
        let text = serde_json::to_string(&got).unwrap();
        for value in ["s3cr3t", "hunter2", "spec-value"] {
            assert!(!text.contains(value), "{text}");
        }
    }

    #[test]
    fn next_update_follows_create_wait_configuration_code_nothing() {
        let d = desired();
        let active = function(LambdaState::Active, UpdateStatus::Successful);
        let mut drifted = active.clone();
        drifted.config.timeout_seconds = 3;
        let mut other_arch = active.clone();
        other_arch.config.architecture = "arm64".into();
        let cases: Vec<(&str, Option<FunctionState>, ImageDigest, UpdateDecision)> = vec![
            ("missing", None, digest('a'), UpdateDecision::Create),
            ("pending", Some(function(LambdaState::Pending, UpdateStatus::Unknown)), digest('a'), UpdateDecision::Wait),
            (
                "in progress",
                Some(function(LambdaState::Active, UpdateStatus::InProgress)),
                digest('b'),
                UpdateDecision::Wait,
            ),
            (
                "config first",
                Some(drifted),
                digest('b'),
                UpdateDecision::UpdateConfiguration(vec![drift("timeoutSeconds", 10, 3)]),
            ),
            ("new image", Some(active.clone()), digest('b'), UpdateDecision::UpdateCode),
            ("new architecture", Some(other_arch), digest('a'), UpdateDecision::UpdateCode),
            ("converged", Some(active), digest('a'), UpdateDecision::Nothing),
            (
                "after a failed update",
                Some(function(LambdaState::Active, UpdateStatus::Failed)),
                digest('b'),
                UpdateDecision::UpdateCode,
            ),
        ];
        for (what, f, dg, want) in cases {
            assert_eq!(next_update(f.as_ref(), &d, "/aws/lambda/f", &dg), want, "{what}");
        }
    }

    #[test]
    fn readiness_is_ready_pending_drifted_or_failed() {
        let d = desired();
        let g = "/aws/lambda/f";
        let cases: Vec<(&str, FunctionState, ImageDigest, u64, Readiness)> = vec![
            ("ready", function(LambdaState::Active, UpdateStatus::Successful), digest('a'), 0, Readiness::Ready),
            ("pending", function(LambdaState::Pending, UpdateStatus::Unknown), digest('a'), 1_000, Readiness::Pending),
            (
                "in progress",
                function(LambdaState::Active, UpdateStatus::InProgress),
                digest('a'),
                1_000,
                Readiness::Pending,
            ),
            (
                "code not yet",
                function(LambdaState::Active, UpdateStatus::Successful),
                digest('b'),
                0,
                Readiness::Drifted,
            ),
            (
                "update failed",
                function(LambdaState::Active, UpdateStatus::Failed),
                digest('a'),
                0,
                Readiness::Failed("the last update of f failed: update reason".into()),
            ),
            (
                "state failed",
                function(LambdaState::Failed, UpdateStatus::Failed),
                digest('a'),
                0,
                Readiness::Failed("function f is in state Failed: state reason".into()),
            ),
            (
                "too slow",
                function(LambdaState::Active, UpdateStatus::InProgress),
                digest('a'),
                301_000,
                Readiness::Failed("f was still updating after 301 s (readyTimeoutSeconds is 300 s)".into()),
            ),
            (
                "CodeSha256 matches, ResolvedImageUri names another image",
                FunctionState {
                    resolved_image_uri: Some(format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/r@{}", digest('b'))),
                    ..function(LambdaState::Active, UpdateStatus::Successful)
                },
                digest('a'),
                0,
                Readiness::Failed(format!(
                    "f reports CodeSha256 {} but its ResolvedImageUri is \
                     123456789012.dkr.ecr.us-east-1.amazonaws.com/r@{}, not an image with digest {}: Lambda does \
                     not run the image this deployment set",
                    digest('a').hex(),
                    digest('b'),
                    digest('a')
                )),
            ),
            (
                "no ResolvedImageUri",
                FunctionState { resolved_image_uri: None, ..function(LambdaState::Active, UpdateStatus::Successful) },
                digest('a'),
                0,
                Readiness::Failed(
                    "GetFunction returned no Code.ResolvedImageUri for image function f: which image it runs cannot \
                     be confirmed"
                        .into(),
                ),
            ),
        ];
        for (what, f, dg, elapsed, want) in cases {
            assert_eq!(readiness(&f, &d, g, &dg, elapsed, 300_000), want, "{what}");
        }
    }

    fn case(expect: Option<Value>, tolerance: f64) -> SmokeCase {
        SmokeCase { name: "c".into(), payload: json!({}), expect, tolerance }
    }

    fn answer(payload: Value, error: Option<&str>, ms: u64) -> Invocation {
        Invocation {
            payload: payload.to_string().into_bytes(),
            function_error: error.map(str::to_string),
            executed_version: "$LATEST".into(),
            latency_ms: ms,
        }
    }

    #[test]
    fn smoke_cases_report_every_mismatch() {
        let expect = json!({"classes": [1, 0], "probabilities": [[0.1, 0.9]], "model": "v1"});
        type Case<'a> = (&'a str, SmokeCase, Invocation, Option<u64>, Vec<&'a str>);
        let cases: Vec<Case> = vec![
            (
                "exact",
                case(Some(expect.clone()), 0.0),
                answer(json!({"classes": [1, 0], "probabilities": [[0.1, 0.9]], "model": "v1", "extra": 1}), None, 5),
                None,
                vec![],
            ),
            (
                "within tolerance",
                case(Some(expect.clone()), 1e-3),
                answer(json!({"classes": [1, 0], "probabilities": [[0.1004, 0.8996]], "model": "v1"}), None, 5),
                None,
                vec![],
            ),
            (
                "wrong values",
                case(Some(expect.clone()), 1e-3),
                answer(json!({"classes": [0, 0], "probabilities": [[0.5, 0.5]], "model": "v2"}), None, 5),
                None,
                vec![
                    "case \"c\": $.classes[0] is 0, expected 1 (tolerance 0.001)",
                    "case \"c\": $.model is \"v2\", expected \"v1\"",
                    "case \"c\": $.probabilities[0][0] is 0.5, expected 0.1 (tolerance 0.001)",
                    "case \"c\": $.probabilities[0][1] is 0.5, expected 0.9 (tolerance 0.001)",
                ],
            ),
            (
                "missing key",
                case(Some(json!({"a": 1})), 0.0),
                answer(json!({}), None, 5),
                None,
                vec!["case \"c\": $.a is missing (expected 1)"],
            ),
            (
                "length",
                case(Some(json!([1, 2])), 0.0),
                answer(json!([1]), None, 5),
                None,
                vec!["case \"c\": $ has 1 items, expected 2"],
            ),
            (
                "function error",
                case(Some(json!({})), 0.0),
                answer(json!({"errorType": "ModelError", "errorMessage": "bad weights"}), Some("Unhandled"), 5),
                None,
                vec!["case \"c\": the function failed (ModelError: bad weights)"],
            ),
            (
                "too slow",
                case(None, 0.0),
                answer(json!({}), None, 900),
                Some(500),
                vec!["case \"c\": took 900 ms, over the 500 ms latency budget"],
            ),
            ("no expectation", case(None, 0.0), answer(json!("anything"), None, 5), Some(500), vec![]),
        ];
        for (what, c, inv, budget, want) in cases {
            assert_eq!(judge_case(&c, &inv, budget), want, "{what}");
        }
    }

    #[test]
    fn names_and_descriptions_are_deterministic_and_fit_aws_limits() {
        let f = FunctionName::parse(&"f".repeat(64)).unwrap();
        let name = execution_name(&f, &digest('c'));
        assert_eq!(name, execution_name(&f, &digest('c')));
        assert_ne!(name, execution_name(&f, &digest('d')));
        assert!(started_by_trigger(&name) && !started_by_trigger("rollback-ml-1") && !started_by_trigger("by-hand"));
        assert!(name.len() <= 80, "{}", name.len());
        let desc = version_description(&digest('c'), &"t".repeat(128), &"e".repeat(80));
        assert!(desc.len() <= 256, "{}", desc.len());
        let v3 = Version::parse("3").unwrap();
        let alias_desc = alias_description(Some(&v3), &digest('c'), &name);
        assert!(alias_desc.len() <= 256);
        assert_eq!(previous_from_description(&alias_desc), Some(v3));
        assert_eq!(previous_from_description(&alias_description(None, &digest('c'), "x")), None);
        assert_eq!(previous_from_description("made by hand"), None);
    }

    fn record(outcome: Outcome, before: Option<&str>, after: Option<&str>, d: char, pushed: i64) -> DeploymentRecord {
        DeploymentRecord {
            function: FunctionName::parse("f").unwrap(),
            execution: format!("e-{after:?}"),
            started_at: String::new(),
            finished_at_ms: pushed,
            trigger: "ecr-push".into(),
            outcome,
            image_digest: Some(digest(d)),
            image_tag: None,
            image_pushed_at_ms: Some(pushed),
            version_before: before.map(str::to_string),
            version_after: after.map(str::to_string),
            error: None,
            cause: None,
            drift: vec![],
        }
    }

    #[test]
    fn records_decide_previous_good_and_superseded() {
        // newest first: 3 deployed over 2, a failed attempt, 2 over 1, 1 first
        let history = vec![
            record(Outcome::Deployed, Some("2"), Some("3"), 'c', 300),
            record(Outcome::RolledBack, Some("2"), Some("2"), 'e', 250),
            record(Outcome::Deployed, Some("1"), Some("2"), 'b', 200),
            record(Outcome::Deployed, None, Some("1"), 'a', 100),
        ];
        let v = |s: &str| Version::parse(s).unwrap();
        assert_eq!(previous_good_version(&history, "3"), Some(v("2")));
        assert_eq!(previous_good_version(&history, "2"), Some(v("1")));
        assert_eq!(previous_good_version(&history, "1"), None);
        assert_eq!(recorded_good_versions(&history), ["1", "2", "3"]);
        let by = |d: char, at: i64| superseded_by(&history, &digest(d), Some(at), false).map(|(by, _)| by);
        assert_eq!(by('b', 200), Some(digest('c')), "older than live");
        assert_eq!(by('d', 400), None, "newer than live");
        assert_eq!(by('c', 300), None, "the live image itself");
        assert_eq!(by('b', 300), Some(digest('c')), "pushed in the same instant: the live image stays");
        assert_eq!(superseded_by(&history, &digest('b'), None, false), None, "no push time: nothing says it is older");
        assert_eq!(superseded_by(&[], &digest('b'), Some(1), false), None, "nothing live");
        let (_, why) = superseded_by(&history, &digest('b'), Some(300), false).unwrap();
        assert!(why.contains("same ECR push time") && why.contains("deploy it by hand"), "{why}");
        assert_eq!(superseded_by(&history, &digest('b'), Some(300), true), None, "a tie chosen by hand goes ahead");
        assert!(superseded_by(&history, &digest('b'), Some(200), true).is_some(), "older is older, by hand too");
        let (_, why) = superseded_by(&history, &digest('b'), Some(200), false).unwrap();
        assert!(why.contains("100 ms before") && why.contains("roll back"), "{why}");
        assert_eq!(lock_ttl_ms(300), 1_500_000);
    }

    #[test]
    fn rollback_goes_to_the_requested_or_the_recorded_previous_version() {
        let f = FunctionName::parse("f").unwrap();
        let live = AliasName::parse("live").unwrap();
        let v = |s: &str| Version::parse(s).unwrap();
        let alias = |desc: &str| AliasState {
            name: live.clone(),
            version: "5".into(),
            revision_id: "r".into(),
            description: desc.into(),
            additional: None,
        };
        let recorded = alias(&alias_description(Some(&v("4")), &digest('a'), "x"));
        assert_eq!(rollback_target(&f, &live, Some(&v("2")), &recorded).unwrap(), v("2"));
        assert_eq!(rollback_target(&f, &live, None, &recorded).unwrap(), v("4"));
        let err = rollback_target(&f, &live, None, &alias("")).unwrap_err().to_string();
        assert!(err.contains("records no previous version") && err.contains("toVersion"), "{err}");
    }
}
