use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::decisions::{clip, started_by_trigger};
use crate::ids::{FunctionName, ImageDigest, Version};
use crate::model::{Command, DeploymentRecord, Outcome, PendingImage};
use crate::plan::FinishRequest;
use crate::ports::{DeploymentLedger, Executions, FunctionApi, ImageRegistry, TargetStore};
use crate::steps::{let_go, LetGo};
use crate::DeployError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Finished {
    pub outcome: Outcome,
    pub function: Option<FunctionName>,
    pub recorded: bool,
    /// The lock is no longer this execution's (released, or handed to the queued image's deployment).
    pub released: bool,
    /// What became of the lock, and of the image queued behind it.
    pub lock: LetGo,
    /// The tag that keeps a deployed image from ECR's lifecycle expiry (`deployed-<function>-v<version>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protected_by: Option<String>,
}

/// Every path of the state machine ends here: write the execution's record and release the function's
/// lock (only if this execution holds it), whatever the outcome. An image that went live is tagged
/// `deployed-<function>-v<version>`, which the repository's lifecycle policy never expires, so every
/// recorded good version keeps an image to roll back to.
pub async fn finish(
    ledger: &impl DeploymentLedger,
    store: &impl TargetStore,
    registry: &impl ImageRegistry,
    executions: &impl Executions,
    req: FinishRequest,
    now_ms: i64,
) -> Result<Finished, DeployError> {
    let f = &req.finish;
    let planned = f.plan.as_ref().map(|p| p.target.function.clone());
    let function =
        planned.clone().or_else(|| f.rollback.as_ref().map(|r| r.function.clone())).or_else(|| function_of(&req.input));
    // A request refused before Prepare read its target names a function only in its input: it is recorded
    // only if that function is a target, so requests for made-up names leave nothing in the table.
    let function = match function {
        Some(name) if planned.is_none() && !is_target(store, &name, &req.execution.name).await => {
            tracing::warn!(execution = %req.execution.name, function = %name, outcome = ?f.outcome,
                "the input names no target: nothing to record");
            return Ok(Finished {
                outcome: f.outcome,
                function: Some(name),
                recorded: false,
                released: false,
                lock: LetGo::NotHeld,
                protected_by: None,
            });
        }
        other => other,
    };
    let Some(function) = function else {
        tracing::warn!(execution = %req.execution.name, outcome = ?f.outcome, "no function named in the input: nothing to record");
        return Ok(Finished {
            outcome: f.outcome,
            function: None,
            recorded: false,
            released: false,
            lock: LetGo::NotHeld,
            protected_by: None,
        });
    };
    let trigger = trigger_of(&req.input, &req.execution.name);
    let plan = f.plan.as_ref();
    let (version_before, version_after) = match (&f.deployed, &f.rollback) {
        (Some(d), _) => (d.previous_version.as_ref().map(|v| v.to_string()), Some(d.version.to_string())),
        (None, Some(r)) => (
            r.from_version.as_ref().map(|v| v.to_string()),
            r.to_version.as_ref().map(|v| v.to_string()).or_else(|| r.from_version.as_ref().map(|v| v.to_string())),
        ),
        (None, None) => {
            let live = plan.and_then(|p| p.previous_version.as_ref()).map(|v| v.to_string());
            (live.clone(), live)
        }
    };
    let cause = f
        .rollback
        .as_ref()
        .map(|r| r.cause.clone())
        .or_else(|| f.error.as_ref().map(|e| e.message()))
        .or_else(|| plan.filter(|_| f.outcome == Outcome::Superseded).and_then(|p| p.superseded_why.clone()))
        .or_else(|| plan.and_then(|p| p.queued.as_ref()).map(|q| q.why.clone()));
    let record = DeploymentRecord {
        function: function.clone(),
        execution: req.execution.name.clone(),
        started_at: req.execution.start_time.clone(),
        finished_at_ms: now_ms,
        trigger: trigger.to_string(),
        outcome: f.outcome,
        // A request refused before it had a plan is recorded with the image it asked for.
        image_digest: plan.map(|p| p.image_digest.clone()).or_else(|| requested_digest(&req.input)),
        image_tag: plan.map(|p| p.image_tag.clone()).or_else(|| requested_tag(&req.input)),
        image_pushed_at_ms: plan.and_then(|p| p.image_pushed_at_ms),
        version_before,
        version_after,
        error: f.error.as_ref().map(|e| e.error.clone()),
        cause,
        drift: f.drift.clone(),
    };
    let mut protected_by = None;
    if let (Outcome::Deployed, Some(plan), Some(deployed)) = (f.outcome, plan, &f.deployed) {
        let tag = format!("deployed-{}-v{}", function, deployed.version);
        // A failed tag must not cost the record or the lock: it is logged, and the next deployment retries.
        match registry.tag_image(&plan.target.repository, &plan.image_digest, &tag).await {
            Ok(()) => protected_by = Some(tag),
            Err(e) => tracing::warn!(function = %function, error = %e, "could not tag the deployed image"),
        }
    }
    // A retry of this step (its release failed after the record was written) must not record it twice: the
    // record's key holds the time it was written. A record `abandoned` (written from the status-change event
    // when this step failed) gives way to the real outcome when the execution is redriven.
    let history = ledger.history(&function, 50).await?;
    if !history.iter().any(|r| r.execution == req.execution.name && r.outcome != Outcome::Abandoned) {
        ledger.record(&record).await?;
    }
    // The image this one replaced in the queue is recorded superseded, naming this one.
    if let Some(replaced) = plan.and_then(|p| p.queued.as_ref()).and_then(|q| q.replaced.as_ref()) {
        if !history.iter().any(|r| r.execution == replaced.queued_by && r.outcome == Outcome::Superseded) {
            ledger.record(&replaced_record(&function, replaced, &record, now_ms)).await?;
        }
    }
    let lock = let_go(ledger, store, executions, &function, &req.execution.name, now_ms).await?;
    let released = !matches!(lock, LetGo::NotHeld);
    tracing::info!(
        function = %function, execution = %req.execution.name, outcome = ?f.outcome, ?lock,
        version = record.version_after.as_deref().unwrap_or(""), "execution recorded"
    );
    Ok(Finished { outcome: f.outcome, function: Some(function), recorded: true, released, lock, protected_by })
}

