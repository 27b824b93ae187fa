//! Canary and linear: Shift Traffic moves the alias's weight one step (guarded, never past a moved alias);
//! Check Health reads the gates and decides bake / shift / complete, or fails with the numbers.

use deployer_core::model::{Command, VersionStats};
use deployer_core::plan::{HealthInput, NextMove, Plan, Published, TrafficInput, TrafficState};
use deployer_core::ports::DeploymentLedger;
use deployer_core::spec::{Gates, OnInsufficientData, Strategy, TargetSpec};
use deployer_core::steps::{check_health, shift_traffic};
use deployer_core::DeployError;

use crate::fakes::*;

fn canary() -> TargetSpec {
    TargetSpec {
        strategy: Strategy::Canary { percent: 10, bake_seconds: 300 },
        gates: Gates { metric_lag_seconds: 60, check_interval_seconds: 30, ..Gates::default() },
        ..spec()
    }
}

fn linear() -> TargetSpec {
    TargetSpec { strategy: Strategy::Linear { step_percent: 30, interval_seconds: 120 }, ..canary() }
}

fn the_plan(t: TargetSpec) -> Plan {
    plan(t, v2(), true, Some("1"))
}

/// Version 1 behind the alias, version 2 (v2's image) just published.
fn two_versions() -> FakeLambda {
    let lambda = FakeLambda::new();
    let one = lambda.seed_release(&spec(), &v1());
    lambda.seed_alias(&spec(), &one, "deployer previous=none image=111111111111 execution=first");
    lambda.seed_release(&spec(), &v2());
    lambda
}

fn shift_input(t: TargetSpec, traffic: Option<TrafficState>) -> TrafficInput {
    TrafficInput {
        plan: the_plan(t),
        published: Published { version: version("2"), code_sha256: v2().hex().into() },
        traffic,
        execution: EXECUTION.into(),
    }
}

fn state(step: usize, steps: usize, weight: u32, started: i64) -> TrafficState {
    TrafficState {
        step,
        steps,
        weight,
        step_started_at_ms: started,
        baseline: version("1"),
        candidate: version("2"),
        wait_seconds: 30,
    }
}

fn stats(invocations: u64, errors: u64, p99_ms: f64) -> VersionStats {
    VersionStats { invocations, errors, throttles: 0, p99_ms: Some(p99_ms) }
}

async fn health(
    t: TargetSpec,
    traffic: TrafficState,
    telemetry: &FakeTelemetry,
    ledger: &FakeLedger,
    now: i64,
) -> Result<deployer_core::plan::HealthReport, DeployError> {
    check_health(ledger, telemetry, HealthInput { plan: the_plan(t), traffic, execution: EXECUTION.into() }, now).await
}

#[tokio::test]
async fn a_canary_sends_its_share_to_the_new_version_and_keeps_the_old_one_leading() {
    let lambda = two_versions();
    let s = shift_traffic(&lambda, &FakeLedger::held(), shift_input(canary(), None), NOW_MS).await.unwrap();
    assert_eq!(s, state(0, 1, 10, NOW_MS));
    let alias = lambda.alias(FN, "live").unwrap();
    assert_eq!((alias.version.as_str(), alias.additional), ("1", Some(("2".to_string(), 0.1))));
}

#[tokio::test]
async fn linear_steps_go_up_by_their_percent_and_a_rerun_moves_nothing_twice() {
    let lambda = two_versions();
    let first = shift_traffic(&lambda, &FakeLedger::held(), shift_input(linear(), None), NOW_MS).await.unwrap();
    assert_eq!((first.step, first.steps, first.weight), (0, 3, 30));
    let second = shift_traffic(&lambda, &FakeLedger::held(), shift_input(linear(), Some(first.clone())), NOW_MS + 1)
        .await
        .unwrap();
    assert_eq!((second.step, second.weight, second.step_started_at_ms), (1, 60, NOW_MS + 1));
    assert_eq!(lambda.alias(FN, "live").unwrap().additional, Some(("2".to_string(), 0.6)));
    let writes = lambda.writes().len();
    // A re-run of the same step (Step Functions retried it after the write landed) sends nothing.
    shift_traffic(&lambda, &FakeLedger::held(), shift_input(linear(), Some(first)), NOW_MS + 2).await.unwrap();
    assert_eq!(lambda.writes().len(), writes);
    // Past the last weight there is no step to take.
    let err = shift_traffic(&lambda, &FakeLedger::held(), shift_input(linear(), Some(state(2, 3, 90, NOW_MS))), NOW_MS)
        .await
        .unwrap_err();
    assert_eq!(err.name(), "InvalidInput");
}

