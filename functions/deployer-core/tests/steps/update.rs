//! Update Function: one step towards the spec (create, configuration, code), each guarded by the RevisionId
//! just read.

use deployer_core::decisions::config_drift;

use deployer_core::model::Drift;
use deployer_core::model::{LambdaState, UpdateStatus};
use deployer_core::plan::{CheckReadyInput, Plan, ReadyStatus, UpdateAction, UpdateOutput};
use deployer_core::steps::{self, check_ready, now_ms, update_function};
use deployer_core::DeployError;
use serde_json::{json, Value};

use crate::fakes::*;

/// The first round's `previous`, as the state machine seeds it.
fn first_round() -> Value {
    json!({"action": "none", "drift": [], "startedAtMs": 0})
}

/// Run the step on the JSON the state machine passes (`{"plan", "previous"}`).
async fn update(lambda: &FakeLambda, plan: &Plan, previous: Value) -> Result<UpdateOutput, DeployError> {
    let input = steps::input("Update Function", json!({"plan": plan, "previous": previous}))?;
    update_function(lambda, &FakeLogGroups::default(), input).await
}

fn drift(field: &str, expected: &str, actual: &str) -> Drift {
    Drift { field: field.into(), expected: expected.into(), actual: actual.into() }
}

/// A function that runs v1 with the spec's configuration, except memory 256 and an extra DEBUG variable
/// set by hand in the console.
fn drifted_function() -> FakeLambda {
    let lambda = FakeLambda::new();
    lambda.seed_function(&spec(), &v1());
    lambda.edit_latest(FN, |f| {
        f.config.memory_mb = 256;
        f.config.environment.insert("DEBUG".into(), "1".into());
    });
    lambda
}

#[tokio::test]
async fn a_missing_function_is_created_from_the_digest() {
    // GIVEN a target whose function does not exist
    let lambda = FakeLambda::new();
    let plan = plan(spec(), v2(), false, None);
    let before = now_ms();

    // WHEN the update step runs
    let out = update(&lambda, &plan, first_round()).await.unwrap();

    // THEN the function is created from the digest URI with the spec's configuration, and is Pending
    assert_eq!(out.action, UpdateAction::Created);
    assert!(out.drift.is_empty());
    assert!(out.started_at_ms >= before && out.started_at_ms <= now_ms(), "{}", out.started_at_ms);
    assert_eq!(
        lambda.calls(),
        ["GetFunction ml-inference".to_string(), format!("CreateFunction ml-inference {}", plan.image_uri)]
    );
    let f = lambda.latest(FN);
    assert_eq!(f.state, LambdaState::Pending);
    assert_eq!(f.code_sha256, v2().hex());
    assert!(config_drift(&spec().configuration, &f, &spec().log_group()).is_empty());
    assert_eq!(f.config.architecture, "x86_64");
}

#[tokio::test]
async fn an_update_in_progress_is_waited_for_without_writing() {
    // GIVEN a function with an update in progress, and an earlier round that started at t=1234
    let lambda = FakeLambda::new();
    lambda.seed_function(&spec(), &v1());
    lambda.world().start_foreign_update(FN);
    let plan = plan(spec(), v2(), true, None);

    // WHEN the update step runs
    let out =
        update(&lambda, &plan, json!({"action": "configuration", "drift": [], "startedAtMs": 1234})).await.unwrap();

    // THEN nothing is sent, and the readiness deadline keeps counting from the earlier round
    assert_eq!(out.action, UpdateAction::Waiting);
    assert_eq!(out.started_at_ms, 1234);
    assert_eq!(lambda.ops(), ["GetFunction"]);

    // AND a first round that has to wait starts the clock now
    let out = update(&lambda, &plan, first_round()).await.unwrap();
    assert_eq!(out.action, UpdateAction::Waiting);
    assert!(out.started_at_ms > 0);
    assert!(lambda.writes().is_empty());
}

