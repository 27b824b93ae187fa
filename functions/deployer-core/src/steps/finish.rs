use serde::{Deserialize, Serialize};

use crate::ids::FunctionName;
use crate::plan::{DeploymentRecord, FinishRequest, Outcome};
use crate::ports::{DeploymentLedger, ImageRegistry};
use crate::DeployError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Finished {
    pub outcome: Outcome,
    pub function: Option<FunctionName>,
    pub recorded: bool,
    pub released: bool,
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
    registry: &impl ImageRegistry,
    req: FinishRequest,
    now_ms: i64,
) -> Result<Finished, DeployError> {
    let f = &req.finish;
    let function = f
        .plan
        .as_ref()
        .map(|p| p.target.function.clone())
        .or_else(|| f.rollback.as_ref().map(|r| r.function.clone()))
        .or_else(|| {
            ["target", "function"]
                .iter()
                .find_map(|k| req.input.get(k).and_then(|v| v.as_str()).and_then(|s| FunctionName::parse(s).ok()))
        });
    let Some(function) = function else {
        tracing::warn!(execution = %req.execution.name, outcome = ?f.outcome, "no function named in the input: nothing to record");
        return Ok(Finished {
            outcome: f.outcome,
            function: None,
            recorded: false,
            released: false,
            protected_by: None,
        });
    };
    let action = req.input.get("action").and_then(|a| a.as_str()).unwrap_or("deploy");
    let trigger = match action {
        "rollback" => "operator",
        _ if req.execution.name.starts_with("deploy-") => "ecr-push",
        _ => "manual",
    };
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
        .or_else(|| plan.filter(|_| f.outcome == Outcome::Superseded).and_then(|p| p.superseded_why.clone()));
    let record = DeploymentRecord {
        function: function.clone(),
        execution: req.execution.name.clone(),
        started_at: req.execution.start_time.clone(),
        finished_at_ms: now_ms,
        trigger: trigger.to_string(),
        outcome: f.outcome,
        image_digest: plan.map(|p| p.image_digest.clone()),
        image_tag: plan.map(|p| p.image_tag.clone()),
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
    ledger.record(&record).await?;
    let released = ledger.release(&function, &req.execution.name).await?;
    tracing::info!(
        function = %function, execution = %req.execution.name, outcome = ?f.outcome, released,
        version = record.version_after.as_deref().unwrap_or(""), "execution recorded"
    );
    Ok(Finished { outcome: f.outcome, function: Some(function), recorded: true, released, protected_by })
}
