//! The queue per function, newest wins: Prepare queues a push that finds the function busy, Finish and the
//! status-change handler hand the lock to the deployment of the image waiting, and the reconcile retries
//! an image whose earlier attempt was only queued or turned away.

use deployer_core::decisions::{attempt_name, attempt_of, execution_name, next_attempt};
use deployer_core::ids::ImageDigest;
use deployer_core::model::{DeploymentRecord, Outcome, PendingImage};
use deployer_core::plan::{FinishInput, FinishRequest, Plan, PrepareInput, Queued, QueuedStart};
use deployer_core::steps::{
    execution_ended, finish, let_go, prepare, queue_behind, reconcile, LetGo, QueueResult, HANDOVER_TTL_MS,
};
use serde_json::{json, Value};

use crate::fakes::*;

/// The running deployment the pushes find.
const RUNNING: &str = "deploy-ml-inference-111111111111";

fn request(d: &ImageDigest, tag: &str) -> Value {
    json!({"action": "deploy", "target": FN, "repository": REPO, "imageDigest": d.as_str(), "imageTag": tag})
}

/// ECR holds v1 (live), then v2, 3 and 4, each pushed a minute after the last; 5 in the same second as 4.
fn registry() -> FakeRegistry {
    let r = FakeRegistry::default();
    r.push(REPO, &v1(), "sha-1111111", SINGLE_ARCH);
    r.push(REPO, &v2(), "sha-2222222", SINGLE_ARCH);
    r.push(REPO, &digest('3'), "sha-3333333", SINGLE_ARCH);
    r.push(REPO, &digest('4'), "sha-4444444", SINGLE_ARCH);
    r.push_at(REPO, &digest('5'), "sha-5555555", SINGLE_ARCH, Some(FIRST_PUSH_MS + 3 * 60_000));
    r
}

fn pushed_ms(n: i64) -> i64 {
    FIRST_PUSH_MS + (n - 1) * 60_000
}

/// The image `d` (tag `tag`, pushed `n`th) waiting, queued by `by`.
fn pending(d: ImageDigest, tag: &str, n: i64, by: &str) -> PendingImage {
    PendingImage {
        repository: deployer_core::ids::RepositoryName::parse(REPO).unwrap(),
        image_digest: d,
        image_tag: tag.into(),
        pushed_at_ms: Some(pushed_ms(n)),
        queued_by: by.into(),
        queued_at_ms: NOW_MS - 1_000,
    }
}

/// A ledger where [`RUNNING`] deploys v1 (recorded live before it) and holds the lock for 10 minutes.
fn busy() -> FakeLedger {
    let ledger = FakeLedger::new();
    ledger.seed_lock(FN, RUNNING, NOW_MS + 600_000);
    ledger
}

async fn prepare_in(ledger: &FakeLedger, name: &str, d: &ImageDigest, tag: &str) -> Plan {
    let lambda = FakeLambda::new();
    let input = PrepareInput { request: request(d, tag), execution: execution(name) };
    let plan =
        prepare(&FakeStore::with([spec()]), &policy(), &registry(), &lambda, ledger, input, NOW_MS).await.unwrap();
    if plan.queued.is_some() {
        assert!(lambda.calls().is_empty(), "a queued push reads nothing of the function: {:?}", lambda.calls());
    }
    plan
}

#[tokio::test]
async fn a_push_that_finds_the_function_busy_is_queued_behind_the_running_deployment() {
    // GIVEN RUNNING holds the lock
    let ledger = busy();

    // WHEN a push of v2 is prepared
    let plan = prepare_in(&ledger, &execution_name(&fname(FN), &v2()), &v2(), "sha-2222222").await;

    // THEN it is queued behind RUNNING, which keeps the lock, and v2 waits on the lock
    let q = plan.queued.expect("queued");
    assert_eq!((q.behind.as_str(), q.replaced), (RUNNING, None));
    assert!(q.why.contains(RUNNING) && q.why.contains("deploys when it ends"), "{}", q.why);
    let lock = ledger.lock(FN).unwrap();
    assert_eq!(lock.owner, RUNNING);
    assert_eq!(
        lock.pending,
        Some(PendingImage {
            queued_at_ms: NOW_MS,
            ..pending(v2(), "sha-2222222", 2, "deploy-ml-inference-222222222222")
        })
    );
}