#[tokio::test]
async fn an_alias_someone_moved_is_not_shifted() {
    let lambda = two_versions();
    let three = lambda.seed_release(&spec(), &digest('3'));
    lambda.seed_alias(&spec(), &three, "moved by hand");
    let writes = lambda.writes().len();
    let err = shift_traffic(&lambda, &FakeLedger::held(), shift_input(canary(), None), NOW_MS).await.unwrap_err();
    assert_eq!(err.name(), "InvalidInput");
    assert!(err.to_string().contains("someone moved it"), "{err}");
    assert_eq!(lambda.writes().len(), writes);
}

#[tokio::test]
async fn a_healthy_step_bakes_until_its_time_is_up_then_moves_on() {
    let ledger = FakeLedger::held();
    let telemetry = FakeTelemetry::with(("2", stats(40, 0, 90.0)), ("1", stats(400, 1, 80.0)));
    // Mid-bake: keep baking.
    let r = health(canary(), state(0, 1, 10, NOW_MS), &telemetry, &ledger, NOW_MS + 100_000).await.unwrap();
    assert_eq!(r.next, NextMove::Bake);
    assert!(r.verdict.contains("baking") && r.verdict.contains("candidate 0 errors / 40 invocations"), "{r:?}");
    // Bake (300 s) and metric lag (60 s) over: the canary's last step is done.
    let r = health(canary(), state(0, 1, 10, NOW_MS), &telemetry, &ledger, NOW_MS + 360_000).await.unwrap();
    assert_eq!((r.next, r.window_seconds), (NextMove::Complete, 360));
    // A linear step that is not the last: shift further.
    let r = health(linear(), state(0, 3, 30, NOW_MS), &telemetry, &ledger, NOW_MS + 180_000).await.unwrap();
    assert_eq!(r.next, NextMove::Shift);
    assert_eq!(
        telemetry.calls.lock().unwrap()[..2],
        [
            format!("Stats {FN}:live v2 {NOW_MS}..{}", NOW_MS + 100_000),
            format!("Stats {FN}:live v1 {NOW_MS}..{}", NOW_MS + 100_000)
        ]
    );
}

#[tokio::test]
async fn a_candidate_that_errors_fails_the_gate_with_the_numbers() {
    let ledger = FakeLedger::held();
    let telemetry = FakeTelemetry::with(("2", stats(30, 30, 5.0)), ("1", stats(270, 0, 5.0)));
    let err = health(canary(), state(0, 1, 10, NOW_MS), &telemetry, &ledger, NOW_MS + 40_000).await.unwrap_err();
    assert_eq!(err.name(), "GateFailed");
    let m = err.to_string();
    assert!(m.contains("step 1 of 1 (10% on version 2), after 40 s"), "{m}");
    assert!(
        m.contains("error rate 100.0% (30 errors in 30 invocations) is over the baseline's 0.0% (0 of 270)"),
        "{m}"
    );
}

#[tokio::test]
async fn a_candidate_slower_than_the_baseline_fails_the_gate() {
    let ledger = FakeLedger::held();
    let telemetry = FakeTelemetry::with(("2", stats(30, 0, 400.0)), ("1", stats(270, 0, 100.0)));
    let err = health(canary(), state(0, 1, 10, NOW_MS), &telemetry, &ledger, NOW_MS + 40_000).await.unwrap_err();
    assert!(err.to_string().contains("p99 duration 400 ms is over the baseline's 100 ms + 50%"), "{err}");
}

#[tokio::test]
async fn a_broken_candidate_fails_before_it_has_the_minimum_sample() {
    // 8 errors in 8 calls: even if the next 12 succeeded, 40% is over the 5% limit
    let t = TargetSpec { gates: Gates { max_error_rate: Some(0.05), ..canary().gates }, ..canary() };
    let telemetry = FakeTelemetry::with(("2", stats(8, 8, 5.0)), ("1", stats(72, 0, 5.0)));
    let err = health(t, state(0, 1, 10, NOW_MS), &telemetry, &FakeLedger::held(), NOW_MS + 5_000).await.unwrap_err();
    assert!(err.to_string().contains("error rate 100.0% (8 errors in 8 invocations) is over the limit 5.0%"), "{err}");
}

