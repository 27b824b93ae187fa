//! Rollback: put the alias where it must be after a failure (automatic) or where an operator asks (manual),
//! then prove it with the smoke cases through the alias.

use deployer_core::decisions::{alias_description, lock_ttl_ms};
use deployer_core::model::{Command, DeploymentRecord, Outcome};
use deployer_core::plan::{Plan, RollbackInput, RollbackRequest, RolledBack, StepFailure};
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

/// The execution deployctl starts for an operator's rollback.
const ROLLBACK_EXECUTION: &str = "rollback-ml-inference-1795780799000";

fn manual(to_version: Option<&str>, reason: Option<&str>) -> RollbackInput {
    RollbackInput::Manual {
        request: RollbackRequest {
            action: Some("rollback".into()),
            function: fname(FN),
            to_version: to_version.map(version),
            reason: reason.map(str::to_string),
        },
        execution: execution(ROLLBACK_EXECUTION),
    }
}

/// The registry still holding every image the fixtures' versions run: a (1), c (2), v1 (3), v2 (4).
fn images() -> FakeRegistry {
    let r = FakeRegistry::default();
    for d in [digest('a'), digest('c'), v1(), v2()] {
        r.push(REPO, &d, &format!("sha-{}", &d.hex()[..7]), SINGLE_ARCH);
    }
    r
}

/// Rollback at [`NOW_MS`] with every image in the registry and an empty ledger.
async fn run(lambda: &FakeLambda, store: &FakeStore, input: RollbackInput) -> Result<RolledBack, DeployError> {
    rollback(lambda, store, &images(), &FakeLedger::new(), input, NOW_MS).await
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
    let out = run(&lambda, &store, automatic(&plan(spec(), v2(), true, Some("3")), &failure)).await.unwrap();

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
    let out = run(&lambda, &store, automatic(&plan(spec(), v2(), true, Some("3")), &failure)).await.unwrap();

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
    let out = run(&lambda, &store, automatic(&plan(spec(), v2(), false, None), &failure)).await.unwrap();

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
    let out = run(&lambda, &store, automatic(&plan(spec(), v2(), false, None), &failure)).await.unwrap();

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
        run(&lambda, &store, automatic(&plan(spec(), v2(), true, Some("3")), &smoke_failure())).await.unwrap_err();

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
    let err = run(&lambda, &store, input.clone()).await.unwrap_err();

    // THEN the throttle propagates (after the alias was moved back)
    assert_eq!(err, throttled);
    assert_eq!(lambda.alias(FN, "live").unwrap().version, "3");

    // AND the state machine's retry of the same input completes without moving the alias again
    lambda.clear_calls();
    let out = run(&lambda, &store, input).await.unwrap();
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
    let out = run(&lambda, &store, input).await.unwrap();

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
    let out = run(&lambda, &store, manual(Some("2"), Some("v4 misclassifies large cells"))).await.unwrap();

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
    let out = run(&lambda, &store, manual(None, None)).await.unwrap();

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
    let out = run(&lambda, &store, manual(Some("3"), None)).await.unwrap();

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
    let err = run(&lambda, &store, manual(None, None)).await.unwrap_err();

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
    let err = run(&lambda, &store, manual(Some("3"), None)).await.unwrap_err();

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
    let err = run(&lambda, &store, manual(Some("3"), None)).await.unwrap_err();

    // THEN the function is not found
    assert_eq!(err, DeployError::NotFound { what: "function", message: "ml-inference does not exist".into() });
}

#[tokio::test]
async fn a_version_that_does_not_exist_is_not_found() {
    // GIVEN versions 1 to 4
    let (lambda, store) = moved_to_4();

    // WHEN an operator asks for version 9
    let err = run(&lambda, &store, manual(Some("9"), None)).await.unwrap_err();

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
        v2_state.state = deployer_core::model::LambdaState::Failed;
        v2_state.state_reason = Some("The image could not be found".into());
    }

    // WHEN an operator asks for version 2
    let err = run(&lambda, &store, manual(Some("2"), None)).await.unwrap_err();

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
    let err = run(&lambda, &store, manual(Some("1"), None)).await.unwrap_err();

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
    let err = run(&lambda, &store, manual(Some("2"), None)).await.unwrap_err();

    // THEN it is a RollbackFailed naming the version and the failure
    let DeployError::RollbackFailed { message, .. } = &err else { panic!("{err:?}") };
    assert!(message.starts_with("alias live is on version 2, but that version fails its smoke test"), "{message}");
}