#[tokio::test]
async fn a_newer_push_replaces_the_one_waiting_and_an_older_one_does_not() {
    let ledger = busy();
    prepare_in(&ledger, "deploy-ml-inference-333333333333", &digest('3'), "sha-3333333").await;

    // WHEN v4 (pushed later) arrives, THEN it replaces 3, naming it
    let plan = prepare_in(&ledger, "deploy-ml-inference-444444444444", &digest('4'), "sha-4444444").await;
    let q = plan.queued.expect("queued");
    assert_eq!(q.replaced.as_ref().map(|r| r.queued_by.as_str()), Some("deploy-ml-inference-333333333333"));
    assert_eq!(ledger.lock(FN).unwrap().pending.unwrap().image_digest, digest('4'));

    // WHEN v2 (pushed before 4; its event came late) arrives, THEN it is superseded by 4, not queued
    let plan = prepare_in(&ledger, "deploy-ml-inference-222222222222", &v2(), "sha-2222222").await;
    assert_eq!((plan.queued.clone(), plan.superseded_by.clone()), (None, Some(digest('4'))));
    assert!(plan.superseded_why.as_deref().unwrap().contains("pushed 120000 ms later"), "{plan:?}");
    assert_eq!(ledger.lock(FN).unwrap().pending.unwrap().image_digest, digest('4'));

    // AND the same image queued again (a reconcile's attempt) keeps the one entry
    let plan = prepare_in(&ledger, "deploy-ml-inference-444444444444_2", &digest('4'), "sha-4444444").await;
    assert!(plan.queued.unwrap().why.contains("already queued"));
    assert_eq!(ledger.lock(FN).unwrap().pending.unwrap().queued_by, "deploy-ml-inference-444444444444");
}

#[tokio::test]
async fn two_pushes_in_the_same_second_queue_the_lower_digest_whichever_comes_first() {
    for first_five in [true, false] {
        // GIVEN 4 and 5 were pushed in the same second (ECR's push times are whole seconds)
        let ledger = busy();
        let (a, b) = if first_five { ('5', '4') } else { ('4', '5') };
        for c in [a, b] {
            let name = format!("deploy-ml-inference-{}", c.to_string().repeat(12));
            prepare_in(&ledger, &name, &digest(c), &format!("sha-{}", c.to_string().repeat(7))).await;
        }
        // THEN 4 (the lower digest) waits, in either order of arrival
        assert_eq!(ledger.lock(FN).unwrap().pending.unwrap().image_digest, digest('4'), "5 first: {first_five}");
    }
}

#[tokio::test]
async fn an_image_older_than_the_live_one_is_not_queued() {
    // GIVEN v2 is live (recorded), and RUNNING deploys something else
    let ledger = busy();
    ledger.seed_record(DeploymentRecord {
        image_pushed_at_ms: Some(pushed_ms(2)),
        ..record(
            "deploy-ml-inference-222222222222",
            Outcome::Deployed,
            &v2(),
            pushed_ms(2),
            Some("1"),
            Some("2"),
            NOW_MS - 5_000,
        )
    });

    // WHEN v1's late event arrives
    let plan = prepare_in(&ledger, "deploy-ml-inference-111111111111_2", &v1(), "sha-1111111").await;

    // THEN it is superseded by the live v2 and nothing waits
    assert_eq!((plan.queued, plan.superseded_by), (None, Some(v2())));
    assert_eq!(ledger.lock(FN).unwrap().pending, None);
}

