//! Provisioned concurrency for the new version, READY before any traffic moves to it; and, once the alias
//! has moved (or moved back), none left on versions it no longer serves.

use crate::budget::{poll_wait_seconds, READY_POLL_CAP_SECONDS};
use crate::ids::{FunctionName, Version};
use crate::plan::{ProvisionInput, ProvisionState, ProvisionStatus};
use crate::ports::FunctionApi;
use crate::DeployError;

/// Ask for the spec's provisioned concurrency on the published version (once), then report whether it is
/// READY. A FAILED allocation, or one not READY within `readyTimeoutSeconds`, fails the step (the state
/// machine rolls back; no traffic had moved).
pub async fn provision(
    lambda: &impl FunctionApi,
    input: ProvisionInput,
    now_ms: i64,
) -> Result<ProvisionState, DeployError> {
    let t = &input.plan.target;
    let version = &input.published.version;
    let Some(n) = t.provisioned_concurrency else {
        return Ok(ProvisionState {
            status: ProvisionStatus::None,
            requested: 0,
            allocated: 0,
            started_at_ms: now_ms,
            wait_seconds: 0,
        });
    };
    let started = input.provision.as_ref().map_or(now_ms, |p| p.started_at_ms);
    let elapsed_s = u64::try_from((now_ms - started).max(0) / 1000).unwrap_or(0);
    let current = lambda.list_provisioned(&t.function).await?.into_iter().find(|p| p.qualifier == version.as_str());
    let current = match current {
        Some(p) if p.requested == n => p,
        _ => {
            lambda.put_provisioned(&t.function, version, n).await?;
            tracing::info!(function = %t.function, %version, requested = n, "provisioned concurrency requested");
            return Ok(ProvisionState {
                status: ProvisionStatus::Pending,
                requested: n,
                allocated: 0,
                started_at_ms: started,
                wait_seconds: poll_wait_seconds(elapsed_s, READY_POLL_CAP_SECONDS),
            });
        }
    };
    let state = |status| ProvisionState {
        status,
        requested: n,
        allocated: current.allocated,
        started_at_ms: started,
        wait_seconds: poll_wait_seconds(elapsed_s, READY_POLL_CAP_SECONDS),
    };
    match current.status.as_str() {
        "READY" => {
            tracing::info!(function = %t.function, %version, allocated = current.allocated, "provisioned concurrency ready");
            Ok(state(ProvisionStatus::Ready))
        }
        "FAILED" => Err(DeployError::UpdateFailed {
            function: t.function.to_string(),
            reason: format!(
                "provisioned concurrency ({n}) for version {version} failed: {}; no traffic was moved to it",
                current.reason.as_deref().unwrap_or("no reason given")
            ),
        }),
        _ if now_ms - started > i64::from(t.ready_timeout_seconds) * 1000 => Err(DeployError::UpdateFailed {
            function: t.function.to_string(),
            reason: format!(
                "provisioned concurrency ({n}) for version {version} was not READY after {} s \
                 (readyTimeoutSeconds); {} of {n} allocated; no traffic was moved to it",
                (now_ms - started) / 1000,
                current.allocated
            ),
        }),
        _ => Ok(state(ProvisionStatus::Pending)),
    }
}

/// Remove provisioned concurrency from every version of the function except `keep` (the one the alias
/// serves): what a replaced or rolled-back version was given costs money until it is removed. Aliases'
/// configurations are left alone. Returns the versions it was removed from.
pub async fn release_provisioned(
    lambda: &impl FunctionApi,
    function: &FunctionName,
    keep: &Version,
) -> Result<Vec<String>, DeployError> {
    let mut released = Vec::new();
    for p in lambda.list_provisioned(function).await? {
        if p.qualifier != keep.as_str() && Version::parse(&p.qualifier).is_ok() {
            lambda.delete_provisioned(function, &p.qualifier).await?;
            released.push(p.qualifier);
        }
    }
    if !released.is_empty() {
        tracing::info!(function = %function, kept = %keep, ?released, "provisioned concurrency released");
    }
    Ok(released)
}