// ---- manual, with the lock and the records ----

/// The records of the fixtures' history, as Finish wrote them: image a went live as version 1, c over it as
/// 2, a deployment of v1 (version 3) failed its smoke test and was rolled back to 2, then v2 went live as 4
/// over 2. (Version 3 was published, and the fixture's alias description says previous=3.)
fn recorded_history() -> FakeLedger {
    FakeLedger::with_records([
        record("deploy-ml-inference-aaaaaaaaaaaa", Outcome::Deployed, &digest('a'), 10, None, Some("1"), 100),
        record("deploy-ml-inference-cccccccccccc", Outcome::Deployed, &digest('c'), 20, Some("1"), Some("2"), 200),
        record("deploy-ml-inference-111111111111", Outcome::RolledBack, &v1(), 30, Some("3"), Some("2"), 300),
        record(EXECUTION, Outcome::Deployed, &v2(), 40, Some("2"), Some("4"), 400),
    ])
}

#[tokio::test]
async fn a_manual_rollback_takes_the_lock_for_its_execution() {
    // GIVEN the alias serves version 4, no records, and the lock is free
    let (lambda, store) = moved_to_4();
    let ledger = FakeLedger::new();

    // WHEN an operator rolls back to version 2
    let out = rollback(&lambda, &store, &images(), &ledger, manual(Some("2"), None), NOW_MS).await.unwrap();

    // THEN the rollback's execution holds the lock until now + the TTL (Finish releases it), and it was taken
    // before the records were read
    assert_eq!(out.to_version, Some(version("2")));
    assert_eq!(ledger.lock(FN), Some(Lock::new(ROLLBACK_EXECUTION, NOW_MS + lock_ttl_ms(120))));
    assert_eq!(ledger.ops(), ["Acquire", "History"]);
}

#[tokio::test]
async fn a_manual_rollback_while_a_deployment_runs_tells_it_to_roll_back_and_moves_nothing_itself() {
    // GIVEN the alias serves version 4, and a deployment holds the lock for another minute
    let (lambda, store) = moved_to_4();
    let ledger = FakeLedger::new();
    let deploying = "deploy-ml-inference-333333333333";
    ledger.seed_lock(FN, deploying, NOW_MS + 60_000);

    // WHEN an operator rolls back (no version named)
    let out = rollback(&lambda, &store, &images(), &ledger, manual(None, Some("v5 is slow")), NOW_MS).await.unwrap();

    // THEN the deployment is told to roll back (once: this rollback moves nothing), with the operator's reason
    assert_eq!((out.from_version, out.to_version), (None, None));
    assert!(out.cause.contains(deploying) && out.cause.contains("moved nothing itself"), "{}", out.cause);
    assert_eq!(
        ledger.world().commands.get(&(FN.to_string(), deploying.to_string())),
        Some(&(Command::Abort, "v5 is slow".to_string()))
    );
    // AND the alias is neither written nor invoked, and the deployment keeps its lock
    assert_eq!(alias_writes(&lambda), 0, "{:?}", lambda.calls());
    assert_eq!(lambda.count("Invoke"), 0);
    assert_eq!(lambda.alias(FN, "live").unwrap().version, "4");
    assert_eq!(ledger.lock(FN).unwrap().owner, deploying);

    // WHEN an operator names a version meanwhile, THEN it is refused (it would race the deployment's own
    // rollback), saying what to do, and nothing more is sent
    let ledger = FakeLedger::new();
    ledger.seed_lock(FN, deploying, NOW_MS + 60_000);
    let err = rollback(&lambda, &store, &images(), &ledger, manual(Some("2"), None), NOW_MS).await.unwrap_err();
    assert!(err.to_string().contains("Roll back without a version"), "{err}");
    assert!(ledger.world().commands.is_empty());
    assert_eq!(ledger.ops(), ["Acquire"]);
}

