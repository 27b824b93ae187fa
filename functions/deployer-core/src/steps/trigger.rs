use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::decisions::execution_name;
use crate::event::{parse_push, NotAPush};
use crate::plan::{DeployRequest, ExecutionInput};
use crate::ports::{Executions, StartOutcome, TargetStore};
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

/// EventBridge's ECR event in; one execution per target that deploys this repository and tag.
pub async fn trigger(
    store: &impl TargetStore,
    executions: &impl Executions,
    event: &Value,
    account: &str,
    region: &str,
) -> Result<TriggerReport, DeployError> {
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
            image_tag: push.tag.clone(),
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
