//! Rollback: put the alias where it must be after a failure (automatic) or where an operator asks (manual),
//! then prove it with the smoke cases through the alias.

use deployer_core::decisions::alias_description;
use deployer_core::plan::{Plan, RollbackInput, RollbackRequest, RolledBack};
use deployer_core::steps::rollback;
use deployer_core::DeployError;
use serde_json::json;

use crate::fakes::*;

/// Versions 1, 2 and 3 (3 runs v1), all answering right; the alias serves version 3 and records previous=2.
/// $LATEST runs the candidate v2, whose model is broken.
fn live_on_3() -> (FakeLambda, FakeStore) {
    let lambda = FakeLambda::new();
    for d in [digest('a'), digest('c'), v1()] {
        lambda.seed_release(&spec(), &d);
        lambda.model(&d, good_model());
    }
    lambda.seed_alias(
        &spec(),
        &version("3"),
        &alias_description(Some(&version("2")), &v1(), "deploy-ml-inference-111111111111"),
    );
    lambda.seed_latest(&spec(), &v2());
    lambda.model(&v2(), flipped_model());
    (lambda, FakeStore::with([spec()]))
}

/// The same, after version 4 (v2) was published and the alias moved to it, recording previous=3.
fn moved_to_4() -> (FakeLambda, FakeStore) {
    let (lambda, store) = live_on_3();
    lambda.seed_release(&spec(), &v2());
    lambda.seed_alias(&spec(), &version("4"), &alias_description(Some(&version("3")), &v2(), EXECUTION));
    (lambda, store)
}

/// The Rollback state's input after a Catch: the plan, and the caught error as Step Functions records it.
fn automatic(plan: &Plan, failure: &DeployError) -> RollbackInput {
    serde_json::from_value(json!({
        "mode": "automatic",
        "plan": plan,
        "error": {"Error": failure.name(), "Cause": lambda_error_cause(failure)}
    }))
    .unwrap()
}

fn smoke_failure() -> DeployError {
    DeployError::SmokeTestFailed {
        function: FN.into(),
        report: "1 problem(s): warm-up case \"golden-benign\": $.classes[0] is 0, expected 1 (tolerance 0.001)".into(),
    }
}

fn manual(to_version: Option<&str>, reason: Option<&str>) -> RollbackInput {
    RollbackInput::Manual {
        request: RollbackRequest {
            action: Some("rollback".into()),
            function: fname(FN),
            to_version: to_version.map(version),
            reason: reason.map(str::to_string),
        },
    }
}

fn alias_writes(lambda: &FakeLambda) -> usize {
    lambda.count("CreateAlias") + lambda.count("UpdateAlias")
}

/// Every verification invocation went through the alias and ran `executed`.
fn assert_verified_through_alias(lambda: &FakeLambda, executed: &str) {
    let served = lambda.served();
    assert_eq!(served.len(), 3, "one warm-up and two cases: {served:?}");
    assert!(served.iter().all(|s| s.qualifier == "live" && s.executed_version == executed), "{served:?}");
}

// ---- automatic ----

#[tokio::test]
async fn an_alias_still_on_the_previous_version_stays_and_is_verified() {
    // GIVEN the smoke test of the candidate failed, so the alias never left version 3
    let (lambda, store) = live_on_3();
    let before = lambda.alias(FN, "live").unwrap();
    let failure = smoke_failure();

    // WHEN the automatic rollback runs
    let out = rollback(&lambda, &store, automatic(&plan(spec(), v2(), true, Some("3")), &failure)).await.unwrap();

    // THEN the alias is not written, and the smoke cases pass through it on version 3
    assert_eq!(alias_writes(&lambda), 0, "{:?}", lambda.calls());
    assert_eq!(lambda.alias(FN, "live").unwrap(), before);
    assert_verified_through_alias(&lambda, "3");
    assert_eq!(out.to_version, Some(version("3")));
    assert_eq!(out.verified_cases, 2);
    assert_eq!((out.function, out.alias.as_str()), (fname(FN), "live"));
    // AND the cause names the original error and its message, and where the alias is
    assert!(out.cause.contains("SmokeTestFailed"), "{}", out.cause);
    assert!(out.cause.contains(&failure.to_string()), "{}", out.cause);
    assert!(out.cause.contains("alias live stayed on version 3"), "{}", out.cause);
    assert!(out.cause.contains("2 smoke case(s) pass through the alias"), "{}", out.cause);
}

