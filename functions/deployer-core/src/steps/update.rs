use serde::{Deserialize, Serialize};

use crate::decisions::{concurrency_drift, next_update, UpdateDecision};
use crate::model::Drift;
use crate::plan::{Plan, UpdateAction, UpdateOutput};
use crate::ports::{FunctionApi, LogGroups};
use crate::steps::now_ms;
use crate::DeployError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateInput {
    pub plan: Plan,
    /// The previous round's output: drift found earlier in this deployment is kept in the report.
    pub previous: UpdateOutput,
}

/// One step towards the spec: create the function, reconcile its configuration, or point it at the image
/// digest (never a tag), each guarded by the RevisionId just read. Re-running it converges.
pub async fn update_function(
    lambda: &impl FunctionApi,
    logs: &impl LogGroups,
    input: UpdateInput,
) -> Result<UpdateOutput, DeployError> {
    let plan = &input.plan;
    let t = &plan.target;
    let current = lambda.get_function(&t.function, None).await?;
    let mut drift = input.previous.drift.clone();
    if let Some(found) = current.as_ref().and_then(|f| concurrency_drift(&t.configuration, f)) {
        tracing::warn!(function = %t.function, drift = ?found, "reserved concurrency drifted from the spec; reconciling");
        lambda.set_reserved_concurrency(&t.function, t.configuration.reserved_concurrency).await?;
        drift.push(found);
    }
    if let Some(days) = t.configuration.logging.retention_days {
        let group = t.log_group();
        let current = logs.retention(&group).await?;
        if current.is_none() {
            logs.create(&group).await?;
        }
        let have = current.flatten();
        if have != Some(days) {
            logs.set_retention(&group, days).await?;
            if current.is_some() {
                let show = have.map(|d| d.to_string()).unwrap_or_else(|| "never expire".into());
                drift.push(Drift { field: "logging.retentionDays".into(), expected: days.to_string(), actual: show });
            }
        }
    }
    let started_at_ms = now_ms();
    let action = match next_update(current.as_ref(), &t.configuration, &t.log_group(), &plan.image_digest) {
        UpdateDecision::Create => {
            lambda.create_function(&t.function, &plan.image_uri, &t.configuration).await?;
            if t.configuration.reserved_concurrency.is_some() {
                lambda.set_reserved_concurrency(&t.function, t.configuration.reserved_concurrency).await?;
            }
            UpdateAction::Created
        }
        UpdateDecision::Wait => UpdateAction::Waiting,
        UpdateDecision::UpdateConfiguration(found) => {
            // Proven invariant: UpdateConfiguration is only decided for an existing function.
            let revision = current.as_ref().map(|f| f.revision_id.as_str()).unwrap_or_default();
            tracing::warn!(function = %t.function, drift = ?found, "configuration drifted from the spec; reconciling");
            lambda.update_configuration(&t.function, &t.configuration, revision).await?;
            drift.extend(found);
            UpdateAction::Configuration
        }
        UpdateDecision::UpdateCode => {
            let revision = current.as_ref().map(|f| f.revision_id.as_str()).unwrap_or_default();
            lambda.update_code(&t.function, &plan.image_uri, t.configuration.architecture.as_str(), revision).await?;
            UpdateAction::Code
        }
        UpdateDecision::Nothing => UpdateAction::None,
    };
    tracing::info!(function = %t.function, ?action, image = %plan.image_uri, "update step done");
    let started_at_ms = if action == UpdateAction::Waiting && input.previous.started_at_ms > 0 {
        input.previous.started_at_ms
    } else {
        started_at_ms
    };
    Ok(UpdateOutput { action, drift, started_at_ms })
}
