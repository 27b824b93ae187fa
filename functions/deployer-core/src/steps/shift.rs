use crate::decisions::alias_description;
use crate::ids::Version;
use crate::model::Command;
use crate::plan::{Deployed, ShiftInput};
use crate::ports::{DeploymentLedger, FunctionApi};
use crate::steps::{release_provisioned, still_holds};
use crate::DeployError;

/// Point the alias at the new version, all at once, guarded by the alias's RevisionId. An alias already
/// there is left alone (a re-run moves nothing twice).
pub async fn shift_alias(
    lambda: &impl FunctionApi,
    ledger: &impl DeploymentLedger,
    input: ShiftInput,
    now_ms: i64,
) -> Result<Deployed, DeployError> {
    let plan = &input.plan;
    let t = &plan.target;
    still_holds(ledger, &t.function, &input.execution, now_ms).await?;
    // An operator's rollback (or abort) sent while the deployment was getting here: nothing moves.
    if let Some((Command::Abort, reason)) = ledger.command(&t.function, &input.execution).await? {
        return Err(DeployError::Aborted {
            function: t.function.to_string(),
            reason: format!("{reason} (before the alias moved)"),
        });
    }
    let version = &input.published.version;
    let current = lambda.get_alias(&t.function, &t.alias).await?;
    let (moved, previous) = match &current {
        None => {
            let description = alias_description(None, &plan.image_digest, &input.execution);
            lambda.create_alias(&t.function, &t.alias, version, &description).await?;
            (true, None)
        }
        Some(a) if a.version == version.as_str() && a.additional.is_none() => (false, plan.previous_version.clone()),
        Some(a) => {
            // A weighted alias already led by this version: what it served before is the plan's record.
            let previous = if a.version == version.as_str() {
                plan.previous_version.clone()
            } else {
                Version::parse(&a.version).ok()
            };
            let description = alias_description(previous.as_ref(), &plan.image_digest, &input.execution);
            lambda.update_alias(&t.function, &t.alias, version, &description, &a.revision_id).await?;
            (true, previous)
        }
    };
    tracing::info!(
        function = %t.function, alias = %t.alias, version = %version,
        previous = ?previous.as_ref().map(Version::as_str), moved, "alias shifted"
    );
    if t.provisioned_concurrency.is_some() {
        // The replaced version's provisioned concurrency is now idle cost. A failure here must not undo a
        // deployment that happened: it is logged, and the next deployment releases it.
        if let Err(e) = release_provisioned(lambda, &t.function, version).await {
            tracing::warn!(function = %t.function, error = %e, "could not release the replaced version's provisioned concurrency");
        }
    }
    Ok(Deployed {
        function: t.function.clone(),
        alias: t.alias.to_string(),
        version: version.clone(),
        previous_version: previous,
        image_digest: plan.image_digest.clone(),
        image_tag: plan.image_tag.clone(),
        moved,
        drift: input.drift.clone(),
    })
}