#[tokio::test]
async fn an_automatic_rollback_by_an_execution_that_lost_its_lock_moves_nothing() {
    // GIVEN the alias is weighted by a deployment that now holds the lock; an execution that ended (and was
    // redriven) rolls back with its old plan
    let (lambda, store) = moved_to_4();
    let ledger = FakeLedger::new();
    ledger.seed_lock(FN, "deploy-ml-inference-444444444444_2", NOW_MS + 60_000);
    let input = RollbackInput::Automatic {
        plan: Box::new(plan(spec(), v2(), true, Some("2"))),
        error: StepFailure { error: "GateFailed".into(), cause: "{}".into() },
        execution: Some(EXECUTION.into()),
    };

    // WHEN it rolls back
    let out = rollback(&lambda, &store, &images(), &ledger, input, NOW_MS).await.unwrap();

    // THEN it leaves the alias to the lock's holder, and says so
    assert_eq!(alias_writes(&lambda), 0, "{:?}", lambda.calls());
    assert_eq!(out.to_version, None);
    assert!(
        out.cause.contains("Not rolled back") && out.cause.contains("deploy-ml-inference-444444444444_2"),
        "{}",
        out.cause
    );
}

#[tokio::test]
async fn without_a_version_the_records_previous_version_wins_over_the_alias_description() {
    // GIVEN the alias serves version 4 and its description says previous=3, but the records say version 4
    // was deployed over version 2 (version 3's deployment was rolled back)
    let (lambda, store) = moved_to_4();
    let ledger = recorded_history();

    // WHEN an operator rolls back without naming a version
    let out = rollback(&lambda, &store, &images(), &ledger, manual(None, None), NOW_MS).await.unwrap();

    // THEN the alias goes to version 2, and is verified there
    assert_eq!(out.to_version, Some(version("2")));
    assert_eq!(out.from_version, Some(version("4")));
    assert_eq!(lambda.alias(FN, "live").unwrap().version, "2");
    assert_verified_through_alias(&lambda, "2");
}

#[tokio::test]
async fn a_version_not_recorded_good_is_refused_listing_the_good_ones() {
    // GIVEN the records: versions 1, 2 and 4 served; version 3 failed its smoke test and was rolled back
    let (lambda, store) = moved_to_4();
    let ledger = recorded_history();

    // WHEN an operator asks for version 3
    let err = rollback(&lambda, &store, &images(), &ledger, manual(Some("3"), None), NOW_MS).await.unwrap_err();

    // THEN it is an InvalidInput naming version 3 and listing the good versions, and the alias is not written
    let DeployError::InvalidInput { message } = &err else { panic!("{err:?}") };
    assert!(message.contains("version 3 of ml-inference never served successfully"), "{message}");
    assert!(message.contains("recorded good versions: 1, 2, 4"), "{message}");
    assert!(lambda.writes().is_empty(), "{:?}", lambda.writes());
    assert_eq!(lambda.count("Invoke"), 0);
}

#[tokio::test]
async fn with_no_records_at_all_any_existing_version_is_allowed() {
    // GIVEN the alias serves version 4, and the ledger has no record of this function
    let (lambda, store) = moved_to_4();
    let ledger = FakeLedger::new();
    ledger.seed_record(DeploymentRecord {
        function: fname("another-function"),
        ..record("deploy-another-function-1", Outcome::Deployed, &v2(), 1, None, Some("7"), 1)
    });

    // WHEN an operator asks for version 3 (which the records of another function do not make good or bad)
    let out = rollback(&lambda, &store, &images(), &ledger, manual(Some("3"), None), NOW_MS).await.unwrap();

    // THEN the alias goes to version 3 and is verified there
    assert_eq!(out.to_version, Some(version("3")));
    assert_eq!(lambda.alias(FN, "live").unwrap().version, "3");
    assert_verified_through_alias(&lambda, "3");
}

#[tokio::test]
async fn a_version_whose_image_is_gone_from_the_registry_is_refused() {
    // GIVEN version 2 runs image c, which a lifecycle policy deleted from ECR
    let (lambda, store) = moved_to_4();
    let registry = images();
    registry.delete(REPO, &digest('c'));
    let ledger = recorded_history();

    // WHEN an operator asks for version 2 (recorded good)
    let err = rollback(&lambda, &store, &registry, &ledger, manual(Some("2"), None), NOW_MS).await.unwrap_err();

    // THEN it is an InvalidInput naming the version, its digest and the repository, and nothing is written
    let DeployError::InvalidInput { message } = &err else { panic!("{err:?}") };
    assert!(message.contains(&format!("version 2 of ml-inference ({})", digest('c'))), "{message}");
    assert!(message.contains("no longer in repository ml-inference"), "{message}");
    assert!(lambda.writes().is_empty(), "{:?}", lambda.writes());
    assert_eq!(lambda.alias(FN, "live").unwrap().version, "4");
}