#[tokio::test]
async fn an_alias_already_moved_is_moved_back_and_verified() {
    // GIVEN the alias was moved to version 4, then the deployment failed (Shift Alias's response was lost)
    let (lambda, store) = moved_to_4();
    let before = lambda.alias(FN, "live").unwrap();
    let failure =
        DeployError::AwsUnavailable { service: "lambda", message: "timeout after UpdateAlias was sent".into() };

    // WHEN the automatic rollback runs
    let out = rollback(&lambda, &store, automatic(&plan(spec(), v2(), true, Some("3")), &failure)).await.unwrap();

    // THEN the alias goes back to version 3, guarded by its RevisionId, and is verified there
    assert_eq!(
        lambda.writes(),
        [format!(
            "UpdateAlias ml-inference:live -> 3 rev={} description=deployer previous=none rolled-back-to=3 reason=automatic \
             rollback",
            before.revision_id
        )]
    );
    assert_eq!(lambda.alias(FN, "live").unwrap().version, "3");
    assert_verified_through_alias(&lambda, "3");
    assert_eq!(out.from_version, Some(version("4")));
    assert_eq!(out.to_version, Some(version("3")));
    assert_eq!(out.verified_cases, 2);
    assert!(out.cause.contains("AwsUnavailable"), "{}", out.cause);
    assert!(out.cause.contains("lambda is unavailable: timeout after UpdateAlias was sent"), "{}", out.cause);
    assert!(out.cause.contains("alias live was moved back from version 4 to version 3"), "{}", out.cause);
}

#[tokio::test]
async fn with_no_previous_version_nothing_is_touched_and_the_cause_says_nothing_was_served() {
    // GIVEN a first deployment (no alias before it) whose smoke test failed
    let lambda = FakeLambda::new();
    lambda.seed_function(&spec(), &v2());
    lambda.model(&v2(), flipped_model());
    let store = FakeStore::with([spec()]);
    let failure = smoke_failure();

    // WHEN the automatic rollback runs
    let out = rollback(&lambda, &store, automatic(&plan(spec(), v2(), false, None), &failure)).await.unwrap();

    // THEN the alias is only read (not created or moved), nothing is invoked, and the cause says no
    // traffic was affected
    assert_eq!(lambda.calls(), ["GetAlias ml-inference:live"]);
    assert_eq!(lambda.alias(FN, "live"), None);
    let RolledBack { function, alias, from_version, to_version, verified_cases, cause } = out;
    assert_eq!((function, alias.as_str()), (fname(FN), "live"));
    assert_eq!((from_version, to_version, verified_cases), (None, None, 0));
    assert!(cause.contains("SmokeTestFailed") && cause.contains(&failure.to_string()), "{cause}");
    assert!(
        cause.ends_with(&format!(
            "{failure}. No version was being served before this deployment; alias live does not exist, so no \
             traffic was affected. $LATEST keeps the failed image for inspection."
        )),
        "{cause}"
    );
}

/// The plan had no previous version, but the deployment got as far as creating the alias (Shift Alias's
/// CreateAlias went through, its response was lost, the retries ran out).
#[tokio::test]
async fn an_alias_created_by_the_failed_deployment_is_not_reported_as_absent() {
    // GIVEN a first deployment that created the alias on version 1 before failing
    let lambda = FakeLambda::new();
    let one = lambda.seed_release(&spec(), &v2());
    lambda.seed_alias(&spec(), &one, &alias_description(None, &v2(), EXECUTION));
    lambda.model(&v2(), good_model());
    let store = FakeStore::with([spec()]);
    let failure =
        DeployError::AwsUnavailable { service: "lambda", message: "timeout after CreateAlias was sent".into() };

    // WHEN the automatic rollback runs
    let out = rollback(&lambda, &store, automatic(&plan(spec(), v2(), false, None), &failure)).await.unwrap();

    // THEN the cause tells the truth: the alias exists and serves version 1
    assert_eq!(lambda.count("GetAlias"), 1);
    assert!(!out.cause.contains("did not exist"), "{}", out.cause);
    assert!(out.cause.contains("version 1"), "{}", out.cause);
}

#[tokio::test]
async fn a_previous_version_that_fails_verification_is_a_rollback_failure() {
    // GIVEN the alias was moved to version 4, and version 3 no longer answers (its model store is gone)
    let (lambda, store) = moved_to_4();
    lambda.model(&v1(), crashing_model());

    // WHEN the automatic rollback runs
    let err =
        rollback(&lambda, &store, automatic(&plan(spec(), v2(), true, Some("3")), &smoke_failure())).await.unwrap_err();

    // THEN it is a RollbackFailed that says where the alias is and what failed, for a human to look at
    let DeployError::RollbackFailed { function, message } = &err else { panic!("{err:?}") };
    assert_eq!(function, FN);
    assert!(message.starts_with("alias live is on version 3, but that version fails its smoke test: "), "{message}");
    assert!(message.contains("ModelLoadError"), "{message}");
    assert_eq!(lambda.alias(FN, "live").unwrap().version, "3");
}

