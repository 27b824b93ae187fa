use crate::decisions::{clip, lock_ttl_ms, previous_good_version, recorded_good_versions, rollback_target};
use crate::ids::{AliasName, FunctionName, ImageDigest, Version};
use crate::model::{Command, LambdaState, LockOutcome};
use crate::plan::{ExecutionRef, RollbackInput, RollbackRequest, RolledBack};
use crate::ports::{DeploymentLedger, FunctionApi, ImageRegistry, TargetStore};
use crate::spec::TargetSpec;
use crate::steps::{release_provisioned, run_cases};
use crate::DeployError;

/// Put the alias where it must be after a failure (automatic), or where an operator asks (manual), then
/// prove it with the target's smoke tests through the alias.
pub async fn rollback(
    lambda: &impl FunctionApi,
    store: &impl TargetStore,
    registry: &impl ImageRegistry,
    ledger: &impl DeploymentLedger,
    input: RollbackInput,
    now_ms: i64,
) -> Result<RolledBack, DeployError> {
    match input {
        RollbackInput::Automatic { plan, error, execution } => {
            let t = &plan.target;
            let what_failed = format!("Deployment failed ({}): {}", error.error, error.message());
            // Only the lock's holder moves the alias (its lock may have expired, but nobody took it over).
            // One whose lock was released or taken (an execution redriven after it ended) leaves the alias to
            // whoever owns it now.
            if let Some(me) = &execution {
                let holder = ledger.lock_state(&t.function).await?.map(|l| l.owner);
                if holder.as_deref() != Some(me.as_str()) {
                    let cause = format!(
                        "{what_failed}. Not rolled back: {me} no longer holds {}'s deployment lock ({}), so the \
                         alias is left to the deployment that owns it now; `deployctl status {}` shows it",
                        t.function,
                        holder.map(|h| format!("{h} holds it")).unwrap_or_else(|| "nobody holds it".into()),
                        t.function
                    );
                    tracing::warn!(function = %t.function, %cause, "rollback refused: lock not held");
                    return Ok(RolledBack {
                        function: t.function.clone(),
                        alias: t.alias.to_string(),
                        from_version: None,
                        to_version: None,
                        verified_cases: 0,
                        cause,
                    });
                }
            }
            let Some(previous) = plan.previous_version.clone() else {
                let now = match lambda.get_alias(&t.function, &t.alias).await? {
                    None => format!("alias {} does not exist, so no traffic was affected", t.alias),
                    Some(a) => format!(
                        "alias {} now exists on version {} (created by this deployment): check it before sending traffic",
                        t.alias, a.version
                    ),
                };
                let cause = format!(
                    "{what_failed}. No version was being served before this deployment; {now}. $LATEST keeps the \
                     failed image for inspection."
                );
                tracing::warn!(function = %t.function, %cause, "nothing to roll back");
                return Ok(RolledBack {
                    function: t.function.clone(),
                    alias: t.alias.to_string(),
                    from_version: None,
                    to_version: None,
                    verified_cases: 0,
                    cause,
                });
            };
            let before = lambda.get_alias(&t.function, &t.alias).await?.and_then(|a| a.additional);
            let (from, moved) = put_alias(lambda, &t.function, &t.alias, &previous, "automatic rollback").await?;
            let verified = verify(lambda, t, &previous).await?;
            let where_now = match (moved, before) {
                (true, Some((extra, weight))) => format!(
                    "alias {} sent {:.0}% of its traffic to version {extra}; all of it is back on version {previous}",
                    t.alias,
                    weight * 100.0
                ),
                (true, None) => format!(
                    "alias {} was moved back from version {} to version {previous}",
                    t.alias,
                    from.as_deref().unwrap_or("?")
                ),
                (false, _) => format!("alias {} stayed on version {previous}, which it served before", t.alias),
            };
            if t.provisioned_concurrency.is_some() {
                if let Err(e) = release_provisioned(lambda, &t.function, &previous).await {
                    tracing::warn!(function = %t.function, error = %e, "could not release the failed version's provisioned concurrency");
                }
            }
            let cause =
                format!("{what_failed}. Rolled back: {where_now}; {verified} smoke case(s) pass through the alias.");
            tracing::warn!(function = %t.function, %cause, "rolled back");
            Ok(RolledBack {
                function: t.function.clone(),
                alias: t.alias.to_string(),
                from_version: from.and_then(|v| Version::parse(&v).ok()),
                to_version: Some(previous),
                verified_cases: verified,
                cause,
            })
        }
        RollbackInput::Manual { request, execution } => {
            manual(lambda, store, registry, ledger, request, &execution, now_ms).await
        }
    }
}