#[tokio::test]
async fn a_version_whose_image_is_gone_is_refused_with_no_records_too() {
    // GIVEN no records, and version 3's image v1 deleted from ECR
    let (lambda, store) = moved_to_4();
    let registry = images();
    registry.delete(REPO, &v1());

    // WHEN an operator rolls back without naming a version (the alias description says previous=3)
    let err = rollback(&lambda, &store, &registry, &FakeLedger::new(), manual(None, None), NOW_MS).await.unwrap_err();

    // THEN version 3 is refused for its missing image
    let DeployError::InvalidInput { message } = &err else { panic!("{err:?}") };
    assert!(message.contains(&format!("({}) is no longer in repository", v1())), "{message}");
    assert!(lambda.writes().is_empty());
}

#[tokio::test]
async fn a_version_that_does_not_exist_is_not_found_even_when_records_exist() {
    // GIVEN versions 1 to 4, and records that do not list version 9
    let (lambda, store) = moved_to_4();
    let ledger = recorded_history();

    // WHEN an operator asks for version 9
    let err = rollback(&lambda, &store, &images(), &ledger, manual(Some("9"), None), NOW_MS).await.unwrap_err();

    // THEN the version is not found (not "never served"), and nothing is written
    let DeployError::NotFound { what, message } = &err else { panic!("{err:?}") };
    assert_eq!(*what, "version");
    assert!(message.starts_with("version 9 of ml-inference does not exist"), "{message}");
    assert!(lambda.writes().is_empty());
}

/// The function was deployed by hand up to version 3; the deployer's first deployment put version 4 over it.
/// The only record says so: 4 replaced 3. The alias served 3 before, so the records' own answer to "roll back"
/// is 3; refusing it as "never served successfully" leaves the operator no way back but naming a version that
/// is then refused too.
#[tokio::test]
async fn the_records_previous_version_is_not_refused_as_never_served() {
    // GIVEN the alias serves version 4, and the only record is the deployer's first deployment, 3 -> 4
    let (lambda, store) = moved_to_4();
    let ledger = FakeLedger::with_records([record(EXECUTION, Outcome::Deployed, &v2(), 40, Some("3"), Some("4"), 400)]);

    // WHEN an operator rolls back without naming a version
    let out = rollback(&lambda, &store, &images(), &ledger, manual(None, None), NOW_MS).await;

    // THEN the alias goes back to version 3, the version the records say it served before
    let out = out.unwrap();
    assert_eq!(out.to_version, Some(version("3")));
    assert_eq!(lambda.alias(FN, "live").unwrap().version, "3");
}

/// Records exist, but none of a deployment that served: two pushes were rejected (a bad tag, and one that gave
/// up waiting for the lock). Nothing about the function changed; the operator's request must be judged as with
/// no records at all, not against an empty list of good versions that no version can ever be in.
#[tokio::test]
async fn records_of_rejections_only_do_not_make_every_version_unreachable() {
    // GIVEN the alias serves version 4, and the function's only records are two rejected executions
    let (lambda, store) = moved_to_4();
    let rejected = |name: &str, at: i64| DeploymentRecord {
        version_before: None,
        version_after: None,
        error: Some("InvalidInput".into()),
        ..record(name, Outcome::Rejected, &v2(), 40, None, None, at)
    };
    let ledger =
        FakeLedger::with_records([rejected("deploy-ml-inference-eeeeeeeeeeee", 100), rejected(EXECUTION, 200)]);

    // WHEN an operator asks for version 3
    let out = rollback(&lambda, &store, &images(), &ledger, manual(Some("3"), None), NOW_MS).await;

    // THEN the alias goes to version 3, as it would with no records
    let out = out.unwrap();
    assert_eq!(out.to_version, Some(version("3")));
    assert_eq!(lambda.alias(FN, "live").unwrap().version, "3");
}