#[tokio::test]
async fn a_throttled_verification_propagates_and_the_retry_completes() {
    // GIVEN the alias was moved to version 4, and the first verification invocation is throttled
    let (lambda, store) = moved_to_4();
    let throttled = DeployError::Throttled { service: "lambda", message: "Rate exceeded".into() };
    lambda.fail_next("Invoke", 1, throttled.clone());
    let input = automatic(&plan(spec(), v2(), true, Some("3")), &smoke_failure());

    // WHEN the automatic rollback runs
    let err = rollback(&lambda, &store, input.clone()).await.unwrap_err();

    // THEN the throttle propagates (after the alias was moved back)
    assert_eq!(err, throttled);
    assert_eq!(lambda.alias(FN, "live").unwrap().version, "3");

    // AND the state machine's retry of the same input completes without moving the alias again
    lambda.clear_calls();
    let out = rollback(&lambda, &store, input).await.unwrap();
    assert_eq!(alias_writes(&lambda), 0);
    assert_eq!(out.to_version, Some(version("3")));
    assert_eq!(out.verified_cases, 2);
}

#[tokio::test]
async fn a_cause_that_is_not_lambda_json_is_quoted_as_is() {
    // GIVEN a state that timed out: Step Functions' own error, with a plain cause
    let (lambda, store) = live_on_3();
    let input: RollbackInput = serde_json::from_value(json!({
        "mode": "automatic",
        "plan": plan(spec(), v2(), true, Some("3")),
        "error": {"Error": "States.Timeout", "Cause": "Task timed out after 60 seconds"}
    }))
    .unwrap();

    // WHEN the automatic rollback runs
    let out = rollback(&lambda, &store, input).await.unwrap();

    // THEN the cause carries the error name and the plain cause
    assert!(out.cause.contains("States.Timeout"), "{}", out.cause);
    assert!(out.cause.contains("Task timed out after 60 seconds. Rolled back:"), "{}", out.cause);
}

// ---- manual ----

#[tokio::test]
async fn a_requested_version_gets_the_alias_and_is_verified() {
    // GIVEN the alias serves version 4
    let (lambda, store) = moved_to_4();
    let before = lambda.alias(FN, "live").unwrap();

    // WHEN an operator rolls back to version 2
    let out = rollback(&lambda, &store, manual(Some("2"), Some("v4 misclassifies large cells"))).await.unwrap();

    // THEN the alias moves to version 2 with its RevisionId, and the smoke cases pass through it there
    assert_eq!(lambda.count("UpdateAlias"), 1);
    assert!(lambda.writes()[0].starts_with(&format!("UpdateAlias ml-inference:live -> 2 rev={} ", before.revision_id)));
    assert!(lambda.writes()[0].ends_with("reason=v4 misclassifies large cells"), "{:?}", lambda.writes());
    assert_eq!(lambda.alias(FN, "live").unwrap().version, "2");
    assert_verified_through_alias(&lambda, "2");
    assert_eq!(out.from_version, Some(version("4")));
    assert_eq!(out.to_version, Some(version("2")));
    assert_eq!(out.verified_cases, 2);
    assert_eq!(
        out.cause,
        "alias live of ml-inference moved from version 4 to version 2 (v4 misclassifies large cells); 2 smoke case(s) pass"
    );
}

#[tokio::test]
async fn without_a_version_the_recorded_previous_one_is_used() {
    // GIVEN the alias serves version 4 and records previous=3
    let (lambda, store) = moved_to_4();

    // WHEN an operator rolls back without naming a version
    let out = rollback(&lambda, &store, manual(None, None)).await.unwrap();

    // THEN the alias goes to version 3
    assert_eq!(lambda.alias(FN, "live").unwrap().version, "3");
    assert_eq!(out.to_version, Some(version("3")));
    assert!(out.cause.contains("(operator request)"), "{}", out.cause);
    assert_verified_through_alias(&lambda, "3");
}

#[tokio::test]
async fn a_request_for_the_version_already_served_moves_nothing() {
    // GIVEN the alias serves version 3
    let (lambda, store) = live_on_3();

    // WHEN an operator rolls back to version 3
    let out = rollback(&lambda, &store, manual(Some("3"), None)).await.unwrap();

    // THEN the alias is not written, and it is verified
    assert_eq!(alias_writes(&lambda), 0);
    assert_eq!(out.cause, "alias live of ml-inference was already on version 3; 2 smoke case(s) pass");
    assert_verified_through_alias(&lambda, "3");
}