#[tokio::test]
async fn a_function_being_created_is_waited_for() {
    // GIVEN a function still Pending after its creation
    let lambda = FakeLambda::new();
    let plan = plan(spec(), v2(), false, None);
    update(&lambda, &plan, first_round()).await.unwrap();
    lambda.clear_calls();

    // WHEN the update step runs again before Lambda is done
    let out = update(&lambda, &plan, first_round()).await.unwrap();

    // THEN it waits and sends nothing
    assert_eq!(out.action, UpdateAction::Waiting);
    assert_eq!(lambda.ops(), ["GetFunction"]);
}

#[tokio::test]
async fn drifted_configuration_goes_first_then_the_code_then_nothing() {
    // GIVEN a function on v1 whose memory and environment were edited by hand, and drift already found
    // earlier in this deployment
    let lambda = drifted_function();
    let plan = plan(spec(), v2(), true, Some("1"));
    let earlier = drift("logging.systemLevel", "WARN", "INFO");
    let read_revision = lambda.latest(FN).revision_id;

    // WHEN the update step runs
    let first = update(&lambda, &plan, json!({"action": "none", "drift": [earlier], "startedAtMs": 0})).await.unwrap();

    // THEN the configuration is reconciled first, with the RevisionId just read, and the drift is reported
    // after what was found before
    assert_eq!(first.action, UpdateAction::Configuration);
    assert_eq!(
        first.drift,
        [earlier.clone(), drift("memoryMb", "1024", "256"), drift("environment.DEBUG", "(unset)", "(set)")]
    );
    assert_eq!(lambda.writes(), [format!("UpdateFunctionConfiguration ml-inference rev={read_revision}")]);
    let f = lambda.latest(FN);
    assert_eq!(f.last_update, UpdateStatus::InProgress);
    assert_eq!(f.code_sha256, v1().hex(), "the code waits for the configuration");
    assert!(config_drift(&spec().configuration, &f, &spec().log_group()).is_empty());

    // WHEN Lambda finishes, and the step runs again with the previous round's output
    lambda.finish_update(FN);
    let read_revision = lambda.latest(FN).revision_id;
    lambda.clear_calls();
    let second = update(&lambda, &plan, serde_json::to_value(&first).unwrap()).await.unwrap();

    // THEN the code is pointed at the digest (never a tag), with the RevisionId just read; the drift is kept
    assert_eq!(second.action, UpdateAction::Code);
    assert_eq!(second.drift, first.drift);
    assert_eq!(
        lambda.writes(),
        [format!("UpdateFunctionCode ml-inference {REGISTRY}/ml-inference@{} arch=x86_64 rev={read_revision}", v2())]
    );
    assert_eq!(lambda.latest(FN).code_sha256, v2().hex());
    assert_eq!(lambda.world().function(FN).image_uri, plan.image_uri);

    // WHEN Lambda finishes, and the step runs a third time
    lambda.finish_update(FN);
    lambda.clear_calls();
    let third = update(&lambda, &plan, serde_json::to_value(&second).unwrap()).await.unwrap();

    // THEN the function has converged: nothing is sent
    assert_eq!(third.action, UpdateAction::None);
    assert_eq!(third.drift, first.drift);
    assert_eq!(lambda.ops(), ["GetFunction"]);
}

#[tokio::test]
async fn reserved_concurrency_drift_is_put_back_and_reported() {
    // GIVEN a converged function whose reservation someone removed, under a spec that reserves 5
    let lambda = FakeLambda::new();
    lambda.seed_function(&spec(), &v2());
    let reserving = spec_with(json!({"configuration": {"reservedConcurrency": 5}}));

    // WHEN the update step runs
    let out = update(&lambda, &plan(reserving.clone(), v2(), true, None), first_round()).await.unwrap();

    // THEN the reservation is put back at once (no update cycle) and reported as drift
    assert_eq!(out.drift, [drift("reservedConcurrency", "5", "(unreserved)")]);
    assert_eq!(lambda.writes().iter().filter(|w| w.starts_with("SetReservedConcurrency")).count(), 1);
    // AND a second round finds nothing to reconcile
    let again = update(&lambda, &plan(reserving, v2(), true, None), first_round()).await.unwrap();
    assert!(again.drift.is_empty(), "{:?}", again.drift);
}