/// The record of a queued image that a newer push replaced before it could deploy.
fn replaced_record(
    function: &FunctionName,
    replaced: &PendingImage,
    by: &DeploymentRecord,
    now_ms: i64,
) -> DeploymentRecord {
    let digest = by.image_digest.as_ref().map(ImageDigest::to_string).unwrap_or_default();
    let when = match (by.image_pushed_at_ms, replaced.pushed_at_ms) {
        (Some(b), Some(r)) if b > r => format!("pushed {} ms later", b - r),
        _ => "pushed in the same second, with the lower digest (the tie rule)".to_string(),
    };
    DeploymentRecord {
        function: function.clone(),
        execution: replaced.queued_by.clone(),
        started_at: iso_from_ms(replaced.queued_at_ms),
        finished_at_ms: now_ms,
        trigger: trigger_of(&Value::Null, &replaced.queued_by).to_string(),
        outcome: Outcome::Superseded,
        image_digest: Some(replaced.image_digest.clone()),
        image_tag: Some(replaced.image_tag.clone()),
        image_pushed_at_ms: replaced.pushed_at_ms,
        version_before: None,
        version_after: None,
        error: None,
        cause: Some(format!(
            "replaced in {function}'s queue by {digest} (tag {}, {when}, execution {}): the newest push deploys, \
             so {} never will",
            by.image_tag.as_deref().unwrap_or("-"),
            by.execution,
            replaced.image_digest
        )),
        drift: Vec::new(),
    }
}

/// Whether `function` is a registered target. When the targets table cannot answer (the very outage that
/// may have failed the execution), it cannot tell: the execution is recorded rather than lost, and the
/// failed read is logged.
async fn is_target(store: &impl TargetStore, function: &FunctionName, execution: &str) -> bool {
    match store.get(function).await {
        Ok(found) => found.is_some(),
        Err(e) => {
            tracing::warn!(%function, %execution, error = %e,
                "cannot tell whether the function is a target (its table did not answer): recording the execution");
            true
        }
    }
}

/// The image digest a deploy request asked for, if it is one.
fn requested_digest(input: &Value) -> Option<ImageDigest> {
    input.get("imageDigest").and_then(Value::as_str).and_then(|d| ImageDigest::parse(d).ok())
}

/// The tag a deploy request gave, clipped (it may be what got it refused).
fn requested_tag(input: &Value) -> Option<String> {
    input.get("imageTag").and_then(Value::as_str).map(|t| clip(t, 128).to_string())
}

/// The function an execution's input names (a deploy's `target`, a rollback's `function`).
fn function_of(input: &Value) -> Option<FunctionName> {
    ["target", "function"]
        .iter()
        .find_map(|k| input.get(k).and_then(Value::as_str).and_then(|s| FunctionName::parse(s).ok()))
}

/// Who asked for the execution: "operator" (a rollback), "ecr-push" (the trigger's names), or "manual".
fn trigger_of(input: &Value, execution: &str) -> &'static str {
    match input.get("action").and_then(Value::as_str).unwrap_or("deploy") {
        "rollback" => "operator",
        _ if started_by_trigger(execution) => "ecr-push",
        _ => "manual",
    }
}

