//! Finish: every path of the state machine ends here; it records the execution and releases the function's
//! lock if this execution holds it.

use deployer_core::ids::AliasName;
use deployer_core::model::Drift;
use deployer_core::model::{Command, DeploymentRecord, Outcome, Routing};
use deployer_core::plan::{Deployed, FinishInput, FinishRequest, Plan, RolledBack, StepFailure};
use deployer_core::ports::{DeploymentLedger, FunctionApi};
use deployer_core::steps::{execution_ended, finish, iso_from_ms, operator_command, Ended, Finished, LetGo};
use deployer_core::DeployError;
use serde_json::{json, Value};

use crate::fakes::*;

const ROLLBACK_EXECUTION: &str = "rollback-ml-inference-1795780799000";
/// When ECR received v2.
const V2_PUSHED_MS: i64 = NOW_MS - 600_000;

async fn run(ledger: &FakeLedger, execution_name: &str, input: Value, f: FinishInput) -> Result<Finished, DeployError> {
    let registry = FakeRegistry::default();
    registry.push(REPO, &v2(), "sha-2222222", SINGLE_ARCH);
    let store = FakeStore::with([spec()]);
    let executions = FakeExecutions::default();
    let req = FinishRequest { finish: f, execution: execution(execution_name), input };
    finish(ledger, &store, &registry, &executions, req, NOW_MS).await
}

/// The trigger's input for v2.
fn deploy_input() -> Value {
    json!({"action": "deploy", "target": FN, "repository": REPO, "imageDigest": v2().as_str(), "imageTag": "sha-2222222"})
}

/// deployctl's input for a rollback to version 2.
fn rollback_input() -> Value {
    json!({"action": "rollback", "function": FN, "toVersion": "2", "reason": "v4 misclassifies large cells"})
}

/// Prepare's plan for v2 over version 3.
fn the_plan() -> Plan {
    Plan { image_pushed_at_ms: Some(V2_PUSHED_MS), ..plan(spec(), v2(), true, Some("3")) }
}

fn ended(outcome: Outcome) -> FinishInput {
    FinishInput { outcome, plan: None, deployed: None, rollback: None, error: None, drift: vec![] }
}

/// A caught error, as Step Functions records it from the step's Lambda error.
fn caught(e: &DeployError) -> StepFailure {
    StepFailure { error: e.name().to_string(), cause: lambda_error_cause(e) }
}

fn smoke_failure() -> DeployError {
    DeployError::SmokeTestFailed { function: FN.into(), report: "1 problem(s): $.classes[0] is 0, expected 1".into() }
}

/// The record of `execution` with nothing but its identity: each test fills in the rest.
fn bare_record(execution_name: &str, trigger: &str, outcome: Outcome) -> DeploymentRecord {
    DeploymentRecord {
        function: fname(FN),
        execution: execution_name.to_string(),
        started_at: execution(execution_name).start_time,
        finished_at_ms: NOW_MS,
        trigger: trigger.to_string(),
        outcome,
        image_digest: None,
        image_tag: None,
        image_pushed_at_ms: None,
        version_before: None,
        version_after: None,
        error: None,
        cause: None,
        drift: vec![],
    }
}

/// The record of a deployment of v2 (tag sha-2222222, pushed at V2_PUSHED_MS).
fn v2_record(execution_name: &str, trigger: &str, outcome: Outcome) -> DeploymentRecord {
    DeploymentRecord {
        image_digest: Some(v2()),
        image_tag: Some("sha-2222222".into()),
        image_pushed_at_ms: Some(V2_PUSHED_MS),
        ..bare_record(execution_name, trigger, outcome)
    }
}

/// A ledger where `owner` holds the function's lock.
/// [`execution_ended`] for the stored target, whose function has no alias (nothing to settle): the lock
/// and the record alone.
async fn ended_without_alias(ledger: &FakeLedger, event: &Value, now_ms: i64) -> Result<Ended, DeployError> {
    execution_ended(ledger, &FakeStore::with([spec()]), &FakeLambda::new(), &FakeExecutions::default(), event, now_ms)
        .await
}

fn locked_by(owner: &str) -> FakeLedger {
    let ledger = FakeLedger::new();
    ledger.seed_lock(FN, owner, NOW_MS + 600_000);
    ledger
}

fn finished(outcome: Outcome, released: bool) -> Finished {
    // A deployment that went live protects its image from the lifecycle policy with a deployed- tag.
    let protected_by = (outcome == Outcome::Deployed).then(|| format!("deployed-{FN}-v4"));
    let lock = if released { LetGo::Released } else { LetGo::NotHeld };
    Finished { outcome, function: Some(fname(FN)), recorded: true, released, lock, protected_by }
}