#[tokio::test]
async fn a_push_is_never_queued_behind_a_lock_its_holder_no_longer_holds() {
    // GIVEN the lock changed hands after the push saw RUNNING hold it (RUNNING let go, another took it)
    let ledger = FakeLedger::new();
    ledger.seed_lock(FN, "deploy-ml-inference-999999999999", NOW_MS + 600_000);
    let p = pending(v2(), "sha-2222222", 2, EXECUTION);

    // WHEN the push queues itself behind RUNNING, THEN it is told the lock moved, and nothing is written
    let out = queue_behind(&ledger, &fname(FN), RUNNING, &p, NOW_MS).await.unwrap();
    assert_eq!(out, QueueResult::LockMoved);
    // AND behind an expired lock likewise (its holder is gone: the push takes the lock instead)
    ledger.seed_lock(FN, RUNNING, NOW_MS - 1);
    assert_eq!(queue_behind(&ledger, &fname(FN), RUNNING, &p, NOW_MS).await.unwrap(), QueueResult::LockMoved);
    assert!(!ledger.ops().iter().any(|o| o == "PutPending"), "{:?}", ledger.calls());
    assert_eq!(ledger.lock(FN).unwrap().pending, None);
}

/// What Prepare hands Finish for a push of `d` queued behind RUNNING (replacing `replaced`).
fn queued_plan(d: ImageDigest, n: i64, replaced: Option<PendingImage>) -> Plan {
    Plan {
        image_pushed_at_ms: Some(pushed_ms(n)),
        queued: Some(Queued { behind: RUNNING.into(), replaced, why: format!("queued behind {RUNNING}") }),
        ..plan(spec(), d, false, None)
    }
}

async fn finish_as(
    ledger: &FakeLedger,
    store: &FakeStore,
    executions: &FakeExecutions,
    name: &str,
    f: FinishInput,
) -> deployer_core::steps::Finished {
    let input = request(&v2(), "sha-2222222");
    let req = FinishRequest { finish: f, execution: execution(name), input };
    finish(ledger, store, &FakeRegistry::default(), executions, req, NOW_MS).await.unwrap()
}

fn outcome(o: Outcome, plan: Option<Plan>) -> FinishInput {
    FinishInput { outcome: o, plan, deployed: None, rollback: None, error: None, drift: vec![] }
}

#[tokio::test]
async fn a_queued_execution_is_recorded_queued_and_the_one_it_replaced_superseded() {
    // GIVEN 4 was queued behind RUNNING in place of 3
    let ledger = busy();
    let three = pending(digest('3'), "sha-3333333", 3, "deploy-ml-inference-333333333333");
    ledger.seed_pending(FN, pending(digest('4'), "sha-4444444", 4, "deploy-ml-inference-444444444444"));
    let executions = FakeExecutions::default();
    let plan = queued_plan(digest('4'), 4, Some(three));

    // WHEN 4's execution finishes
    let out = finish_as(
        &ledger,
        &FakeStore::with([spec()]),
        &executions,
        "deploy-ml-inference-444444444444",
        outcome(Outcome::Queued, Some(plan)),
    )
    .await;

    // THEN it is recorded queued, 3 superseded naming 4, RUNNING keeps the lock and nothing was started
    let records = ledger.records(FN);
    let by_name = |n: &str| records.iter().find(|r| r.execution == n).unwrap().clone();
    let four = by_name("deploy-ml-inference-444444444444");
    assert_eq!(
        (four.outcome, four.cause.as_deref()),
        (Outcome::Queued, Some(format!("queued behind {RUNNING}").as_str()))
    );
    let three = by_name("deploy-ml-inference-333333333333");
    assert_eq!((three.outcome, three.image_digest.clone()), (Outcome::Superseded, Some(digest('3'))));
    let cause = three.cause.unwrap();
    assert!(cause.contains(digest('4').as_str()) && cause.contains("pushed 60000 ms later"), "{cause}");
    assert_eq!((out.released, out.lock), (false, LetGo::NotHeld));
    assert_eq!(ledger.lock(FN).unwrap().owner, RUNNING);
    assert!(executions.started().is_empty());

    // AND 3's own Finish, running late, does not record it a second time
    finish_as(
        &ledger,
        &FakeStore::with([spec()]),
        &executions,
        "deploy-ml-inference-333333333333",
        outcome(Outcome::Queued, Some(queued_plan(digest('3'), 3, None))),
    )
    .await;
    assert_eq!(ledger.records(FN).iter().filter(|r| r.execution == "deploy-ml-inference-333333333333").count(), 1);
}

