//! Canary and linear shifts: Shift Traffic moves the alias's weight one step; Check Health reads the gates
//! while the step bakes (in Wait states: nothing runs between checks) and decides what comes next.

use crate::decisions::{alias_description, judge_health, Health};
use crate::model::{Command, Routing};
use crate::plan::{HealthInput, HealthReport, NextMove, TrafficInput, TrafficState};
use crate::ports::{DeploymentLedger, FunctionApi, Telemetry};
use crate::spec::OnInsufficientData;
use crate::steps::still_holds;
use crate::DeployError;

/// Move the alias to the next weight: `main` stays the version it served before, `candidate` gets the
/// weight. Guarded by RevisionId; refuses an alias someone else moved since the deployment began.
pub async fn shift_traffic(
    lambda: &impl FunctionApi,
    ledger: &impl DeploymentLedger,
    input: TrafficInput,
    now_ms: i64,
) -> Result<TrafficState, DeployError> {
    let plan = &input.plan;
    let t = &plan.target;
    still_holds(ledger, &t.function, &input.execution, now_ms).await?;
    // An operator's rollback (or abort) sent before the first shift: no traffic moves at all.
    if let Some((Command::Abort, reason)) = ledger.command(&t.function, &input.execution).await? {
        return Err(DeployError::Aborted {
            function: t.function.to_string(),
            reason: format!("{reason} (before any traffic moved)"),
        });
    }
    let weights = t.strategy.weights();
    let step = input.traffic.as_ref().map_or(0, |s| s.step + 1);
    let Some(&weight) = weights.get(step) else {
        return Err(DeployError::invalid(format!(
            "Shift Traffic was asked for step {} of a strategy with {} step(s)",
            step + 1,
            weights.len()
        )));
    };
    let baseline = plan.previous_version.clone().ok_or_else(|| {
        DeployError::invalid(format!(
            "{} has no version serving traffic, so there is nothing to shift gradually from; its first \
             deployment goes all at once",
            t.function
        ))
    })?;
    let candidate = input.published.version.clone();
    let alias = lambda.get_alias(&t.function, &t.alias).await?.ok_or_else(|| DeployError::NotFound {
        what: "alias",
        message: format!("alias {} of {} is gone: it was deleted during the deployment", t.alias, t.function),
    })?;
    if alias.version != baseline.as_str() {
        return Err(DeployError::invalid(format!(
            "alias {} of {} now leads with version {}, not {baseline} as when the deployment began: someone moved \
             it. Nothing was shifted",
            t.alias, t.function, alias.version
        )));
    }
    let target_weight = f64::from(weight) / 100.0;
    let already =
        alias.additional.as_ref().is_some_and(|(v, w)| v == candidate.as_str() && (w - target_weight).abs() < 1e-9);
    if !already {
        let description = alias_description(Some(&baseline), &plan.image_digest, &input.execution);
        let routing = Routing { main: baseline.clone(), candidate: candidate.clone(), weight: target_weight };
        lambda.route_alias(&t.function, &t.alias, &routing, &description, &alias.revision_id).await?;
    }
    let wait = t.gates.check_interval_seconds.min(t.strategy.bake_seconds()).max(1);
    tracing::info!(
        function = %t.function, alias = %t.alias, %candidate, %baseline, weight, step = step + 1,
        steps = weights.len(), "traffic shifted"
    );
    Ok(TrafficState {
        step,
        steps: weights.len(),
        weight,
        step_started_at_ms: now_ms,
        baseline,
        candidate,
        wait_seconds: wait,
    })
}

/// Read the gates for the current step and decide: bake on, shift further, complete, or fail (a failed
/// gate or an operator's abort is an error: the state machine rolls back, all traffic at once).
pub async fn check_health(
    ledger: &impl DeploymentLedger,
    telemetry: &impl Telemetry,
    input: HealthInput,
    now_ms: i64,
) -> Result<HealthReport, DeployError> {
    let t = &input.plan.target;
    still_holds(ledger, &t.function, &input.execution, now_ms).await?;
    let g = &t.gates;
    let s = &input.traffic;
    let window_ms = (now_ms - s.step_started_at_ms).max(0);
    let (candidate, baseline) = (
        telemetry.version_stats(&t.function, &t.alias, s.candidate.as_str(), s.step_started_at_ms, now_ms).await?,
        telemetry.version_stats(&t.function, &t.alias, s.baseline.as_str(), s.step_started_at_ms, now_ms).await?,
    );
    let alarms = if g.alarms.is_empty() { Vec::new() } else { telemetry.alarms(&g.alarms).await? };
    let health = judge_health(g, &candidate, &baseline, &alarms);
    let report = |next: NextMove, verdict: String| HealthReport {
        next,
        traffic: s.clone(),
        candidate,
        baseline,
        window_seconds: window_ms / 1000,
        verdict,
    };
    let at = format!("step {} of {} ({}% on version {})", s.step + 1, s.steps, s.weight, s.candidate);
    if let Health::Unhealthy(reasons) = &health {
        return Err(DeployError::GateFailed {
            function: t.function.to_string(),
            report: format!("{at}, after {} s: {}", window_ms / 1000, reasons.join("; ")),
        });
    }
    match ledger.command(&t.function, &input.execution).await? {
        Some((Command::Abort, reason)) => {
            return Err(DeployError::Aborted {
                function: t.function.to_string(),
                reason: format!("{reason} (at {at})"),
            })
        }
        Some((Command::Promote, reason)) => {
            let line = match &health {
                Health::Healthy(l) | Health::TooLittleTraffic(l) => l.clone(),
                Health::Unhealthy(_) => String::new(),
            };
            tracing::warn!(function = %t.function, %reason, "promoted by an operator");
            return Ok(report(NextMove::Complete, format!("promoted by an operator at {at}: {reason}; {line}")));
        }
        None => {}
    }
    let bake_ms = i64::from(t.strategy.bake_seconds() + g.metric_lag_seconds) * 1000;
    let last = s.step + 1 >= s.steps;
    let done = if last { NextMove::Complete } else { NextMove::Shift };
    let out = match health {
        Health::Unhealthy(_) => unreachable!("returned above"),
        Health::Healthy(line) if window_ms >= bake_ms => report(done, format!("{at} passed: {line}")),
        Health::Healthy(line) => report(NextMove::Bake, format!("{at} baking: {line}")),
        Health::TooLittleTraffic(line) if window_ms < bake_ms => report(NextMove::Bake, format!("{at} baking: {line}")),
        Health::TooLittleTraffic(line) => {
            let waited = (window_ms - bake_ms) / 1000;
            if g.on_insufficient_data == OnInsufficientData::Fail || waited >= i64::from(g.max_wait_seconds) {
                let after = if g.on_insufficient_data == OnInsufficientData::Fail {
                    "gates.onInsufficientData is fail".to_string()
                } else {
                    format!("still so after waiting {waited} s past the bake (gates.maxWaitSeconds)")
                };
                return Err(DeployError::GateFailed {
                    function: t.function.to_string(),
                    report: format!("{at}: {line}; {after}"),
                });
            }
            report(NextMove::Bake, format!("{at} waiting for traffic: {line}"))
        }
    };
    tracing::info!(function = %t.function, next = ?out.next, verdict = %out.verdict, "health checked");
    Ok(out)
}