#[tokio::test]
async fn a_deployment_is_recorded_with_its_image_versions_and_drift_and_releases_the_lock() {
    // GIVEN the trigger's execution deployed v2 as version 4 over version 3, reconciling memory on the way, and
    // holds the lock
    let ledger = locked_by(EXECUTION);
    let drift = vec![Drift { field: "memoryMb".into(), expected: "1024".into(), actual: "512".into() }];
    let f = FinishInput {
        plan: Some(the_plan()),
        deployed: Some(Deployed {
            function: fname(FN),
            alias: "live".into(),
            version: version("4"),
            previous_version: Some(version("3")),
            image_digest: v2(),
            image_tag: "sha-2222222".into(),
            moved: true,
            drift: drift.clone(),
        }),
        drift: drift.clone(),
        ..ended(Outcome::Deployed)
    };

    // WHEN Finish runs
    let out = run(&ledger, EXECUTION, deploy_input(), f).await.unwrap();

    // THEN the record says who, what and where: an ecr-push of v2, version 3 -> 4, with the drift; no error
    assert_eq!(
        ledger.records(FN),
        [DeploymentRecord {
            version_before: Some("3".into()),
            version_after: Some("4".into()),
            drift,
            ..v2_record(EXECUTION, "ecr-push", Outcome::Deployed)
        }]
    );
    // AND the lock is released, after the record is written
    assert_eq!(out, finished(Outcome::Deployed, true));
    assert_eq!(ledger.lock(FN), None);
    assert_eq!(ledger.ops(), ["History", "Record", "LockState", "Release"]);
}

#[tokio::test]
async fn an_image_already_live_is_recorded_on_the_version_it_stays_on() {
    // GIVEN a deployment started by hand (not by the trigger) found v2 already live on version 3
    let name = "redeploy-ml-inference-by-hand";
    let ledger = locked_by(name);
    let f = FinishInput { plan: Some(Plan { already_live: true, ..the_plan() }), ..ended(Outcome::AlreadyLive) };

    // WHEN Finish runs
    let out = run(&ledger, name, deploy_input(), f).await.unwrap();

    // THEN the record is a manual already-live on version 3 (before and after), and the lock is released
    assert_eq!(
        ledger.records(FN),
        [DeploymentRecord {
            version_before: Some("3".into()),
            version_after: Some("3".into()),
            ..v2_record(name, "manual", Outcome::AlreadyLive)
        }]
    );
    assert_eq!(out, finished(Outcome::AlreadyLive, true));
    assert_eq!(ledger.lock(FN), None);
}

#[tokio::test]
async fn a_superseded_image_is_recorded_and_nothing_moves() {
    // GIVEN Prepare found image c live, newer than v2
    let ledger = locked_by(EXECUTION);
    let f = FinishInput {
        plan: Some(Plan {
            superseded_by: Some(digest('c')),
            superseded_why: Some("v2 was pushed before c, which is live".into()),
            ..the_plan()
        }),
        ..ended(Outcome::Superseded)
    };

    // WHEN Finish runs
    let out = run(&ledger, EXECUTION, deploy_input(), f).await.unwrap();

    // THEN the record is a superseded ecr-push of v2 saying why, the alias staying on version 3, and the lock
    // is released
    assert_eq!(
        ledger.records(FN),
        [DeploymentRecord {
            version_before: Some("3".into()),
            version_after: Some("3".into()),
            cause: Some("v2 was pushed before c, which is live".into()),
            ..v2_record(EXECUTION, "ecr-push", Outcome::Superseded)
        }]
    );
    assert_eq!(out, finished(Outcome::Superseded, true));
    assert_eq!(ledger.lock(FN), None);
}

#[tokio::test]
async fn a_rejection_while_another_execution_deploys_is_recorded_and_leaves_its_lock_alone() {
    // GIVEN Prepare kept finding the lock held by another execution, and the state machine gave up
    let other = "deploy-ml-inference-333333333333";
    let ledger = locked_by(other);
    let locked = DeployError::Locked { function: FN.into(), owner: other.into(), until: "600 s from now".into() };
    let f = FinishInput { error: Some(caught(&locked)), ..ended(Outcome::Rejected) };

    // WHEN Finish runs (no plan: the function is named by the input)
    let out = run(&ledger, EXECUTION, deploy_input(), f).await.unwrap();

    // THEN the record carries the error's name and the Lambda error's errorMessage as the cause, and the
    // image that was held back
    assert_eq!(
        ledger.records(FN),
        [DeploymentRecord {
            error: Some("Locked".into()),
            cause: Some(locked.to_string()),
            image_digest: Some(v2()),
            image_tag: Some("sha-2222222".into()),
            ..bare_record(EXECUTION, "ecr-push", Outcome::Rejected)
        }]
    );
    // AND the other execution's lock is not released: it survives as it was
    assert_eq!(out, finished(Outcome::Rejected, false));
    assert_eq!(ledger.lock(FN), Some(Lock::new(other, NOW_MS + 600_000)));
}