#[tokio::test]
async fn the_running_deployment_hands_its_lock_to_the_image_waiting_and_starts_it() {
    // GIVEN 4 waits behind RUNNING, which rolled back
    let ledger = busy();
    ledger.seed_pending(FN, pending(digest('4'), "sha-4444444", 4, "deploy-ml-inference-444444444444"));
    let executions = FakeExecutions::default();

    // WHEN RUNNING finishes
    let out = finish_as(
        &ledger,
        &FakeStore::with([spec()]),
        &executions,
        RUNNING,
        outcome(Outcome::RolledBack, Some(plan(spec(), v1(), true, None))),
    )
    .await;

    // THEN the lock goes to 4's second attempt, which is started with 4's image, and nothing waits any more
    let next = "deploy-ml-inference-444444444444_2";
    assert_eq!(out.lock, LetGo::HandedOver { execution: next.into(), image: digest('4').to_string(), started: true });
    let lock = ledger.lock(FN).unwrap();
    assert_eq!((lock.owner.as_str(), lock.expires_at_ms, lock.pending), (next, NOW_MS + HANDOVER_TTL_MS, None));
    let started = executions.started();
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].0, next);
    let input: Value = serde_json::from_str(&started[0].1).unwrap();
    assert_eq!(input["imageDigest"], digest('4').as_str());
    assert_eq!(input["queued"], json!({"queuedBy": "deploy-ml-inference-444444444444", "after": RUNNING}));

    // AND a retry of RUNNING's Finish starts the same execution again (Step Functions starts it once)
    let executions = FakeExecutions { running: true, ..Default::default() };
    executions.started.lock().unwrap().push(started[0].clone());
    let again = let_go(&ledger, &FakeStore::with([spec()]), &executions, &fname(FN), RUNNING, NOW_MS).await.unwrap();
    assert_eq!(again, out.lock);
    assert_eq!(ledger.lock(FN).unwrap().owner, next);

    // AND the next execution's Prepare takes the handed lock as its own
    let plan = prepare_in(&ledger, next, &digest('4'), "sha-4444444").await;
    assert_eq!(plan.queued, None);
    assert_eq!(ledger.lock(FN).unwrap().handed_over, None);
}

#[tokio::test]
async fn an_image_waiting_for_a_function_that_is_no_longer_a_target_is_dropped_with_the_reason() {
    // GIVEN 4 waits behind RUNNING, and the target was deleted meanwhile
    let ledger = busy();
    ledger.seed_pending(FN, pending(digest('4'), "sha-4444444", 4, "deploy-ml-inference-444444444444"));
    let executions = FakeExecutions::default();

    // WHEN RUNNING lets go
    let out = let_go(&ledger, &FakeStore::default(), &executions, &fname(FN), RUNNING, NOW_MS).await.unwrap();

    // THEN nothing starts, the lock is free, and the reason names the image and what to do
    let LetGo::Dropped { image, reason } = out else { panic!("{out:?}") };
    assert_eq!(image, digest('4').to_string());
    assert!(reason.contains("no longer a deployment target") && reason.contains("deployctl target apply"), "{reason}");
    assert!(executions.started().is_empty());
    assert_eq!(ledger.lock(FN), None);
}