/// What [`execution_ended`] did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ended {
    pub execution: String,
    pub status: String,
    pub function: Option<FunctionName>,
    /// A record was written: the execution stopped before its Finish step recorded it.
    pub recorded: bool,
    /// The function's lock was still this execution's, and is now free (or handed to the queued image).
    pub released: bool,
    /// What became of the lock, and of the image queued behind it.
    pub lock: LetGo,
    /// The execution died mid-shift, leaving the alias weighted: what was done about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored: Option<String>,
}

/// Step Functions' "Execution Status Change" event (EventBridge) for an execution that ended without
/// success. Every path of the state machine ends in Finish, but an execution that is aborted (an operator's
/// StopExecution), times out, or fails outside the steps never gets there: its lock would be held until it
/// expires, and it would leave no record. This releases the lock if that execution still holds it, and
/// records the execution if Finish did not.
///
/// An execution stopped mid-shift (a canary baking, a linear step) leaves the alias weighted between the
/// version it replaces and a version no gate has passed. While the dead execution still holds the lock (so
/// no other deployment is moving the alias), all traffic goes back to the alias's main version, the one
/// being replaced, before the lock is released. Each write is idempotent, so EventBridge's retry of a
/// failed attempt finishes the job.
pub async fn execution_ended(
    ledger: &impl DeploymentLedger,
    targets: &impl TargetStore,
    lambda: &impl FunctionApi,
    executions: &impl Executions,
    event: &Value,
    now_ms: i64,
) -> Result<Ended, DeployError> {
    let detail = event.get("detail").filter(|d| d.is_object()).ok_or_else(|| {
        DeployError::invalid("a Step Functions status-change event has a `detail` object; this event has none")
    })?;
    let field = |k: &str| detail.get(k).and_then(Value::as_str).map(str::to_string);
    let (Some(name), Some(status)) = (field("name"), field("status")) else {
        return Err(DeployError::invalid(
            "the status-change event's detail lacks `name` or `status`: it is not Step Functions' \
             \"Execution Status Change\" event",
        ));
    };
    // The input says which function's lock the execution held: an event whose input does not read is refused
    // (EventBridge retries it, and the failure shows), never taken for an execution of no function.
    let input: Value = match detail.get("input") {
        Some(Value::String(text)) => serde_json::from_str(text).map_err(|e| {
            DeployError::invalid(format!(
                "the status-change event of {name} carries an input that is not JSON ({e}): which function's \
                 lock it held cannot be told; `deployctl status <function>` shows the lock, which frees when it expires"
            ))
        })?,
        other => {
            return Err(DeployError::invalid(format!(
                "the status-change event of {name} carries no input ({}): which function's lock it held cannot be \
                 told; Step Functions leaves the input out of events over EventBridge's size limit, and this \
                 deployer's inputs are far below it, so the event did not come from its state machine",
                match other {
                    None => "no `input` field".to_string(),
                    Some(v) => format!("`input` is {v}"),
                }
            )))
        }
    };
    // An operator's promote or abort is not a deployment: it holds no lock and leaves no record.
    let command = matches!(input.get("action").and_then(Value::as_str), Some("promote" | "abort"));
    let function = function_of(&input).filter(|_| !command);
    let mut ended = Ended {
        execution: name.clone(),
        status: status.clone(),
        function: function.clone(),
        recorded: false,
        released: false,
        lock: LetGo::NotHeld,
        restored: None,
    };
    let Some(function) = function.filter(|_| matches!(status.as_str(), "ABORTED" | "TIMED_OUT" | "FAILED")) else {
        tracing::info!(execution = %name, %status, "status change: nothing to do");
        return Ok(ended);
    };
    let holds_lock = ledger.holder(&function).await?.is_some_and(|(owner, _)| owner == name);
    // While it holds the lock, the alias is where this execution left it (it may have moved it before it
    // died, or Finish may have failed after the deployment went live): the record says which version serves.
    let mut live = None;
    if holds_lock {
        (ended.restored, live) = settle_alias(targets, lambda, &function, &name, &status).await?;
    }
    // Only a target's executions are recorded: one that never held the lock may name any function.
    let known = holds_lock || is_target(targets, &function, &name).await;
    if known && !ledger.history(&function, 50).await?.iter().any(|r| r.execution == name) {
        let error = field("error").filter(|e| !e.is_empty());
        let detail_cause = field("cause").filter(|c| !c.is_empty());
        let alias = match &ended.restored {
            Some(restored) => format!("{restored} (check it with `deployctl history` and `aws lambda get-alias`)"),
            None => "the alias was left where the last step that ran put it (on one published version, or \
                     weighted by a shift another execution now owns): check it with `deployctl history` and \
                     `aws lambda get-alias`"
                .to_string(),
        };
        let cause = format!(
            "execution {name} ended {status} before it recorded itself{}; {alias}",
            match (&error, &detail_cause) {
                (Some(e), Some(c)) => format!(" ({e}: {c})"),
                (Some(e), None) => format!(" ({e})"),
                (None, Some(c)) => format!(" ({c})"),
                (None, None) => String::new(),
            }
        );
        let record = DeploymentRecord {
            function: function.clone(),
            execution: name.clone(),
            started_at: detail.get("startDate").and_then(Value::as_i64).map(iso_from_ms).unwrap_or_default(),
            finished_at_ms: detail.get("stopDate").and_then(Value::as_i64).unwrap_or(now_ms),
            trigger: trigger_of(&input, &name).to_string(),
            outcome: Outcome::Abandoned,
            image_digest: requested_digest(&input),
            image_tag: requested_tag(&input),
            image_pushed_at_ms: None,
            version_before: None,
            version_after: live,
            error: Some(error.unwrap_or_else(|| format!("States.{status}"))),
            cause: Some(cause),
            drift: Vec::new(),
        };
        ledger.record(&record).await?;
        ended.recorded = true;
    }
    let lock = let_go(ledger, targets, executions, &function, &name, now_ms).await?;
    ended.released = !matches!(lock, LetGo::NotHeld);
    ended.lock = lock;
    tracing::warn!(
        function = %function, execution = %name, %status, recorded = ended.recorded, released = ended.released,
        restored = ended.restored.as_deref().unwrap_or("nothing to restore"), "execution ended without success"
    );
    Ok(ended)
}