#[tokio::test]
async fn with_no_recorded_previous_version_the_operator_is_asked_for_to_version() {
    // GIVEN an alias created by hand, recording nothing
    let (lambda, store) = moved_to_4();
    lambda.seed_alias(&spec(), &version("4"), "created in the console");

    // WHEN an operator rolls back without naming a version
    let err = rollback(&lambda, &store, manual(None, None)).await.unwrap_err();

    // THEN it is an InvalidInput asking for toVersion, and nothing is written
    let DeployError::InvalidInput { message } = &err else { panic!("{err:?}") };
    assert!(message.contains("records no previous version") && message.contains("\"toVersion\""), "{message}");
    assert!(lambda.writes().is_empty());
}

#[tokio::test]
async fn a_function_the_deployer_does_not_manage_is_refused() {
    // GIVEN a function with no deployment target
    let (lambda, _) = moved_to_4();
    let store = FakeStore::default();

    // WHEN an operator asks to roll it back
    let err = rollback(&lambda, &store, manual(Some("3"), None)).await.unwrap_err();

    // THEN it is an InvalidInput naming it, and Lambda is not touched
    let DeployError::InvalidInput { message } = &err else { panic!("{err:?}") };
    assert!(message.contains("no deployment target named ml-inference"), "{message}");
    assert!(lambda.calls().is_empty());
}

#[tokio::test]
async fn a_target_whose_function_is_gone_is_not_found() {
    // GIVEN a target whose function was deleted
    let lambda = FakeLambda::new();
    let store = FakeStore::with([spec()]);

    // WHEN an operator asks to roll it back
    let err = rollback(&lambda, &store, manual(Some("3"), None)).await.unwrap_err();

    // THEN the function is not found
    assert_eq!(err, DeployError::NotFound { what: "function", message: "ml-inference does not exist".into() });
}

#[tokio::test]
async fn a_version_that_does_not_exist_is_not_found() {
    // GIVEN versions 1 to 4
    let (lambda, store) = moved_to_4();

    // WHEN an operator asks for version 9
    let err = rollback(&lambda, &store, manual(Some("9"), None)).await.unwrap_err();

    // THEN the version is not found, and nothing is written
    let DeployError::NotFound { what, message } = &err else { panic!("{err:?}") };
    assert_eq!(*what, "version");
    assert!(message.starts_with("version 9 of ml-inference does not exist"), "{message}");
    assert!(lambda.writes().is_empty());
    assert_eq!(lambda.alias(FN, "live").unwrap().version, "4");
}

#[tokio::test]
async fn a_failed_version_is_refused() {
    // GIVEN version 2 is in state Failed
    let (lambda, store) = moved_to_4();
    {
        let mut w = lambda.world();
        let v2_state = w.function_mut(FN).versions.get_mut(&2).unwrap();
        v2_state.state = deployer_core::ports::LambdaState::Failed;
        v2_state.state_reason = Some("The image could not be found".into());
    }

    // WHEN an operator asks for version 2
    let err = rollback(&lambda, &store, manual(Some("2"), None)).await.unwrap_err();

    // THEN it is an InvalidInput with the version's reason, and nothing is written
    let DeployError::InvalidInput { message } = &err else { panic!("{err:?}") };
    assert!(
        message.contains("version 2 of ml-inference is in state Failed (The image could not be found)"),
        "{message}"
    );
    assert!(lambda.writes().is_empty());
}

#[tokio::test]
async fn a_function_without_alias_is_refused() {
    // GIVEN a function that was never deployed through an alias
    let lambda = FakeLambda::new();
    lambda.seed_release(&spec(), &v1());
    let store = FakeStore::with([spec()]);

    // WHEN an operator asks to roll it back
    let err = rollback(&lambda, &store, manual(Some("1"), None)).await.unwrap_err();

    // THEN it is an InvalidInput saying there is no alias, and nothing is created
    let DeployError::InvalidInput { message } = &err else { panic!("{err:?}") };
    assert!(message.contains("ml-inference has no alias live"), "{message}");
    assert!(lambda.writes().is_empty());
}

#[tokio::test]
async fn a_requested_version_that_fails_verification_is_a_rollback_failure() {
    // GIVEN version 2 no longer answers
    let (lambda, store) = moved_to_4();
    lambda.model(&digest('c'), crashing_model());

    // WHEN an operator rolls back to it
    let err = rollback(&lambda, &store, manual(Some("2"), None)).await.unwrap_err();

    // THEN it is a RollbackFailed naming the version and the failure
    let DeployError::RollbackFailed { message, .. } = &err else { panic!("{err:?}") };
    assert!(message.starts_with("alias live is on version 2, but that version fails its smoke test"), "{message}");
}