#[tokio::test]
async fn a_rejected_request_is_recorded_with_the_error_message() {
    // GIVEN Prepare refused a tag (before taking any lock)
    let ledger = FakeLedger::new();
    let refused = DeployError::invalid("tag \"latest\" is not allowed for ml-inference");
    let f = FinishInput { error: Some(caught(&refused)), ..ended(Outcome::Rejected) };
    let mut input = deploy_input();
    input["imageTag"] = json!("latest");

    // WHEN Finish runs
    let out = run(&ledger, EXECUTION, input, f).await.unwrap();

    // THEN the record names the function from the input, the error and its message; there was no lock to release
    let [r] = &ledger.records(FN)[..] else { panic!("{:?}", ledger.records(FN)) };
    assert_eq!((r.outcome, r.error.as_deref()), (Outcome::Rejected, Some("InvalidInput")));
    assert_eq!(r.cause.as_deref(), Some("invalid input: tag \"latest\" is not allowed for ml-inference"));
    assert_eq!((r.version_before.as_ref(), r.version_after.as_ref()), (None, None));
    // AND the image the request asked for, as it asked
    assert_eq!((r.image_digest.as_ref(), r.image_tag.as_deref()), (Some(&v2()), Some("latest")));
    assert_eq!(out, finished(Outcome::Rejected, false));
}

#[tokio::test]
async fn a_rolled_back_deployment_records_the_rollbacks_cause() {
    // GIVEN the smoke test of v2 failed after the alias was moved to version 4, and the rollback put it back on 3
    let ledger = locked_by(EXECUTION);
    let failure = smoke_failure();
    let rollback_cause = format!(
        "Deployment failed (SmokeTestFailed): {failure}. Rolled back: alias live was moved back from version 4 to \
         version 3; 2 smoke case(s) pass through the alias."
    );
    let f = FinishInput {
        plan: Some(the_plan()),
        rollback: Some(RolledBack {
            function: fname(FN),
            alias: "live".into(),
            from_version: Some(version("4")),
            to_version: Some(version("3")),
            verified_cases: 2,
            cause: rollback_cause.clone(),
        }),
        error: Some(caught(&failure)),
        ..ended(Outcome::RolledBack)
    };

    // WHEN Finish runs
    let out = run(&ledger, EXECUTION, deploy_input(), f).await.unwrap();

    // THEN the record: the error's name, the rollback's cause (not the bare error), the alias from 4 back to 3
    assert_eq!(
        ledger.records(FN),
        [DeploymentRecord {
            version_before: Some("4".into()),
            version_after: Some("3".into()),
            error: Some("SmokeTestFailed".into()),
            cause: Some(rollback_cause),
            ..v2_record(EXECUTION, "ecr-push", Outcome::RolledBack)
        }]
    );
    assert_eq!(out, finished(Outcome::RolledBack, true));
    assert_eq!(ledger.lock(FN), None);
}

#[tokio::test]
async fn a_failed_rollback_records_the_rollback_error() {
    // GIVEN the rollback put the alias back on version 3, whose verification failed
    let ledger = locked_by(EXECUTION);
    let failure = DeployError::RollbackFailed {
        function: FN.into(),
        message: "alias live is on version 3, but that version fails its smoke test: ModelLoadError".into(),
    };
    let f = FinishInput { plan: Some(the_plan()), error: Some(caught(&failure)), ..ended(Outcome::RollbackFailed) };

    // WHEN Finish runs
    let out = run(&ledger, EXECUTION, deploy_input(), f).await.unwrap();

    // THEN the record carries RollbackFailed and its message, on the version the deployment started from
    assert_eq!(
        ledger.records(FN),
        [DeploymentRecord {
            version_before: Some("3".into()),
            version_after: Some("3".into()),
            error: Some("RollbackFailed".into()),
            cause: Some(failure.to_string()),
            ..v2_record(EXECUTION, "ecr-push", Outcome::RollbackFailed)
        }]
    );
    assert_eq!(out, finished(Outcome::RollbackFailed, true));
    assert_eq!(ledger.lock(FN), None);
}