#[tokio::test]
async fn a_failed_read_of_the_targets_fails_the_hand_over_and_loses_nothing() {
    let ledger = busy();
    ledger.seed_pending(FN, pending(digest('4'), "sha-4444444", 4, "deploy-ml-inference-444444444444"));
    let err = let_go(&ledger, &UnansweringStore, &FakeExecutions::default(), &fname(FN), RUNNING, NOW_MS).await;
    assert_eq!(err.unwrap_err().name(), "Throttled");
    let lock = ledger.lock(FN).unwrap();
    assert_eq!((lock.owner.as_str(), lock.pending.is_some()), (RUNNING, true));
}

#[tokio::test]
async fn an_execution_stopped_from_the_console_hands_its_lock_to_the_image_waiting() {
    // GIVEN 4 waits behind RUNNING, which an operator stopped
    let ledger = busy();
    ledger.seed_pending(FN, pending(digest('4'), "sha-4444444", 4, "deploy-ml-inference-444444444444"));
    let executions = FakeExecutions::default();
    let input = request(&v1(), "sha-1111111");
    let event = json!({
        "source": "aws.states", "detail-type": "Step Functions Execution Status Change",
        "detail": {"name": RUNNING, "status": "ABORTED", "input": input.to_string(),
                   "startDate": NOW_MS - 60_000, "stopDate": NOW_MS}
    });

    // WHEN the status-change event arrives
    let ended = execution_ended(&ledger, &FakeStore::with([spec()]), &FakeLambda::new(), &executions, &event, NOW_MS)
        .await
        .unwrap();

    // THEN RUNNING is recorded, and 4's deployment starts with the lock
    assert!(ended.recorded && ended.released, "{ended:?}");
    assert!(matches!(ended.lock, LetGo::HandedOver { started: true, .. }), "{ended:?}");
    assert_eq!(executions.started()[0].0, "deploy-ml-inference-444444444444_2");
    assert_eq!(ledger.lock(FN).unwrap().owner, "deploy-ml-inference-444444444444_2");
}

#[test]
fn attempts_have_their_own_names_within_step_functions_limit() {
    let f = fname(FN);
    assert_eq!(attempt_name(&f, &v2(), 1), execution_name(&f, &v2()));
    assert_eq!(attempt_name(&f, &v2(), 3), "deploy-ml-inference-222222222222_3");
    assert_eq!((attempt_of("deploy-ml-inference-222222222222_3"), attempt_of(EXECUTION)), (3, 1));
    assert_eq!(next_attempt(EXECUTION, &f, &v2()), "deploy-ml-inference-222222222222_2");
    assert_eq!(next_attempt("manual-ml-inference-1795780800000", &f, &v2()), "manual-ml-inference-1795780800000_2");
    assert_eq!(next_attempt("manual-ml-inference-1795780800000_2", &f, &v2()), "manual-ml-inference-1795780800000_3");
    // An underscore in the function's name is not an attempt number.
    assert_eq!(attempt_of("deploy-ml_2-222222222222"), 1);
    let long = fname(&format!("ml-{}", "x".repeat(61)));
    for n in [1, 2, 10, 100, 1000] {
        let name = attempt_name(&long, &v2(), n);
        assert!(name.len() <= 80, "{name}");
        assert_eq!(attempt_of(&name), n);
    }
}