#[tokio::test]
async fn an_alarm_in_alarm_or_missing_stops_the_shift() {
    let t =
        TargetSpec { gates: Gates { alarms: vec!["p99-high".into(), "gone".into()], ..canary().gates }, ..canary() };
    let telemetry = FakeTelemetry::with(("2", stats(40, 0, 5.0)), ("1", stats(400, 0, 5.0)));
    telemetry.alarm("p99-high", "ALARM", "Threshold Crossed: 1 datapoint [900.0] > 500.0");
    let err = health(t, state(0, 1, 10, NOW_MS), &telemetry, &FakeLedger::held(), NOW_MS + 5_000).await.unwrap_err();
    let m = err.to_string();
    assert!(m.contains("alarm p99-high is in ALARM: Threshold Crossed"), "{m}");
    assert!(m.contains("alarm gone does not exist"), "{m}");
}

#[tokio::test]
async fn too_little_traffic_is_reported_and_never_passes() {
    let telemetry = FakeTelemetry::with(("2", stats(3, 0, 5.0)), ("1", stats(27, 0, 5.0)));
    let ledger = FakeLedger::held();
    // wait (the default): keep waiting after the bake, up to maxWaitSeconds (600), then fail
    let r = health(canary(), state(0, 1, 10, NOW_MS), &telemetry, &ledger, NOW_MS + 400_000).await.unwrap();
    assert_eq!(r.next, NextMove::Bake);
    assert!(r.verdict.contains("waiting for traffic: too little traffic to judge: 3 candidate invocations, 20 needed"));
    let err = health(canary(), state(0, 1, 10, NOW_MS), &telemetry, &ledger, NOW_MS + 960_000).await.unwrap_err();
    assert!(err.to_string().contains("still so after waiting 600 s past the bake"), "{err}");
    // fail: at the end of the bake
    let t =
        TargetSpec { gates: Gates { on_insufficient_data: OnInsufficientData::Fail, ..canary().gates }, ..canary() };
    let err = health(t, state(0, 1, 10, NOW_MS), &telemetry, &ledger, NOW_MS + 360_000).await.unwrap_err();
    assert!(err.to_string().contains("too little traffic") && err.to_string().contains("onInsufficientData is fail"));
}

#[tokio::test]
async fn an_operator_can_promote_or_abort_a_running_shift() {
    let telemetry = FakeTelemetry::with(("2", stats(40, 0, 5.0)), ("1", stats(400, 0, 5.0)));
    let ledger = FakeLedger::held();
    ledger.send_command(&fname(FN), EXECUTION, &Command::Promote, "looks good").await.unwrap();
    let r = health(canary(), state(0, 1, 10, NOW_MS), &telemetry, &ledger, NOW_MS + 10_000).await.unwrap();
    assert_eq!(r.next, NextMove::Complete);
    assert!(r.verdict.contains("promoted by an operator") && r.verdict.contains("looks good"), "{r:?}");
    ledger.send_command(&fname(FN), EXECUTION, &Command::Abort, "wrong model").await.unwrap();
    let err = health(canary(), state(0, 1, 10, NOW_MS), &telemetry, &ledger, NOW_MS + 10_000).await.unwrap_err();
    assert_eq!(err.name(), "Aborted");
    assert!(err.to_string().contains("wrong model (at step 1 of 1"), "{err}");
}

#[tokio::test]
async fn a_rollback_asked_for_before_the_first_shift_sends_no_traffic_and_a_lost_lock_shifts_nothing() {
    let lambda = two_versions();
    let ledger = FakeLedger::held();
    ledger.seed_command(FN, EXECUTION, deployer_core::model::Command::Abort, "an operator asked for a rollback");
    let writes = lambda.writes().len();
    let err = shift_traffic(&lambda, &ledger, shift_input(canary(), None), NOW_MS).await.unwrap_err();
    assert_eq!(err.name(), "Aborted", "{err}");
    assert!(err.to_string().contains("before any traffic moved"), "{err}");

    let other = FakeLedger::new();
    other.seed_lock(FN, "deploy-ml-inference-333333333333", NOW_MS + 60_000);
    let err = shift_traffic(&lambda, &other, shift_input(canary(), None), NOW_MS).await.unwrap_err();
    assert_eq!(err.name(), "LockLost", "{err}");
    assert_eq!(lambda.writes().len(), writes);
    assert_eq!(lambda.alias(FN, "live").unwrap().additional, None);
}