#[tokio::test]
async fn a_manual_rollback_is_recorded_as_the_operators_and_releases_the_lock() {
    // GIVEN an operator's rollback moved the alias from version 4 to version 2, holding the lock
    let ledger = locked_by(ROLLBACK_EXECUTION);
    let cause = "alias live of ml-inference moved from version 4 to version 2 (v4 misclassifies large cells); 2 \
                 smoke case(s) pass";
    let f = FinishInput {
        rollback: Some(RolledBack {
            function: fname(FN),
            alias: "live".into(),
            from_version: Some(version("4")),
            to_version: Some(version("2")),
            verified_cases: 2,
            cause: cause.into(),
        }),
        ..ended(Outcome::ManualRollback)
    };

    // WHEN Finish runs
    let out = run(&ledger, ROLLBACK_EXECUTION, rollback_input(), f).await.unwrap();

    // THEN the record is the operator's, 4 -> 2, with the rollback's cause and no image (there is no plan)
    assert_eq!(
        ledger.records(FN),
        [DeploymentRecord {
            version_before: Some("4".into()),
            version_after: Some("2".into()),
            cause: Some(cause.into()),
            ..bare_record(ROLLBACK_EXECUTION, "operator", Outcome::ManualRollback)
        }]
    );
    assert_eq!(out, finished(Outcome::ManualRollback, true));
    assert_eq!(ledger.lock(FN), None);
}

#[tokio::test]
async fn a_refused_manual_rollback_is_recorded_and_releases_the_lock_it_took() {
    // GIVEN a manual rollback took the lock, then refused the version asked for
    let ledger = locked_by(ROLLBACK_EXECUTION);
    let refused = DeployError::invalid("version 3 of ml-inference never served successfully under the deployer");
    let f = FinishInput { error: Some(caught(&refused)), ..ended(Outcome::Rejected) };

    // WHEN Finish runs (the function is named only by the input's "function")
    let out = run(&ledger, ROLLBACK_EXECUTION, rollback_input(), f).await.unwrap();

    // THEN the operator's rejection is recorded, and the lock is released
    let [r] = &ledger.records(FN)[..] else { panic!("{:?}", ledger.records(FN)) };
    assert_eq!(
        (r.trigger.as_str(), r.outcome, r.error.as_deref()),
        ("operator", Outcome::Rejected, Some("InvalidInput"))
    );
    assert_eq!(out, finished(Outcome::Rejected, true));
    assert_eq!(ledger.lock(FN), None);
}

#[tokio::test]
async fn the_trigger_is_told_from_the_execution_name_and_the_action() {
    let cases = [
        ("deploy-ml-inference-222222222222", deploy_input(), "ecr-push"),
        ("redeploy-ml-inference-by-hand", deploy_input(), "manual"),
        ("rollback-ml-inference-1795780799000", rollback_input(), "operator"),
        ("deploy-ml-inference-rollback", rollback_input(), "operator"),
    ];
    for (name, input, trigger) in cases {
        // GIVEN an execution that ended without a plan or a rollback
        let ledger = FakeLedger::new();

        // WHEN Finish runs
        run(&ledger, name, input, ended(Outcome::Rejected)).await.unwrap();

        // THEN the record's trigger follows the name and the input's action
        assert_eq!(ledger.records(FN)[0].trigger, trigger, "{name}");
    }
}

#[tokio::test]
async fn an_input_that_names_no_function_records_nothing() {
    let inputs =
        [json!({"action": "deploy", "target": "not a function name!"}), json!({"hello": "world"}), json!(null)];
    for input in inputs {
        // GIVEN an execution started with an input that names no function, rejected by Prepare
        let ledger = FakeLedger::new();
        let f = FinishInput {
            error: Some(caught(&DeployError::invalid("execution input: bad"))),
            ..ended(Outcome::Rejected)
        };

        // WHEN Finish runs
        let out = run(&ledger, "hand-made-execution", input.clone(), f).await.unwrap();

        // THEN nothing is recorded or released, and the ledger is not called at all
        assert_eq!(
            out,
            Finished {
                outcome: Outcome::Rejected,
                function: None,
                recorded: false,
                released: false,
                lock: LetGo::NotHeld,
                protected_by: None
            },
            "{input}"
        );
        assert!(ledger.calls().is_empty(), "{input}: {:?}", ledger.calls());
    }
}

#[tokio::test]
async fn a_failed_record_propagates_keeps_the_lock_and_the_retry_completes() {
    // GIVEN the ledger's table throttles the first write of the record
    let ledger = locked_by(EXECUTION);
    let throttled = DeployError::Throttled { service: "dynamodb", message: "Rate exceeded".into() };
    ledger.fail_next("Record", 1, throttled.clone());
    let f = FinishInput { plan: Some(Plan { already_live: true, ..the_plan() }), ..ended(Outcome::AlreadyLive) };

    // WHEN Finish runs
    let err = run(&ledger, EXECUTION, deploy_input(), f.clone()).await.unwrap_err();

    // THEN the throttle propagates for the state machine to retry, with nothing recorded and the lock still held
    assert_eq!(err, throttled);
    assert!(ledger.records(FN).is_empty());
    assert_eq!(ledger.lock(FN).unwrap().owner, EXECUTION);
    assert_eq!(ledger.ops(), ["History", "Record"]);

    // AND the retry records the execution once and releases the lock
    let out = run(&ledger, EXECUTION, deploy_input(), f).await.unwrap();
    assert_eq!(out, finished(Outcome::AlreadyLive, true));
    assert_eq!(ledger.records(FN).len(), 1);
    assert_eq!(ledger.lock(FN), None);
}

