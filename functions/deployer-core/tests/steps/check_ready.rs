//! Check Ready: one look at the function, no waiting.

use deployer_core::model::{LambdaState, UpdateStatus};
use deployer_core::plan::{CheckReadyInput, ReadyOutput, ReadyStatus, UpdateAction, UpdateOutput};
use deployer_core::steps::check_ready;

use crate::fakes::*;

/// The update round started at this instant (ms since the epoch); readyTimeoutSeconds is 120.
const STARTED: u64 = 1_800_000_000_000;
const TIMEOUT_MS: u64 = 120_000;

fn input() -> CheckReadyInput {
    CheckReadyInput {
        plan: plan(spec(), v2(), true, Some("1")),
        update: UpdateOutput { action: UpdateAction::Code, drift: vec![], started_at_ms: STARTED },
    }
}

async fn check(lambda: &FakeLambda, now: u64) -> ReadyOutput {
    let out = check_ready(lambda, input(), now).await.unwrap();
    // Checking readiness never changes anything.
    assert!(lambda.writes().is_empty(), "{:?}", lambda.writes());
    out
}

/// A function on v1 whose code update to the candidate is in progress.
fn updating() -> FakeLambda {
    let lambda = FakeLambda::new();
    lambda.seed_function(&spec(), &v1());
    lambda.edit_latest(FN, |f| f.code_sha256 = v2().hex().to_string());
    lambda.world().start_foreign_update(FN);
    lambda
}

#[tokio::test]
async fn a_converged_successful_function_is_ready() {
    // GIVEN the function runs the candidate with the spec's configuration, last update Successful
    let lambda = FakeLambda::new();
    lambda.seed_function(&spec(), &v2());

    // WHEN readiness is checked
    let out = check(&lambda, STARTED + 5_000).await;

    // THEN it is ready, with no reason, after one read
    assert_eq!(out, ReadyOutput { status: ReadyStatus::Ready, reason: None, wait_seconds: 0 });
    assert_eq!(lambda.calls(), ["GetFunction ml-inference"]);
}

#[tokio::test]
async fn an_update_in_progress_is_pending_until_the_deadline() {
    // GIVEN an update in progress
    let lambda = updating();

    // WHEN readiness is checked within readyTimeoutSeconds, and exactly at it
    // THEN it is pending
    assert_eq!(check(&lambda, STARTED + 1_000).await.status, ReadyStatus::Pending);
    assert_eq!(check(&lambda, STARTED + TIMEOUT_MS).await.status, ReadyStatus::Pending);
    // AND the next look backs off with the time waited: 1 s at first, a tenth of the wait later (120 s: 12 s)
    assert_eq!(check(&lambda, STARTED + 1_000).await.wait_seconds, 1);
    assert_eq!(check(&lambda, STARTED + TIMEOUT_MS).await.wait_seconds, 12);

    // WHEN Lambda finishes
    lambda.finish_update(FN);

    // THEN it is ready
    assert_eq!(check(&lambda, STARTED + 2_000).await.status, ReadyStatus::Ready);
}

#[tokio::test]
async fn a_function_being_created_is_pending() {
    // GIVEN a function just created (State Pending, no LastUpdateStatus)
    let lambda = FakeLambda::new();
    lambda.seed_function(&spec(), &v2());
    lambda.edit_latest(FN, |f| {
        f.state = LambdaState::Pending;
        f.last_update = UpdateStatus::Unknown;
    });

    // WHEN readiness is checked
    // THEN it is pending
    assert_eq!(check(&lambda, STARTED + 1_000).await.status, ReadyStatus::Pending);
}

#[tokio::test]
async fn an_update_past_the_deadline_has_failed() {
    // GIVEN an update still in progress
    let lambda = updating();

    // WHEN readiness is checked one millisecond past readyTimeoutSeconds (120 s) from startedAtMs
    let out = check(&lambda, STARTED + TIMEOUT_MS + 1).await;

    // THEN it has failed, saying how long it waited and what the limit is
    assert_eq!(out.status, ReadyStatus::Failed);
    assert_eq!(
        out.reason.as_deref(),
        Some("ml-inference was still updating after 120 s (readyTimeoutSeconds is 120 s)")
    );
}

#[tokio::test]
async fn a_ready_function_that_does_not_match_the_spec_yet_is_drifted() {
    // GIVEN the configuration update finished but the code is still v1
    let lambda = FakeLambda::new();
    lambda.seed_function(&spec(), &v1());

    // WHEN readiness is checked
    // THEN it is drifted: the update step has more to do
    assert_eq!(
        check(&lambda, STARTED + 1_000).await,
        ReadyOutput { status: ReadyStatus::Drifted, reason: None, wait_seconds: 0 }
    );

    // AND a configuration edited by hand after the update is drifted too
    let lambda = FakeLambda::new();
    lambda.seed_function(&spec(), &v2());
    lambda.edit_latest(FN, |f| f.config.timeout_seconds = 3);
    assert_eq!(check(&lambda, STARTED + 1_000).await.status, ReadyStatus::Drifted);
}

#[tokio::test]
async fn a_failed_update_has_failed_with_its_reason() {
    // GIVEN the code update failed
    let lambda = updating();
    lambda.fail_update(FN, "The image manifest or layer media type for the source image is not supported.");

    // WHEN readiness is checked, long past the deadline even
    let out = check(&lambda, STARTED + 10 * TIMEOUT_MS).await;

    // THEN it has failed with Lambda's reason
    assert_eq!(out.status, ReadyStatus::Failed);
    assert_eq!(
        out.reason.as_deref(),
        Some(
            "the last update of ml-inference failed: The image manifest or layer media type for the source image is \
             not supported."
        )
    );
}

#[tokio::test]
async fn a_failed_creation_has_failed_with_its_reason() {
    // GIVEN the function's creation failed (State Failed)
    let lambda = FakeLambda::new();
    lambda.seed_function(&spec(), &v2());
    lambda.edit_latest(FN, |f| f.state = LambdaState::Pending);
    lambda.fail_update(FN, "Lambda was unable to configure access to your environment variables");

    // WHEN readiness is checked
    let out = check(&lambda, STARTED + 1_000).await;

    // THEN it has failed with the state's reason
    assert_eq!(out.status, ReadyStatus::Failed);
    assert_eq!(
        out.reason.as_deref(),
        Some("function ml-inference is in state Failed: Lambda was unable to configure access to your environment variables")
    );
}

#[tokio::test]
async fn a_deleted_function_has_failed() {
    // GIVEN the function was deleted during the deployment
    let lambda = FakeLambda::new();

    // WHEN readiness is checked
    let out = check(&lambda, STARTED + 1_000).await;

    // THEN it has failed, saying so
    assert_eq!(
        out,
        ReadyOutput {
            status: ReadyStatus::Failed,
            reason: Some("function ml-inference no longer exists".into()),
            wait_seconds: 0,
        }
    );
}

#[tokio::test]
async fn a_throttled_read_propagates() {
    // GIVEN Lambda throttles GetFunction
    let lambda = updating();
    let throttled = deployer_core::DeployError::Throttled { service: "lambda", message: "Rate exceeded".into() };
    lambda.fail_next("GetFunction", 1, throttled.clone());

    // WHEN readiness is checked
    let err = check_ready(&lambda, input(), STARTED).await.unwrap_err();

    // THEN the throttle propagates
    assert_eq!(err, throttled);
}
