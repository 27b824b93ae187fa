use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::decisions::{attempt_name, attempt_of, execution_name, started_by_trigger};
use crate::event::{parse_push, NotAPush};
use crate::ids::{FunctionName, ImageDigest, Version};
use crate::model::{DeploymentRecord, Outcome, StartOutcome};
use crate::plan::{DeployRequest, ExecutionInput};
use crate::policy::StackPolicy;
use crate::ports::{DeploymentLedger, Executions, FunctionApi, ImageRegistry, TargetStore};
use crate::spec::TargetSpec;
use crate::DeployError;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerReport {
    pub started: Vec<Started>,
    /// Targets whose execution for this image already exists (EventBridge delivered the event again).
    pub duplicates: Vec<String>,
    pub ignored: Vec<Ignored>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Started {
    pub target: String,
    pub execution_arn: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ignored {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub reason: String,
}

/// A scheduled event (`source: aws.events`, `detail-type: Scheduled Event`) or an operator's
/// `{"reconcile": {"targets": [...]}}`: ECR push events are best effort, so this finds, per target, the
/// newest allowed image and deploys it if the alias does not serve it, unless it waits in the queue or an
/// earlier attempt really deployed or failed. The first attempt has the push's execution name (a push and
/// a reconcile of the same image start it once); a later one, after attempts that were queued or turned
/// away, its own (`_<n>`).
pub fn is_reconcile(event: &Value) -> bool {
    event.get("reconcile").is_some()
        || (event.get("source").and_then(Value::as_str) == Some("aws.events")
            && event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event"))
}

/// An operator's `{"reconcile": {"targets": [...]}}`, read strictly: a misspelt key or a string where the
/// list belongs is refused, never read as "every target".
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReconcileRequest {
    #[serde(default)]
    targets: Option<Vec<FunctionName>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReconcileInput {
    reconcile: ReconcileRequest,
}

/// The targets a reconcile event asks for (None: all); refused, naming what is wrong, when malformed.
fn reconcile_request(event: &Value) -> Result<Option<Vec<FunctionName>>, DeployError> {
    if event.get("reconcile").is_none() {
        return Ok(None); // the schedule's event: every target
    }
    let input: ReconcileInput = serde_path_to_error::deserialize(event).map_err(|e| {
        DeployError::invalid(format!(
            "reconcile request refused: {}: {}; send {{\"reconcile\": {{}}}} for every target or \
             {{\"reconcile\": {{\"targets\": [\"<function>\", ...]}}}}",
            e.path(),
            e.inner()
        ))
    })?;
    match input.reconcile.targets {
        Some(t) if t.is_empty() => Err(DeployError::invalid(
            "reconcile request refused: reconcile.targets is empty; leave it out to reconcile every target",
        )),
        other => Ok(other),
    }
}

pub async fn reconcile(
    store: &impl TargetStore,
    registry: &impl ImageRegistry,
    lambda: &impl FunctionApi,
    executions: &impl Executions,
    ledger: &impl DeploymentLedger,
    policy: &StackPolicy,
    event: &Value,
) -> Result<TriggerReport, DeployError> {
    let only = reconcile_request(event)?;
    let targets = store.list().await?;
    if let Some(names) = &only {
        let unknown: Vec<&str> =
            names.iter().filter(|n| !targets.iter().any(|t| &t.function == *n)).map(FunctionName::as_str).collect();
        if !unknown.is_empty() {
            return Err(DeployError::invalid(format!(
                "reconcile request refused: no target named {}; `deployctl target list` shows the targets",
                unknown.join(", ")
            )));
        }
    }
    let mut report = TriggerReport::default();
    for target in targets {
        if only.as_ref().is_some_and(|o| !o.contains(&target.function)) {
            continue;
        }
        let name = target.function.to_string();
        if let Err(e) = policy.check(&target) {
            tracing::warn!(target = %name, reason = %e, "reconcile: target outside the stack's policy skipped");
            report.ignored.push(Ignored { target: Some(name), reason: e.message() });
            continue;
        }
        let newest = newest_allowed(registry, &target).await?;
        let Some((digest, tag)) = newest.first().cloned() else {
            report.ignored.push(Ignored { target: Some(name), reason: "no allowed image in the repository".into() });
            continue;
        };
        // Images pushed in the same second cannot be ordered: if the alias serves any of them, it is current.
        let mut served = None;
        for (d, _) in &newest {
            if serves(lambda, &target.function, &target, d).await? {
                served = Some(d.clone());
                break;
            }
        }
        if let Some(d) = served {
            report.ignored.push(Ignored { target: Some(name), reason: format!("alias already serves {d}") });
            continue;
        }
        // Already on its way: waiting in the queue, or handed the lock as the queue's next deployment.
        if let Some(lock) = ledger.lock_state(&target.function).await? {
            let waiting = lock.pending.as_ref().filter(|p| p.image_digest == digest).map(|_| "queued behind");
            let next = lock.handed_over.as_ref().filter(|(_, p)| p.image_digest == digest).map(|_| "starting as");
            if let Some(how) = waiting.or(next) {
                report
                    .ignored
                    .push(Ignored { target: Some(name), reason: format!("{digest} is {how} {}", lock.owner) });
                continue;
            }
        }
        // An earlier attempt that was queued or turned away does not burn the image: the next attempt has
        // its own name. One that really deployed or really failed is not retried.
        let history = ledger.history(&target.function, 100).await?;
        let attempts: Vec<_> = history.iter().filter(|r| r.image_digest.as_ref() == Some(&digest)).collect();
        if let Some(done) = attempts.iter().find(|r| !turned_away(r)) {
            let outcome = serde_json::to_value(done.outcome).ok().and_then(|v| v.as_str().map(str::to_string));
            report.ignored.push(Ignored {
                target: Some(name),
                reason: format!(
                    "{digest} was attempted already: execution {} ended {}, so it is not retried (deploy it by \
                     hand: `deployctl deploy {} --digest {digest}`)",
                    done.execution,
                    outcome.unwrap_or_default(),
                    target.function
                ),
            });
            continue;
        }
        let attempt = attempts
            .iter()
            .filter(|r| started_by_trigger(&r.execution))
            .map(|r| attempt_of(&r.execution) + 1)
            .max()
            .unwrap_or(1);
        let request = ExecutionInput::Deploy(DeployRequest {
            target: target.function.clone(),
            repository: target.repository.clone(),
            image_digest: digest.clone(),
            image_tag: Some(tag),
            queued: None,
        });
        let input = serde_json::to_string(&request).map_err(|e| DeployError::invalid(e.to_string()))?;
        match executions.start(&attempt_name(&target.function, &digest, attempt), &input).await? {
            StartOutcome::Started { execution_arn } => {
                tracing::warn!(target = %name, digest = %digest, "reconcile: an allowed image was never deployed; deploying it");
                report.started.push(Started { target: name, execution_arn });
            }
            StartOutcome::AlreadyStarted => report.duplicates.push(name),
        }
    }
    Ok(report)
}

/// An attempt that never got to deploy its image: queued behind another deployment, superseded in the
/// queue or by a newer live image, or turned away by Prepare because the function was locked (before the
/// queue) or AWS did not answer.
fn turned_away(record: &DeploymentRecord) -> bool {
    match record.outcome {
        Outcome::Queued | Outcome::Superseded => true,
        // Refused before anything changed because the function was locked, AWS did not answer or a race
        // on the lock was lost past the retries: the image itself was never tried.
        Outcome::Rejected => {
            matches!(record.error.as_deref(), Some("Locked" | "Throttled" | "AwsUnavailable" | "PreconditionFailed"))
        }
        _ => false,
    }
}

/// The allowed images with the latest push time (more than one when pushed in the same second), by digest.
async fn newest_allowed(
    registry: &impl ImageRegistry,
    target: &TargetSpec,
) -> Result<Vec<(ImageDigest, String)>, DeployError> {
    let images = registry.list_images(&target.repository).await?;
    let allowed: Vec<_> = images
        .into_iter()
        .filter_map(|i| {
            let tag = i.tags.iter().find(|t| target.allows_tag(t))?.clone();
            Some((i.pushed_at_ms.unwrap_or(0), i.digest, tag))
        })
        .collect();
    let Some(latest) = allowed.iter().map(|(at, _, _)| *at).max() else { return Ok(Vec::new()) };
    let mut newest: Vec<_> = allowed.into_iter().filter(|(at, _, _)| *at == latest).map(|(_, d, t)| (d, t)).collect();
    newest.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    Ok(newest)
}

async fn serves(
    lambda: &impl FunctionApi,
    function: &FunctionName,
    target: &TargetSpec,
    digest: &ImageDigest,
) -> Result<bool, DeployError> {
    if lambda.get_function(function, None).await?.is_none() {
        return Ok(false);
    }
    let Some(alias) = lambda.get_alias(function, &target.alias).await? else { return Ok(false) };
    let Ok(version) = Version::parse(&alias.version) else { return Ok(false) };
    Ok(lambda.get_function(function, Some(version.as_str())).await?.is_some_and(|f| f.code_sha256 == digest.hex()))
}

/// EventBridge's ECR event in; one execution per target that deploys this repository and tag.
pub async fn trigger(
    store: &impl TargetStore,
    executions: &impl Executions,
    policy: &StackPolicy,
    event: &Value,
    region: &str,
) -> Result<TriggerReport, DeployError> {
    let account = policy.account.as_str();
    let mut report = TriggerReport::default();
    let push = match parse_push(event, account, region) {
        Ok(p) => p,
        Err(NotAPush::Ignored(reason)) => {
            tracing::info!(%reason, "event ignored");
            report.ignored.push(Ignored { target: None, reason });
            return Ok(report);
        }
        Err(NotAPush::Invalid(reason)) => return Err(DeployError::invalid(format!("event refused: {reason}"))),
    };
    let targets: Vec<_> = store.list().await?.into_iter().filter(|t| t.repository == push.repository).collect();
    if targets.is_empty() {
        let reason = format!("no target deploys repository {}", push.repository);
        tracing::info!(repository = %push.repository, digest = %push.digest, "{reason}");
        report.ignored.push(Ignored { target: None, reason });
        return Ok(report);
    }
    // A target outside the stack's policy still gets its execution: Prepare refuses it, and the refusal is
    // on record (`deployctl history`) where the team looks for why a push did not deploy.
    for target in targets {
        if !target.allows_tag(&push.tag) {
            let reason = format!("tag {:?} does not match tagPattern {:?}", push.tag, target.tag_pattern);
            tracing::info!(target = %target.function, %reason, "target skipped");
            report.ignored.push(Ignored { target: Some(target.function.to_string()), reason });
            continue;
        }
        let request = ExecutionInput::Deploy(DeployRequest {
            target: target.function.clone(),
            repository: push.repository.clone(),
            image_digest: push.digest.clone(),
            image_tag: Some(push.tag.clone()),
            queued: None,
        });
        let input = serde_json::to_string(&request).map_err(|e| DeployError::invalid(e.to_string()))?;
        let name = execution_name(&target.function, &push.digest);
        match executions.start(&name, &input).await? {
            StartOutcome::Started { execution_arn } => {
                tracing::info!(target = %target.function, digest = %push.digest, execution = %name, "deployment started");
                report.started.push(Started { target: target.function.to_string(), execution_arn });
            }
            StartOutcome::AlreadyStarted => {
                tracing::info!(target = %target.function, execution = %name, "duplicate event: deployment already started");
                report.duplicates.push(target.function.to_string());
            }
        }
    }
    Ok(report)
}