#[tokio::test]
async fn a_failed_release_propagates() {
    // GIVEN the ledger's table is unavailable when the lock is released
    let ledger = locked_by(EXECUTION);
    let unavailable = DeployError::AwsUnavailable { service: "dynamodb", message: "connection reset".into() };
    ledger.fail_next("Release", 1, unavailable.clone());
    let f = FinishInput { plan: Some(Plan { already_live: true, ..the_plan() }), ..ended(Outcome::AlreadyLive) };

    // WHEN Finish runs
    let err = run(&ledger, EXECUTION, deploy_input(), f.clone()).await.unwrap_err();

    // THEN the error propagates, and the lock is still held
    assert_eq!(err, unavailable);
    assert_eq!(ledger.lock(FN).unwrap().owner, EXECUTION);
    assert_eq!(ledger.records(FN).len(), 1, "the record was written before the release failed");

    // AND the state machine's retry releases it without writing the record a second time
    let out = run(&ledger, EXECUTION, deploy_input(), f).await.unwrap();
    assert_eq!(out, finished(Outcome::AlreadyLive, true));
    assert_eq!(ledger.records(FN).len(), 1, "{:?}", ledger.records(FN));
    assert_eq!(ledger.lock(FN), None);
}

/// Step Functions' status-change event for `name`, as EventBridge delivers it.
fn status_change(name: &str, status: &str, input: &Value) -> Value {
    json!({
        "version": "0", "source": "aws.states", "detail-type": "Step Functions Execution Status Change",
        "detail": {
            "executionArn": format!("arn:aws:states:eu-west-1:123456789012:execution:deployer-deploy:{name}"),
            "stateMachineArn": "arn:aws:states:eu-west-1:123456789012:stateMachine:deployer-deploy",
            "name": name, "status": status, "startDate": 1_795_780_798_123_i64, "stopDate": NOW_MS,
            "input": input.to_string(), "output": null, "error": null, "cause": null
        }
    })
}

#[tokio::test]
async fn an_aborted_execution_that_never_reached_finish_is_recorded_and_its_lock_freed() {
    // GIVEN v2's deployment holds the lock and is aborted by an operator (StopExecution) mid-flight
    let ledger = locked_by(EXECUTION);

    // WHEN its status-change event arrives
    let out =
        ended_without_alias(&ledger, &status_change(EXECUTION, "ABORTED", &deploy_input()), NOW_MS + 5).await.unwrap();

    // THEN the lock is free, and the record says what happened and where to look
    assert_eq!(ledger.lock(FN), None);
    assert_eq!((out.recorded, out.released, out.function), (true, true, Some(fname(FN))));
    let records = ledger.records(FN);
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(
        (r.outcome, r.trigger.as_str(), r.image_digest.clone(), r.error.as_deref(), r.started_at.as_str()),
        (Outcome::Abandoned, "ecr-push", Some(v2()), Some("States.ABORTED"), "2026-11-27T11:59:58.123Z")
    );
    let cause = r.cause.clone().unwrap_or_default();
    assert!(
        cause.contains("ended ABORTED before it recorded itself") && cause.contains("deployctl history"),
        "{cause}"
    );
}

#[tokio::test]
async fn a_timed_out_rollback_keeps_its_error_and_frees_only_its_own_lock() {
    // GIVEN an operator's rollback timed out, and the lock is already another execution's
    let ledger = locked_by("deploy-someone-else");
    let mut event = status_change(ROLLBACK_EXECUTION, "TIMED_OUT", &rollback_input());
    event["detail"]["error"] = json!("States.Timeout");

    // WHEN its status-change event arrives
    let out = ended_without_alias(&ledger, &event, NOW_MS).await.unwrap();

    // THEN it is recorded as the operator's, and the other execution's lock is left alone
    assert_eq!((out.recorded, out.released), (true, false));
    assert_eq!(ledger.lock(FN).map(|l| l.owner), Some("deploy-someone-else".into()));
    let r = &ledger.records(FN)[0];
    assert_eq!((r.trigger.as_str(), r.error.as_deref()), ("operator", Some("States.Timeout")));
    assert!(r.cause.as_deref().unwrap_or_default().contains("(States.Timeout)"), "{r:?}");
}