async fn manual(
    lambda: &impl FunctionApi,
    store: &impl TargetStore,
    registry: &impl ImageRegistry,
    ledger: &impl DeploymentLedger,
    request: RollbackRequest,
    execution: &ExecutionRef,
    now_ms: i64,
) -> Result<RolledBack, DeployError> {
    let function = &request.function;
    let t = store.get(function).await?.ok_or_else(|| {
        DeployError::invalid(format!("no deployment target named {function}: the deployer does not manage it"))
    })?;
    if lambda.get_function(function, None).await?.is_none() {
        return Err(DeployError::NotFound { what: "function", message: format!("{function} does not exist") });
    }
    let alias = lambda.get_alias(function, &t.alias).await?.ok_or_else(|| {
        DeployError::invalid(format!("{function} has no alias {}: nothing is deployed, nothing to roll back", t.alias))
    })?;
    let expires = now_ms + lock_ttl_ms(t.ready_timeout_seconds);
    if let LockOutcome::Held { owner, expires_at_ms } =
        ledger.acquire(function, &execution.name, now_ms, expires).await?
    {
        // A deployment is running: it is told to roll back, and returns the alias to the version that served
        // before it, once. This rollback does not move the alias a second time.
        if request.to_version.is_some() {
            return Err(DeployError::invalid(format!(
                "{owner} is deploying {function} (it holds the lock for {} s more): a rollback to a named version \
                 would race it. Roll back without a version (the running deployment then returns the alias to the \
                 version that served before it), or wait for it to end",
                (expires_at_ms - now_ms).max(0) / 1000
            )));
        }
        let why = request.reason.as_deref().unwrap_or("an operator asked for a rollback");
        ledger.send_command(function, &owner, &Command::Abort, why).await?;
        let serving = alias.additional.as_ref().map_or_else(
            || format!("alias {} leads with version {}", t.alias, alias.version),
            |(v, w)| format!("alias {} sends {:.0}% to version {v}", t.alias, w * 100.0),
        );
        let cause = format!(
            "{owner} was deploying {function} ({serving}): it was told to roll back ({why}) and returns all traffic \
             to the version that served before it at its next step; this rollback moved nothing itself. An image \
             queued behind it still deploys after it (`deployctl status {function}`)"
        );
        tracing::warn!(%function, %owner, %cause, "rollback handed to the running deployment");
        return Ok(RolledBack {
            function: function.clone(),
            alias: t.alias.to_string(),
            from_version: None,
            to_version: None,
            verified_cases: 0,
            cause,
        });
    }
    let history = ledger.history(function, 100).await?;
    let target = match (&request.to_version, previous_good_version(&history, &alias.version)) {
        (None, Some(previous)) => previous,
        _ => rollback_target(function, &t.alias, request.to_version.as_ref(), &alias)?,
    };
    let version = lambda.get_function(function, Some(target.as_str())).await?.ok_or_else(|| DeployError::NotFound {
        what: "version",
        message: format!(
            "version {target} of {function} does not exist; list versions with `aws lambda list-versions-by-function`"
        ),
    })?;
    if version.state == LambdaState::Failed {
        return Err(DeployError::invalid(format!(
            "version {target} of {function} is in state Failed ({}); choose another version",
            version.state_reason.as_deref().unwrap_or("no reason given")
        )));
    }
    let good = recorded_good_versions(&history);
    if !good.is_empty() && !good.iter().any(|v| v == target.as_str()) {
        return Err(DeployError::invalid(format!(
            "version {target} of {function} never served successfully under the deployer (recorded good versions: \
             {}); roll back to one of those",
            if good.is_empty() { "none".to_string() } else { good.join(", ") }
        )));
    }
    if let Ok(digest) = ImageDigest::parse(&format!("sha256:{}", version.code_sha256)) {
        if version.package_type == "Image" && registry.describe_image(&t.repository, &digest).await?.is_none() {
            return Err(DeployError::invalid(format!(
                "the image of version {target} of {function} ({digest}) is no longer in repository {}: Lambda \
                 cannot start it again; choose another version",
                t.repository
            )));
        }
    }
    let why = request.reason.as_deref().unwrap_or("operator request");
    let (from, moved) = put_alias(lambda, function, &t.alias, &target, why).await?;
    let verified = verify(lambda, &t, &target).await?;
    let cause = if moved {
        format!(
            "alias {} of {function} moved from version {} to version {target} ({why}); {verified} smoke case(s) pass",
            t.alias,
            from.as_deref().unwrap_or("?")
        )
    } else {
        format!("alias {} of {function} was already on version {target}; {verified} smoke case(s) pass", t.alias)
    };
    tracing::info!(function = %function, %cause, "manual rollback done");
    Ok(RolledBack {
        function: function.clone(),
        alias: t.alias.to_string(),
        from_version: from.and_then(|v| Version::parse(&v).ok()),
        to_version: Some(target),
        verified_cases: verified,
        cause,
    })
}

/// Point the alias at `version` (single version, no weights). Returns (where it was, whether it moved).
async fn put_alias(
    lambda: &impl FunctionApi,
    function: &FunctionName,
    alias: &AliasName,
    version: &Version,
    why: &str,
) -> Result<(Option<String>, bool), DeployError> {
    let description = format!("deployer previous=none rolled-back-to={version} reason={}", clip(why, 120));
    match lambda.get_alias(function, alias).await? {
        Some(a) if a.version == version.as_str() && a.additional.is_none() => Ok((Some(a.version), false)),
        Some(a) => {
            lambda.update_alias(function, alias, version, &description, &a.revision_id).await?;
            Ok((Some(a.version), true))
        }
        None => {
            lambda.create_alias(function, alias, version, &description).await?;
            Ok((None, true))
        }
    }
}

async fn verify(lambda: &impl FunctionApi, t: &TargetSpec, version: &Version) -> Result<usize, DeployError> {
    let run = run_cases(lambda, &t.function, t.alias.as_str(), &t.smoke_test).await?;
    if !run.failures.is_empty() {
        return Err(DeployError::RollbackFailed {
            function: t.function.to_string(),
            message: format!(
                "alias {} is on version {version}, but that version fails its smoke test: {}",
                t.alias,
                run.failures.join("; ")
            ),
        });
    }
    Ok(run.cases.len())
}