#[tokio::test]
async fn the_reconcile_retries_an_image_whose_attempts_were_only_queued_and_leaves_a_waiting_one_alone() {
    // GIVEN the alias serves v1, and v2 (the newest allowed image) was queued once and its wait ended
    // without it deploying (say the queue's hand-over failed to start it)
    let lambda = FakeLambda::new();
    let live = lambda.seed_release(&spec(), &v1());
    lambda.seed_alias(&spec(), &live, "");
    let registry = FakeRegistry::default();
    registry.push_at(REPO, &v1(), "sha-1111111", SINGLE_ARCH, Some(1_000));
    registry.push_at(REPO, &v2(), "sha-2222222", SINGLE_ARCH, Some(2_000));
    let store = FakeStore::with([spec()]);
    let ledger =
        FakeLedger::with_records([record(EXECUTION, Outcome::Queued, &v2(), 2_000, None, None, NOW_MS - 1_000)]);
    let executions = FakeExecutions::default();
    executions.started.lock().unwrap().push((EXECUTION.into(), "{}".into()));
    let event = json!({"reconcile": {}});

    // WHEN the reconcile runs, THEN v2's second attempt starts under its own name
    let report = reconcile(&store, &registry, &lambda, &executions, &ledger, &policy(), &event).await.unwrap();
    assert_eq!(report.started.len(), 1, "{report:?}");
    assert_eq!(executions.started()[1].0, "deploy-ml-inference-222222222222_2");

    // WHEN v2 is waiting in the queue, THEN the reconcile leaves it there
    ledger.seed_lock(FN, RUNNING, NOW_MS + 60_000);
    ledger.seed_pending(FN, pending(v2(), "sha-2222222", 2, "deploy-ml-inference-222222222222_2"));
    let report = reconcile(&store, &registry, &lambda, &executions, &ledger, &policy(), &event).await.unwrap();
    assert!(report.started.is_empty() && report.ignored[0].reason.contains("queued behind"), "{report:?}");

    // WHEN v2 really was deployed and rolled back, THEN it is not retried
    let ledger = FakeLedger::with_records([
        record(EXECUTION, Outcome::Queued, &v2(), 2_000, None, None, NOW_MS - 5_000),
        record(
            "deploy-ml-inference-222222222222_2",
            Outcome::RolledBack,
            &v2(),
            2_000,
            Some("1"),
            Some("1"),
            NOW_MS - 1_000,
        ),
    ]);
    let report = reconcile(&store, &registry, &lambda, &executions, &ledger, &policy(), &event).await.unwrap();
    assert!(report.started.is_empty(), "{report:?}");
    assert!(report.ignored[0].reason.contains("ended rolled-back, so it is not retried"), "{report:?}");
}

#[test]
fn a_queued_start_says_who_queued_it_and_behind_whom() {
    let q = QueuedStart { queued_by: "a".into(), after: "b".into() };
    assert_eq!(serde_json::to_value(&q).unwrap(), json!({"queuedBy": "a", "after": "b"}));
}

#[tokio::test]
async fn a_queued_image_deleted_while_it_waited_is_refused_with_the_reason_and_nothing_is_written() {
    // GIVEN 4's deployment starts from the queue (it was handed the lock), but 4 was deleted from ECR meanwhile
    let ledger = FakeLedger::new();
    let next = "deploy-ml-inference-444444444444_2";
    ledger.seed_lock(FN, next, NOW_MS + HANDOVER_TTL_MS);
    let registry = registry();
    registry.delete(REPO, &digest('4'));
    let mut req = request(&digest('4'), "sha-4444444");
    req["queued"] = json!({"queuedBy": "deploy-ml-inference-444444444444", "after": RUNNING});
    let lambda = FakeLambda::new();
    let input = PrepareInput { request: req, execution: execution(next) };

    // WHEN its Prepare runs
    let err =
        prepare(&FakeStore::with([spec()]), &policy(), &registry, &lambda, &ledger, input, NOW_MS).await.unwrap_err();

    // THEN it is refused naming the image, the queue it waited in and who queued it; nothing else is touched
    let message = err.to_string();
    assert_eq!(err.name(), "InvalidInput");
    assert!(
        message.contains("deleted while it waited") && message.contains("deploy-ml-inference-444444444444,"),
        "{message}"
    );
    assert!(ledger.calls().is_empty() && lambda.calls().is_empty());
    // AND its Finish (which records the refusal) lets go of the lock it was handed
    let out = let_go(&ledger, &FakeStore::with([spec()]), &FakeExecutions::default(), &fname(FN), next, NOW_MS)
        .await
        .unwrap();
    assert_eq!((out, ledger.lock(FN)), (LetGo::Released, None));
}