#[tokio::test]
async fn a_failed_execution_that_finish_recorded_is_not_recorded_twice() {
    // GIVEN Finish recorded v2's rolled-back deployment and released its lock; the execution then FAILED
    let ledger = FakeLedger::new();
    ledger.seed_record(v2_record(EXECUTION, "ecr-push", Outcome::RolledBack));

    // WHEN its status-change event arrives
    let out = ended_without_alias(&ledger, &status_change(EXECUTION, "FAILED", &deploy_input()), NOW_MS).await.unwrap();

    // THEN nothing more is written
    assert_eq!((out.recorded, out.released), (false, false));
    assert_eq!(ledger.records(FN).len(), 1);
}

#[tokio::test]
async fn a_succeeded_or_running_execution_or_one_naming_no_function_changes_nothing() {
    let ledger = locked_by(EXECUTION);
    for (status, input) in [("SUCCEEDED", deploy_input()), ("RUNNING", deploy_input()), ("ABORTED", json!({"x": 1}))] {
        let out = ended_without_alias(&ledger, &status_change(EXECUTION, status, &input), NOW_MS).await.unwrap();
        assert_eq!((out.recorded, out.released), (false, false), "{status} {input}");
    }
    assert_eq!(ledger.lock(FN).map(|l| l.owner), Some(EXECUTION.into()));
    assert!(ledger.records(FN).is_empty());
}

#[tokio::test]
async fn a_status_change_whose_input_does_not_read_is_refused_and_frees_nothing() {
    // GIVEN v2's deployment holds the lock
    let ledger = locked_by(EXECUTION);
    let mut unreadable = status_change(EXECUTION, "ABORTED", &deploy_input());
    unreadable["detail"]["input"] = json!("{\"target\": ");
    let mut missing = status_change(EXECUTION, "ABORTED", &deploy_input());
    missing["detail"]["input"] = Value::Null;
    missing["detail"]["inputDetails"] = json!({"included": false});
    for (what, event, says) in [("not JSON", unreadable, "not JSON"), ("left out", missing, "carries no input")] {
        // WHEN its status-change event arrives with an input that cannot tell the function
        let err = ended_without_alias(&ledger, &event, NOW_MS).await.unwrap_err();

        // THEN it is refused with the reason, and the lock and the records are untouched
        assert_eq!(err.name(), "InvalidInput", "{what}: {err}");
        assert!(err.to_string().contains(says) && err.to_string().contains(EXECUTION), "{what}: {err}");
        assert_eq!(ledger.lock(FN).map(|l| l.owner), Some(EXECUTION.to_string()), "{what}");
        assert!(ledger.records(FN).is_empty(), "{what}: {:?}", ledger.records(FN));
    }
}

#[tokio::test]
async fn an_event_that_is_not_a_status_change_is_refused_and_changes_nothing() {
    let ledger = locked_by(EXECUTION);
    for event in [json!({"detail-type": "x"}), json!({"detail": {"name": EXECUTION}}), json!({"detail": "ABORTED"})] {
        let err = ended_without_alias(&ledger, &event, NOW_MS).await.unwrap_err();
        assert_eq!(err.name(), "InvalidInput", "{event}");
        assert!(err.to_string().contains("detail"), "{err}");
    }
    assert_eq!(ledger.lock(FN).map(|l| l.owner), Some(EXECUTION.into()));
}