/// Put all of the alias's traffic back on its main version if it is weighted: what was done, if anything,
/// and the version the alias serves.
async fn settle_alias(
    targets: &impl TargetStore,
    lambda: &impl FunctionApi,
    function: &FunctionName,
    execution: &str,
    status: &str,
) -> Result<(Option<String>, Option<String>), DeployError> {
    let Some(spec) = targets.get(function).await? else {
        return Ok((None, None));
    };
    let Some(alias) = lambda.get_alias(function, &spec.alias).await? else {
        return Ok((None, None));
    };
    let Some((candidate, weight)) = alias.additional.clone() else {
        return Ok((None, Some(alias.version)));
    };
    let main = Version::parse(&alias.version)?;
    // As Roll Back writes it: the alias is back on a version whose own predecessor this step does not know.
    let reason = format!("execution {execution} ended {status} mid-shift");
    let description = format!("deployer previous=none rolled-back-to={main} reason={}", clip(&reason, 120));
    lambda.update_alias(function, &spec.alias, &main, &description, &alias.revision_id).await?;
    let restored = format!(
        "its shift had sent {}% of alias {}'s traffic to version {candidate}; all of it is back on version {main}",
        (weight * 100.0).round(),
        spec.alias
    );
    tracing::warn!(%function, %execution, %restored, "weighted alias restored");
    Ok((Some(restored), Some(main.to_string())))
}

/// `2026-11-27T06:00:00.123Z` for milliseconds since the epoch (the shape Step Functions gives start times in).
pub fn iso_from_ms(ms: i64) -> String {
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s, milli) = (rem / 3_600_000, rem / 60_000 % 60, rem / 1_000 % 60, rem % 1_000);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z")
}

/// An operator's `{"action": "promote" | "abort", "function": ..., "reason": ...}`, as an execution's input
/// (`aws stepfunctions start-execution`, or the console).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommandRequest {
    pub action: String,
    pub function: FunctionName,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandSent {
    pub function: FunctionName,
    /// The running deployment that acts on it, at its next health check.
    pub execution: String,
    pub command: Command,
    pub reason: String,
}

/// Leave an operator's promote or abort for the function's running deployment (the holder of its lock).
/// Its next health check acts on it; a deployment that shifts all at once has no health checks and
/// finishes on its own.
pub async fn operator_command(ledger: &impl DeploymentLedger, request: Value) -> Result<CommandSent, DeployError> {
    let r: CommandRequest = crate::steps::input("command", request)?;
    let command = match r.action.as_str() {
        "promote" => Command::Promote,
        "abort" => Command::Abort,
        other => {
            return Err(DeployError::invalid(format!(
                "action {other:?} is not an operator command: use \"promote\" or \"abort\""
            )))
        }
    };
    let Some((execution, _)) = ledger.holder(&r.function).await? else {
        return Err(DeployError::invalid(format!(
            "no deployment of {} is running (nothing holds its lock), so there is nothing to {}; see \
             `deployctl history {}`",
            r.function, r.action, r.function
        )));
    };
    let reason = r.reason.unwrap_or_else(|| format!("{} by an operator", r.action));
    ledger.send_command(&r.function, &execution, &command, &reason).await?;
    tracing::warn!(function = %r.function, %execution, ?command, %reason, "operator command sent");
    Ok(CommandSent { function: r.function, execution, command, reason })
}