#[tokio::test]
async fn the_log_group_is_created_with_its_retention_and_retention_drift_is_put_back() {
    let lambda = FakeLambda::new();
    lambda.seed_function(&spec(), &v2());
    let keeping = spec_with(json!({"configuration": {"logging": {"retentionDays": 30}}}));
    let logs = FakeLogGroups::default();
    let run = |t: deployer_core::spec::TargetSpec| {
        let input =
            steps::input("Update Function", json!({"plan": plan(t, v2(), true, None), "previous": first_round()}));
        let (lambda, logs) = (&lambda, &logs);
        async move { update_function(lambda, logs, input.unwrap()).await.unwrap() }
    };

    // GIVEN no log group yet: it is created with the retention (not drift: nothing was there to drift)
    let out = run(keeping.clone()).await;
    assert!(out.drift.is_empty(), "{:?}", out.drift);
    assert_eq!(logs.groups.lock().unwrap().get("/aws/lambda/ml-inference"), Some(&Some(30)));

    // GIVEN someone set the retention to 1 day: it is put back, and reported
    logs.groups.lock().unwrap().insert("/aws/lambda/ml-inference".into(), Some(1));
    let out = run(keeping.clone()).await;
    assert_eq!(out.drift, [drift("logging.retentionDays", "30", "1")]);
    assert_eq!(logs.groups.lock().unwrap().get("/aws/lambda/ml-inference"), Some(&Some(30)));

    // GIVEN a spec without retention: the group is left alone
    let calls_before = logs.calls.lock().unwrap().len();
    run(spec()).await;
    assert_eq!(logs.calls.lock().unwrap().len(), calls_before);
}

#[tokio::test]
async fn a_converged_function_gets_nothing() {
    // GIVEN a function that already runs the candidate with the spec's configuration
    let lambda = FakeLambda::new();
    lambda.seed_function(&spec(), &v2());

    // WHEN the update step runs
    let out = update(&lambda, &plan(spec(), v2(), true, None), first_round()).await.unwrap();

    // THEN nothing is sent
    assert_eq!(out.action, UpdateAction::None);
    assert!(out.drift.is_empty());
    assert!(lambda.writes().is_empty());
}

#[tokio::test]
async fn a_new_architecture_is_sent_with_the_code() {
    // GIVEN a function on x86_64, and a spec that moves it to arm64 with the same image
    let lambda = FakeLambda::new();
    lambda.seed_function(&spec(), &v2());
    let arm = spec_with(json!({"configuration": {"architecture": "arm64"}}));

    // WHEN the update step runs
    let out = update(&lambda, &plan(arm, v2(), true, None), first_round()).await.unwrap();

    // THEN the code is updated with the new architecture
    assert_eq!(out.action, UpdateAction::Code);
    assert!(lambda.writes()[0].contains(" arch=arm64 "), "{:?}", lambda.writes());
    assert_eq!(lambda.latest(FN).config.architecture, "arm64");
}

#[tokio::test]
async fn a_failed_earlier_update_is_retried_with_the_code() {
    // GIVEN a function whose last update (to a broken image) failed
    let lambda = FakeLambda::new();
    lambda.seed_function(&spec(), &broken());
    lambda.world().start_foreign_update(FN);
    lambda.fail_update(FN, "Image manifest is invalid");

    // WHEN the update step runs for the candidate
    let out = update(&lambda, &plan(spec(), v2(), true, None), first_round()).await.unwrap();

    // THEN the code is sent again
    assert_eq!(out.action, UpdateAction::Code);
    assert_eq!(lambda.latest(FN).code_sha256, v2().hex());
}