#[test]
fn start_times_are_written_as_step_functions_gives_them() {
    assert_eq!(iso_from_ms(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(iso_from_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
    assert_eq!(iso_from_ms(1_795_780_798_123), "2026-11-27T11:59:58.123Z");
    assert_eq!(iso_from_ms(4_107_542_399_999), "2100-02-28T23:59:59.999Z");
}

#[tokio::test]
async fn an_operators_promote_or_abort_reaches_the_running_deployment() {
    let ledger = locked_by(EXECUTION);
    let sent =
        operator_command(&ledger, json!({"action": "abort", "function": FN, "reason": "wrong model"})).await.unwrap();
    assert_eq!((sent.execution.as_str(), sent.command.clone()), (EXECUTION, Command::Abort));
    assert_eq!(ledger.command(&fname(FN), EXECUTION).await.unwrap(), Some((Command::Abort, "wrong model".into())));
    let sent = operator_command(&ledger, json!({"action": "promote", "function": FN})).await.unwrap();
    assert_eq!((sent.command, sent.reason.as_str()), (Command::Promote, "promote by an operator"));
    // ... and its execution, should it fail, is not mistaken for an abandoned deployment
    let out = ended_without_alias(
        &ledger,
        &status_change("cmd-1", "FAILED", &json!({"action": "abort", "function": FN})),
        NOW_MS,
    )
    .await
    .unwrap();
    assert_eq!((out.recorded, out.released, out.function), (false, false, None));
}

#[tokio::test]
async fn a_command_with_nothing_running_or_a_bad_action_is_refused_and_changes_nothing() {
    let ledger = FakeLedger::new();
    let err = operator_command(&ledger, json!({"action": "promote", "function": FN})).await.unwrap_err();
    assert!(err.to_string().contains("no deployment of ml-inference is running"), "{err}");
    let ledger = locked_by(EXECUTION);
    for (bad, says) in [
        (json!({"action": "pause", "function": FN}), "not an operator command"),
        (json!({"action": "abort", "function": FN, "now": true}), "unknown field `now`"),
        (json!({"action": "abort", "function": "no such"}), "function"),
    ] {
        let err = operator_command(&ledger, bad.clone()).await.unwrap_err();
        assert!(err.name() == "InvalidInput" && err.to_string().contains(says), "{bad}: {err}");
    }
    assert_eq!(ledger.command(&fname(FN), EXECUTION).await.unwrap(), None);
}

/// Version 1 behind the alias, version 2 published and getting `weight` of its traffic (a canary baking).
async fn mid_shift(weight: f64) -> FakeLambda {
    let lambda = FakeLambda::new();
    let one = lambda.seed_release(&spec(), &v1());
    lambda.seed_alias(&spec(), &one, "deployer previous=none image=111111111111 execution=first");
    let two = lambda.seed_release(&spec(), &v2());
    let rev = lambda.alias(FN, "live").unwrap().revision_id;
    let routing = Routing { main: one, candidate: two, weight };
    lambda.route_alias(&fname(FN), &AliasName::parse("live").unwrap(), &routing, "canary", &rev).await.unwrap();
    lambda
}

#[tokio::test]
async fn an_execution_stopped_mid_canary_puts_all_traffic_back_on_the_version_it_replaced() {
    // GIVEN v2's canary sends 10% of the alias's traffic to version 2, and an operator stops the execution
    let (ledger, store, lambda) = (locked_by(EXECUTION), FakeStore::with([spec()]), mid_shift(0.1).await);

    // WHEN its status-change event arrives
    let event = status_change(EXECUTION, "ABORTED", &deploy_input());
    let out = execution_ended(&ledger, &store, &lambda, &FakeExecutions::default(), &event, NOW_MS).await.unwrap();

    // THEN the alias serves version 1 alone, the record says so, and the lock is free
    let alias = lambda.alias(FN, "live").unwrap();
    assert_eq!((alias.version.as_str(), alias.additional.clone()), ("1", None));
    assert!(alias.description.starts_with("deployer previous=none rolled-back-to=1 reason=execution "), "{alias:?}");
    let restored = out.restored.clone().unwrap_or_default();
    assert!(restored.contains("10% of alias live's traffic to version 2; all of it is back on version 1"), "{out:?}");
    assert_eq!((out.recorded, out.released), (true, true));
    assert_eq!(ledger.lock(FN), None);
    let cause = ledger.records(FN)[0].cause.clone().unwrap_or_default();
    assert!(cause.contains(&restored) && cause.contains("ended ABORTED"), "{cause}");
    assert_eq!(ledger.records(FN)[0].version_after.as_deref(), Some("1"));
}

#[tokio::test]
async fn a_weighted_alias_another_execution_owns_or_a_single_version_alias_is_left_alone() {
    // GIVEN a canary that is another execution's (it holds the lock now)
    let (ledger, store, lambda) = (locked_by("deploy-someone-else"), FakeStore::with([spec()]), mid_shift(0.3).await);
    let event = status_change(EXECUTION, "TIMED_OUT", &deploy_input());
    let set_up = lambda.calls.lock().unwrap().len();
    let out = execution_ended(&ledger, &store, &lambda, &FakeExecutions::default(), &event, NOW_MS).await.unwrap();
    // THEN its weights stay, and nothing asked Lambda anything
    assert_eq!(out.restored, None);
    assert_eq!(lambda.alias(FN, "live").unwrap().additional, Some(("2".to_string(), 0.3)));
    assert_eq!(lambda.calls.lock().unwrap().len(), set_up);
    assert_eq!(ledger.records(FN)[0].version_after, None, "another execution's shift: no version to vouch for");

    // GIVEN the dead execution's lock, and an alias already on one version (it died before any shift)
    let (ledger, lambda) = (locked_by(EXECUTION), FakeLambda::new());
    let one = lambda.seed_release(&spec(), &v1());
    lambda.seed_alias(&spec(), &one, "deployer previous=none image=111111111111 execution=first");
    let set_up = lambda.calls.lock().unwrap().len();
    let out = execution_ended(&ledger, &store, &lambda, &FakeExecutions::default(), &event, NOW_MS).await.unwrap();
    // THEN the alias is read, not written, and the record says where it was left
    assert_eq!((out.restored, out.released), (None, true));
    let calls = lambda.calls.lock().unwrap()[set_up..].to_vec();
    assert!(calls.len() == 1 && calls[0].starts_with("GetAlias"), "{calls:?}");
    let cause = ledger.records(FN)[0].cause.clone().unwrap_or_default();
    assert!(cause.contains("the alias was left where the last step that ran put it"), "{cause}");
    assert_eq!(ledger.records(FN)[0].version_after.as_deref(), Some("1"), "the record says which version serves");
}

#[tokio::test]
async fn a_failed_restore_keeps_the_lock_and_writes_nothing_until_the_retry_completes_it() {
    // GIVEN a canary mid-bake whose execution is stopped, and UpdateAlias fails once
    let (ledger, store, lambda) = (locked_by(EXECUTION), FakeStore::with([spec()]), mid_shift(0.1).await);
    let unavailable = DeployError::AwsUnavailable { service: "lambda", message: "Rate exceeded".into() };
    lambda.fail_next("UpdateAlias", 1, unavailable.clone());
    let event = status_change(EXECUTION, "ABORTED", &deploy_input());

    // WHEN the event is handled: the error propagates, the lock stays, nothing is recorded
    let err = execution_ended(&ledger, &store, &lambda, &FakeExecutions::default(), &event, NOW_MS).await.unwrap_err();
    assert_eq!(err, unavailable);
    assert_eq!(ledger.lock(FN).map(|l| l.owner), Some(EXECUTION.into()));
    assert!(ledger.records(FN).is_empty());
    assert_eq!(lambda.alias(FN, "live").unwrap().additional, Some(("2".to_string(), 0.1)));

    // AND EventBridge's retry finishes the job
    let out = execution_ended(&ledger, &store, &lambda, &FakeExecutions::default(), &event, NOW_MS).await.unwrap();
    assert_eq!((out.recorded, out.released, out.restored.is_some()), (true, true, true));
    assert_eq!(lambda.alias(FN, "live").unwrap().additional, None);
}

#[tokio::test]
async fn a_request_for_a_function_that_is_no_target_leaves_no_record() {
    // GIVEN executions refused before Prepare read a target, naming a function nobody registered
    let ledger = FakeLedger::new();
    let input = json!({"action": "deploy", "target": "ml-made-up", "repository": REPO,
                       "imageDigest": v2().as_str(), "imageTag": "sha-2222222"});
    let refused = FinishInput {
        error: Some(StepFailure {
            error: "InvalidInput".into(),
            cause: "no deployment target named ml-made-up".into(),
        }),
        ..ended(Outcome::Rejected)
    };

    // WHEN Finish runs for one, and a status-change event arrives for another
    let out = run(&ledger, "manual-ml-made-up-1", input.clone(), refused).await.unwrap();
    let ended = execution_ended(
        &ledger,
        &FakeStore::with([spec()]),
        &FakeLambda::new(),
        &FakeExecutions::default(),
        &status_change("manual-ml-made-up-2", "FAILED", &input),
        NOW_MS,
    )
    .await
    .unwrap();

    // THEN neither is recorded: the deployments table holds only targets' executions
    assert_eq!((out.recorded, out.released), (false, false), "{out:?}");
    assert_eq!((ended.recorded, ended.released), (false, false), "{ended:?}");
    assert!(ledger.records("ml-made-up").is_empty());
    assert!(!ledger.calls().iter().any(|c| c.starts_with("Record")), "{:?}", ledger.calls());
}

#[tokio::test]
async fn a_refused_request_is_recorded_when_the_targets_table_cannot_say_whether_it_names_a_target() {
    // GIVEN Prepare failed because the targets table was throttled, and it still is
    let ledger = FakeLedger::new();
    let refused = FinishInput {
        error: Some(StepFailure { error: "Throttled".into(), cause: "throttled by DynamoDB".into() }),
        ..ended(Outcome::Rejected)
    };
    let registry = FakeRegistry::default();
    let req = FinishRequest { finish: refused, execution: execution(EXECUTION), input: deploy_input() };

    // WHEN Finish runs, THEN the execution is recorded rather than lost (the read's failure is logged)
    let out = finish(&ledger, &UnansweringStore, &registry, &FakeExecutions::default(), req, NOW_MS).await.unwrap();
    assert!(out.recorded, "{out:?}");
    let r = &ledger.records(FN)[0];
    assert_eq!((r.outcome, r.error.as_deref()), (Outcome::Rejected, Some("Throttled")));
}