#[tokio::test]
async fn a_concurrent_change_before_the_configuration_update_is_a_precondition_failure() {
    // GIVEN a drifted function that someone edits between our read and our write
    let lambda = drifted_function();
    lambda.before_call("UpdateFunctionConfiguration", 1, |w| w.touch(FN));

    // WHEN the update step runs
    let err = update(&lambda, &plan(spec(), v2(), true, None), first_round()).await.unwrap_err();

    // THEN Lambda refuses the stale RevisionId, the error propagates, and nothing was changed
    assert!(matches!(err, DeployError::PreconditionFailed { .. }), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(lambda.latest(FN).config.memory_mb, 256);
    assert_eq!(lambda.count("UpdateFunctionCode"), 0);
}

#[tokio::test]
async fn an_update_started_by_someone_else_before_the_code_update_propagates() {
    // GIVEN a function on v1 that someone starts updating between our read and our write
    let lambda = FakeLambda::new();
    lambda.seed_function(&spec(), &v1());
    lambda.before_call("UpdateFunctionCode", 1, |w| w.start_foreign_update(FN));

    // WHEN the update step runs
    let err = update(&lambda, &plan(spec(), v2(), true, None), first_round()).await.unwrap_err();

    // THEN Lambda's conflict propagates as UpdateInProgress, and the code is unchanged
    assert!(matches!(err, DeployError::UpdateInProgress { .. }), "{err:?}");
    assert_eq!(lambda.latest(FN).code_sha256, v1().hex());
}

#[tokio::test]
async fn aws_failures_propagate_and_a_retry_converges() {
    // GIVEN Lambda is unavailable for one UpdateFunctionCode call
    let lambda = FakeLambda::new();
    lambda.seed_function(&spec(), &v1());
    let unavailable = DeployError::AwsUnavailable { service: "lambda", message: "503 Service Unavailable".into() };
    lambda.fail_next("UpdateFunctionCode", 1, unavailable.clone());
    let plan = plan(spec(), v2(), true, None);

    // WHEN the update step runs
    let err = update(&lambda, &plan, first_round()).await.unwrap_err();

    // THEN the error propagates unchanged and nothing was changed
    assert_eq!(err, unavailable);
    assert_eq!(lambda.latest(FN).code_sha256, v1().hex());

    // AND the state machine's retry of the same input succeeds
    let out = update(&lambda, &plan, first_round()).await.unwrap();
    assert_eq!(out.action, UpdateAction::Code);
    assert_eq!(lambda.latest(FN).code_sha256, v2().hex());
}

#[tokio::test]
async fn a_throttled_read_propagates_before_any_write() {
    // GIVEN Lambda throttles GetFunction
    let lambda = drifted_function();
    lambda.fail_next("GetFunction", 1, DeployError::Throttled { service: "lambda", message: "Rate exceeded".into() });

    // WHEN the update step runs
    let err = update(&lambda, &plan(spec(), v2(), true, None), first_round()).await.unwrap_err();

    // THEN the throttle propagates and nothing is written
    assert!(matches!(err, DeployError::Throttled { .. }), "{err:?}");
    assert!(lambda.writes().is_empty());
}

#[tokio::test]
async fn the_update_and_readiness_loop_converges_on_a_drifted_function() {
    // GIVEN a drifted function on v1 (the state machine loops Update -> Wait -> Check Ready)
    let lambda = drifted_function();
    let plan = plan(spec(), v2(), true, Some("1"));
    let mut previous = first_round();
    let mut actions = Vec::new();

    // WHEN the loop runs, Lambda finishing each update while the state machine waits
    let status = loop {
        assert!(actions.len() < 6, "no convergence: {actions:?}");
        let out = update(&lambda, &plan, previous).await.unwrap();
        actions.push(out.action);
        lambda.finish_update(FN);
        let ready =
            check_ready(&lambda, CheckReadyInput { plan: plan.clone(), update: out.clone() }, now_ms()).await.unwrap();
        previous = serde_json::to_value(&out).unwrap();
        if ready.status != ReadyStatus::Drifted {
            break ready.status;
        }
    };

    // THEN the configuration went first, the code next, and the function is ready with the drift reported
    assert_eq!(status, ReadyStatus::Ready);
    assert_eq!(actions, [UpdateAction::Configuration, UpdateAction::Code]);
    let drifted: Vec<String> =
        serde_json::from_value::<UpdateOutput>(previous).unwrap().drift.into_iter().map(|d| d.field).collect();
    assert_eq!(drifted, ["memoryMb", "environment.DEBUG"]);
    assert_eq!(lambda.ops().iter().filter(|o| o.starts_with("Update")).count(), 2);
}
