//! Prepare: check the request against the target and the image, take the function's deployment lock, and read
//! where the function stands.

use deployer_core::plan::{Plan, PrepareInput};

use deployer_core::model::Outcome;
use deployer_core::spec::TargetSpec;
use deployer_core::steps::prepare;
use deployer_core::DeployError;
use serde_json::{json, Value};

use crate::fakes::*;

fn request(target: &str, repo: &str, d: &deployer_core::ids::ImageDigest, tag: &str) -> Value {
    json!({"action": "deploy", "target": target, "repository": repo, "imageDigest": d.as_str(), "imageTag": tag})
}

/// A registry holding the candidate v2 (single-architecture) under sha-2222222.
fn registry() -> FakeRegistry {
    let r = FakeRegistry::default();
    r.push(REPO, &v2(), "sha-2222222", SINGLE_ARCH);
    r
}

/// Prepare in [`EXECUTION`] at [`NOW_MS`], over an empty ledger.
async fn run(
    store: &FakeStore,
    registry: &FakeRegistry,
    lambda: &FakeLambda,
    input: Value,
) -> Result<Plan, DeployError> {
    run_in(store, registry, lambda, &FakeLedger::new(), EXECUTION, input, NOW_MS).await
}

async fn run_in(
    store: &FakeStore,
    registry: &FakeRegistry,
    lambda: &FakeLambda,
    ledger: &FakeLedger,
    execution_name: &str,
    request: Value,
    now_ms: i64,
) -> Result<Plan, DeployError> {
    let input = PrepareInput { request, execution: execution(execution_name) };
    prepare(store, &policy(), registry, lambda, ledger, input, now_ms).await
}

/// The fake spec's whole budget: prepare 600 s + 2 x readyTimeoutSeconds 120 + smoke test and rollback,
/// each (2 cases + 1 warm-up) x timeoutSeconds 15 + 30, + 600 for the rest.
const LOCK_TTL_MS: i64 = (600 + 240 + 75 + 75 + 600) * 1000;

/// The lock Prepare takes at `now_ms`.
fn lock_of(owner: &str, now_ms: i64) -> Lock {
    Lock::new(owner.to_string(), now_ms + LOCK_TTL_MS)
}

fn invalid_message(err: DeployError) -> String {
    match err {
        DeployError::InvalidInput { message } => message,
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_requests_are_refused_naming_the_thing_and_write_nothing() {
    let index = digest('c');
    let docker_list = digest('d');
    let cases = [
        ("unknown target", request("ghost", REPO, &v2(), "sha-2222222"), "no deployment target named ghost"),
        (
            "repository mismatch",
            request(FN, "other-repo", &v2(), "sha-2222222"),
            "target ml-inference deploys images from repository ml-inference, not other-repo",
        ),
        ("tag not allowed", request(FN, REPO, &v2(), "latest"), "tag \"latest\" is not allowed for ml-inference"),
        (
            "image missing",
            request(FN, REPO, &digest('e'), "sha-2222222"),
            "image sha256:eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee is not in repository ml-inference",
        ),
        ("OCI index", request(FN, REPO, &index, "sha-2222222"), "is a multi-architecture index"),
        ("Docker manifest list", request(FN, REPO, &docker_list, "sha-2222222"), "push the x86_64 image"),
    ];
    for (what, input, says) in cases {
        // GIVEN a registered target, a registry with a single-arch image and two multi-arch indexes, and a live function
        let store = FakeStore::with([spec()]);
        let registry = registry();
        registry.push(REPO, &index, "sha-2222222", OCI_INDEX);
        registry.push(REPO, &docker_list, "sha-2222222", DOCKER_LIST);
        let lambda = FakeLambda::new();
        let v1_version = lambda.seed_release(&spec(), &v1());
        lambda.seed_alias(&spec(), &v1_version, "seeded");

        let ledger = FakeLedger::new();

        // WHEN Prepare gets a request that does not fit
        let err = run_in(&store, &registry, &lambda, &ledger, EXECUTION, input, NOW_MS).await.unwrap_err();

        // THEN it is an InvalidInput naming the thing, Lambda saw no write, and the ledger was not touched
        let message = invalid_message(err);
        assert!(message.contains(says), "{what}: {message}");
        assert!(lambda.writes().is_empty(), "{what}: {:?}", lambda.writes());
        assert!(ledger.calls().is_empty(), "{what}: {:?}", ledger.calls());
        assert_eq!(ledger.lock(FN), None, "{what}");
    }
}

#[tokio::test]
async fn a_rollback_request_is_not_prepared() {
    // GIVEN a manual rollback request routed to Prepare by mistake
    let store = FakeStore::with([spec()]);
    let lambda = FakeLambda::new();

    // WHEN Prepare reads it
    let err = run(&store, &registry(), &lambda, json!({"action": "rollback", "function": FN})).await.unwrap_err();

    // THEN it refuses it, and Lambda is not touched
    assert!(invalid_message(err).contains("a rollback request reached Prepare"));
    assert!(lambda.calls().is_empty());
}

#[tokio::test]
async fn a_malformed_request_names_the_field() {
    // GIVEN a request with a misspelt field
    let store = FakeStore::with([spec()]);
    let lambda = FakeLambda::new();
    let mut input = request(FN, REPO, &v2(), "sha-2222222");
    input["imagedigest"] = input["imageDigest"].take();
    input.as_object_mut().unwrap().remove("imageDigest");

    // WHEN Prepare reads it
    let err = run(&store, &registry(), &lambda, input).await.unwrap_err();

    // THEN the error names the input and the field
    let message = invalid_message(err);
    assert!(message.starts_with("execution input: "), "{message}");
    assert!(message.contains("imagedigest") || message.contains("imageDigest"), "{message}");
    assert!(lambda.calls().is_empty());
}

#[tokio::test]
async fn a_first_deploy_finds_no_function_and_no_previous_version() {
    // GIVEN a target whose function does not exist yet
    let store = FakeStore::with([spec()]);
    let lambda = FakeLambda::new();

    // WHEN the first image is prepared
    let plan = run(&store, &registry(), &lambda, request(FN, REPO, &v2(), "sha-2222222")).await.unwrap();

    // THEN the plan says so, carries the digest URI, and the alias was not even looked up
    assert!(!plan.function_exists);
    assert_eq!(plan.previous_version, None);
    assert!(!plan.already_live);
    assert_eq!(plan.image_uri, image_uri(REPO, &v2()));
    assert_eq!(plan.image_uri, format!("{REGISTRY}/ml-inference@sha256:{}", "2".repeat(64)));
    assert_eq!(plan.target, spec());
    assert_eq!(lambda.ops(), ["GetFunction"]);
}

#[tokio::test]
async fn an_alias_on_version_3_is_the_previous_version() {
    // GIVEN a function whose alias serves version 3 (images 1, b, 1 were released before)
    let store = FakeStore::with([spec()]);
    let lambda = FakeLambda::new();
    lambda.seed_release(&spec(), &v1());
    lambda.seed_release(&spec(), &broken());
    let v3 = lambda.seed_release(&spec(), &v1());
    assert_eq!(v3.as_str(), "3");
    lambda.seed_alias(&spec(), &v3, "deployer previous=2 image=111111111111 execution=x");

    // WHEN a new image is prepared
    let plan = run(&store, &registry(), &lambda, request(FN, REPO, &v2(), "sha-2222222")).await.unwrap();

    // THEN version 3 is what a rollback returns to, and nothing is live yet
    assert!(plan.function_exists);
    assert_eq!(plan.previous_version, Some(version("3")));
    assert!(!plan.already_live);
    assert!(lambda.writes().is_empty());
}

#[tokio::test]
async fn an_alias_already_serving_this_digest_and_configuration_is_already_live() {
    // GIVEN the alias serves version 1, built from the digest being deployed, with the spec's configuration
    let store = FakeStore::with([spec()]);
    let registry = FakeRegistry::default();
    registry.push(REPO, &v1(), "sha-1111111", SINGLE_ARCH);
    let lambda = FakeLambda::new();
    let v = lambda.seed_release(&spec(), &v1());
    lambda.seed_alias(&spec(), &v, "deployer previous=none");

    // WHEN the same digest is prepared again (a re-run or a re-tag)
    let plan = run(&store, &registry, &lambda, request(FN, REPO, &v1(), "sha-1111111")).await.unwrap();

    // THEN there is nothing to do
    assert!(plan.already_live);
    assert_eq!(plan.previous_version, Some(version("1")));
    assert!(lambda.calls().contains(&"GetFunction ml-inference:1".to_string()), "{:?}", lambda.calls());
    assert!(lambda.writes().is_empty());
}

#[tokio::test]
async fn an_alias_serving_this_digest_with_another_configuration_is_not_live() {
    // GIVEN the alias serves this digest, but the spec now asks for more memory
    let store = FakeStore::with([spec_with(json!({"configuration": {"memoryMb": 2048}}))]);
    let registry = FakeRegistry::default();
    registry.push(REPO, &v1(), "sha-1111111", SINGLE_ARCH);
    let lambda = FakeLambda::new();
    let v = lambda.seed_release(&spec(), &v1());
    lambda.seed_alias(&spec(), &v, "seeded");

    // WHEN the digest is prepared
    let plan = run(&store, &registry, &lambda, request(FN, REPO, &v1(), "sha-1111111")).await.unwrap();

    // THEN the deployment goes ahead to reconcile the configuration
    assert!(!plan.already_live);
    assert_eq!(plan.previous_version, Some(version("1")));
}

#[tokio::test]
async fn a_weighted_alias_is_never_already_live() {
    // GIVEN the alias routes between version 1 (this digest) and 10% to version 2
    let store = FakeStore::with([spec()]);
    let registry = FakeRegistry::default();
    registry.push(REPO, &v1(), "sha-1111111", SINGLE_ARCH);
    let lambda = FakeLambda::new();
    let first = lambda.seed_release(&spec(), &v1());
    lambda.seed_release(&spec(), &v2());
    lambda.seed_alias(&spec(), &first, "canary");
    lambda.world().function_mut(FN).aliases.get_mut("live").unwrap().additional = Some(("2".into(), 0.1));

    // WHEN version 1's digest is prepared
    let plan = run(&store, &registry, &lambda, request(FN, REPO, &v1(), "sha-1111111")).await.unwrap();

    // THEN the primary version is the previous one, but the deployment still runs (to drop the weights)
    assert!(!plan.already_live);
    assert_eq!(plan.previous_version, Some(version("1")));
    assert!(!lambda.calls().contains(&"GetFunction ml-inference:1".to_string()));
}

#[tokio::test]
async fn an_existing_function_without_alias_has_no_previous_version() {
    // GIVEN a function created by hand, never deployed through an alias
    let store = FakeStore::with([spec()]);
    let lambda = FakeLambda::new();
    lambda.seed_function(&spec(), &v1());

    // WHEN an image is prepared
    let plan = run(&store, &registry(), &lambda, request(FN, REPO, &v2(), "sha-2222222")).await.unwrap();

    // THEN the function exists but nothing was served through the alias
    assert!(plan.function_exists);
    assert_eq!(plan.previous_version, None);
    assert_eq!(lambda.ops(), ["GetFunction", "GetAlias"]);
    assert_eq!(lambda.alias(FN, "live"), None);
}

#[tokio::test]
async fn a_throttled_read_propagates() {
    // GIVEN Lambda throttles GetFunction
    let store = FakeStore::with([spec()]);
    let lambda = FakeLambda::new();
    lambda.fail_next("GetFunction", 1, DeployError::Throttled { service: "lambda", message: "Rate exceeded".into() });

    // WHEN an image is prepared
    let err = run(&store, &registry(), &lambda, request(FN, REPO, &v2(), "sha-2222222")).await.unwrap_err();

    // THEN the throttle is returned as is, for the state machine to retry
    assert_eq!(err, DeployError::Throttled { service: "lambda", message: "Rate exceeded".into() });
    assert!(err.is_transient());
}

/// An alias pointed at $LATEST (by hand) is read as "no previous version": the update step then changes the
/// code the alias serves before the smoke test, and the automatic rollback says the alias did not exist.
#[tokio::test]
async fn an_alias_serving_latest_is_refused_before_anything_changes() {
    // GIVEN an alias that serves $LATEST
    let store = FakeStore::with([spec()]);
    let lambda = FakeLambda::new();
    let one = lambda.seed_release(&spec(), &v1());
    lambda.seed_alias(&spec(), &one, "created in the console");
    lambda.world().function_mut(FN).aliases.get_mut("live").unwrap().version = "$LATEST".into();

    // WHEN a new image is prepared
    let result = run(&store, &registry(), &lambda, request(FN, REPO, &v2(), "sha-2222222")).await;

    // THEN Prepare refuses: updating $LATEST would serve the candidate through the alias untested
    let message = invalid_message(result.unwrap_err());
    assert!(message.contains("$LATEST"), "{message}");
    assert!(lambda.writes().is_empty());
}

// ---- the deployment lock ----

/// A live function: the alias serves version 1 (image v1), and the candidate v2 is in the registry.
fn live_on_1() -> (FakeStore, FakeLambda) {
    let lambda = FakeLambda::new();
    let one = lambda.seed_release(&spec(), &v1());
    lambda.seed_alias(&spec(), &one, "deployer previous=none");
    (FakeStore::with([spec()]), lambda)
}

#[tokio::test]
async fn prepare_takes_the_lock_for_its_execution_until_now_plus_the_ttl() {
    // GIVEN a live function whose lock is free
    let (store, lambda) = live_on_1();
    let ledger = FakeLedger::new();

    // WHEN Prepare runs in execution EXECUTION
    let plan =
        run_in(&store, &registry(), &lambda, &ledger, EXECUTION, request(FN, REPO, &v2(), "sha-2222222"), NOW_MS)
            .await
            .unwrap();

    // THEN the lock is EXECUTION's for the spec's whole budget (26.5 minutes), from Budget
    assert_eq!(ledger.lock(FN), Some(lock_of(EXECUTION, NOW_MS)));
    assert_eq!(deployer_core::budget::Budget::of(&spec()).lock_ttl_ms(), LOCK_TTL_MS);
    assert_eq!(
        ledger.writes(),
        [format!("Acquire ml-inference owner={EXECUTION} now={NOW_MS} expires={}", NOW_MS + 1_590_000)]
    );
    // AND the deployment goes on as before
    assert_eq!(plan.previous_version, Some(version("1")));
    assert!(lambda.writes().is_empty());
}

#[tokio::test]
async fn a_lock_held_by_another_live_execution_queues_the_image_and_lambda_is_not_called() {
    // GIVEN another execution holds the lock for another 5 minutes
    let (store, lambda) = live_on_1();
    let ledger = FakeLedger::new();
    let other = "deploy-ml-inference-333333333333";
    ledger.seed_lock(FN, other, NOW_MS + 300_000);

    // WHEN Prepare runs in EXECUTION
    let plan =
        run_in(&store, &registry(), &lambda, &ledger, EXECUTION, request(FN, REPO, &v2(), "sha-2222222"), NOW_MS)
            .await
            .unwrap();

    // THEN the image is queued behind the holder (the plan names it), which keeps its lock
    let queued = plan.queued.expect("queued");
    assert_eq!(queued.behind, other);
    assert!(queued.why.contains(other), "{}", queued.why);
    let lock = ledger.lock(FN).unwrap();
    assert_eq!((lock.owner.as_str(), lock.expires_at_ms), (other, NOW_MS + 300_000));
    assert_eq!(lock.pending.map(|p| (p.image_digest, p.queued_by)), Some((v2(), EXECUTION.to_string())));
    // AND Lambda was not called at all
    assert!(lambda.calls().is_empty(), "{:?}", lambda.calls());
    assert_eq!(ledger.ops(), ["Acquire", "History", "LockState", "PutPending"]);
}

#[tokio::test]
async fn a_lock_expiring_right_now_is_still_held() {
    // GIVEN another execution's lock expires at this very millisecond
    let (store, lambda) = live_on_1();
    let ledger = FakeLedger::new();
    ledger.seed_lock(FN, "deploy-ml-inference-333333333333", NOW_MS);

    // WHEN Prepare runs
    let plan =
        run_in(&store, &registry(), &lambda, &ledger, EXECUTION, request(FN, REPO, &v2(), "sha-2222222"), NOW_MS)
            .await
            .unwrap();

    // THEN it still waits behind it (expired means expiresAt < now, as the DynamoDB condition)
    assert!(plan.queued.is_some(), "{plan:?}");
    assert!(lambda.calls().is_empty());
}

#[tokio::test]
async fn an_expired_lock_is_taken_over() {
    // GIVEN an execution that crashed left its lock, which expired a second ago
    let (store, lambda) = live_on_1();
    let ledger = FakeLedger::new();
    ledger.seed_lock(FN, "deploy-ml-inference-333333333333", NOW_MS - 1_000);

    // WHEN Prepare runs in EXECUTION
    let plan =
        run_in(&store, &registry(), &lambda, &ledger, EXECUTION, request(FN, REPO, &v2(), "sha-2222222"), NOW_MS)
            .await
            .unwrap();

    // THEN EXECUTION holds the lock, and the deployment is prepared
    assert_eq!(ledger.lock(FN), Some(lock_of(EXECUTION, NOW_MS)));
    assert_eq!(plan.image_digest, v2());
    assert_eq!(plan.previous_version, Some(version("1")));
}

#[tokio::test]
async fn the_same_execution_running_prepare_again_keeps_the_lock() {
    // GIVEN Prepare ran in EXECUTION, then a throttled read failed it after the lock was taken
    let (store, lambda) = live_on_1();
    let ledger = FakeLedger::new();
    lambda.fail_next("GetFunction", 1, DeployError::Throttled { service: "lambda", message: "Rate exceeded".into() });
    let input = request(FN, REPO, &v2(), "sha-2222222");
    let err = run_in(&store, &registry(), &lambda, &ledger, EXECUTION, input.clone(), NOW_MS).await.unwrap_err();
    assert_eq!(err.name(), "Throttled");
    assert_eq!(ledger.lock(FN), Some(lock_of(EXECUTION, NOW_MS)));

    // WHEN the state machine retries Prepare in the same execution 2 seconds later
    let later = NOW_MS + 2_000;
    let plan = run_in(&store, &registry(), &lambda, &ledger, EXECUTION, input, later).await.unwrap();

    // THEN it is acquired again, still EXECUTION's, with the expiry counted from the retry
    assert_eq!(plan.previous_version, Some(version("1")));
    assert_eq!(ledger.lock(FN), Some(lock_of(EXECUTION, later)));
}

#[tokio::test]
async fn bad_input_is_refused_before_the_lock_is_touched() {
    let cases = [
        ("unknown target", request("ghost", REPO, &v2(), "sha-2222222")),
        ("tag not allowed", request(FN, REPO, &v2(), "latest")),
        ("image missing", request(FN, REPO, &digest('e'), "sha-2222222")),
        ("rollback request", json!({"action": "rollback", "function": FN})),
    ];
    for (what, input) in cases {
        // GIVEN a live function whose lock another execution holds
        let (store, lambda) = live_on_1();
        let ledger = FakeLedger::new();
        ledger.seed_lock(FN, "deploy-ml-inference-333333333333", NOW_MS + 60_000);

        // WHEN Prepare gets a request that does not fit
        let err = run_in(&store, &registry(), &lambda, &ledger, EXECUTION, input, NOW_MS).await.unwrap_err();

        // THEN it is refused as InvalidInput (not Locked: it would never succeed), before any ledger call
        assert_eq!(err.name(), "InvalidInput", "{what}: {err:?}");
        assert!(ledger.calls().is_empty(), "{what}: {:?}", ledger.calls());
        assert_eq!(ledger.lock(FN).unwrap().owner, "deploy-ml-inference-333333333333", "{what}");
        assert!(lambda.calls().is_empty(), "{what}: {:?}", lambda.calls());
    }
}

// ---- superseded ----

/// The records of a function where image c (pushed at `c_pushed`) was deployed over version 1 as version 2,
/// after image 1 (pushed a day earlier) went live as version 1; then a deployment of image b was rolled back.
fn history_with_c_live(c_pushed: i64) -> FakeLedger {
    FakeLedger::with_records([
        record("deploy-ml-inference-111111111111", Outcome::Deployed, &v1(), c_pushed - 86_400_000, None, Some("1"), 1),
        record("deploy-ml-inference-cccccccccccc", Outcome::Deployed, &digest('c'), c_pushed, Some("1"), Some("2"), 2),
        record(
            "deploy-ml-inference-bbbbbbbbbbbb",
            Outcome::RolledBack,
            &broken(),
            c_pushed + 1,
            Some("2"),
            Some("2"),
            3,
        ),
    ])
}

#[tokio::test]
async fn an_image_older_than_the_live_one_is_superseded_by_it() {
    // GIVEN the records show image c live, pushed after the candidate v2 (its event arrives late)
    let (store, lambda) = live_on_1();
    let registry = registry();
    let v2_pushed = registry.pushed_at(REPO, &v2()).unwrap();
    let ledger = history_with_c_live(v2_pushed + 60_000);

    // WHEN v2 is prepared
    let plan = run_in(&store, &registry, &lambda, &ledger, EXECUTION, request(FN, REPO, &v2(), "sha-2222222"), NOW_MS)
        .await
        .unwrap();

    // THEN the plan says v2 is superseded by c, and carries v2's push time
    assert_eq!(plan.superseded_by, Some(digest('c')));
    assert_eq!(plan.image_pushed_at_ms, Some(v2_pushed));
    // AND the records were read after the lock was taken
    assert_eq!(ledger.ops(), ["Acquire", "History"]);
    assert!(lambda.writes().is_empty());
}

#[tokio::test]
async fn an_image_newer_than_the_live_one_is_not_superseded() {
    // GIVEN the records show image c live, pushed before the candidate v2
    let (store, lambda) = live_on_1();
    let registry = registry();
    let v2_pushed = registry.pushed_at(REPO, &v2()).unwrap();
    let ledger = history_with_c_live(v2_pushed - 60_000);

    // WHEN v2 is prepared
    let plan = run_in(&store, &registry, &lambda, &ledger, EXECUTION, request(FN, REPO, &v2(), "sha-2222222"), NOW_MS)
        .await
        .unwrap();

    // THEN it is not superseded
    assert_eq!(plan.superseded_by, None);
    assert_eq!(plan.image_pushed_at_ms, Some(v2_pushed));
}

#[tokio::test]
async fn an_image_pushed_in_the_same_second_as_the_live_one_does_not_replace_it() {
    // GIVEN the records show image c live, with the same ECR push time as the candidate v2
    let (store, lambda) = live_on_1();
    let registry = registry();
    let v2_pushed = registry.pushed_at(REPO, &v2()).unwrap();
    let ledger = history_with_c_live(v2_pushed);

    // WHEN v2 is prepared
    let plan = run_in(&store, &registry, &lambda, &ledger, EXECUTION, request(FN, REPO, &v2(), "sha-2222222"), NOW_MS)
        .await
        .unwrap();

    // THEN which one is newer cannot be known, so the live c stays, and the plan says why and what to do
    assert_eq!(plan.superseded_by, Some(digest('c')));
    let why = plan.superseded_why.unwrap_or_default();
    assert!(why.contains("same ECR push time") && why.contains("deploy it by hand"), "{why}");
    assert!(lambda.writes().is_empty());
}

#[tokio::test]
async fn the_live_image_itself_is_not_superseded() {
    // GIVEN the records show image c live
    let (store, lambda) = live_on_1();
    let registry = FakeRegistry::default();
    registry.push(REPO, &digest('c'), "sha-ccccccc", SINGLE_ARCH);
    let c_pushed = registry.pushed_at(REPO, &digest('c')).unwrap();
    let ledger = history_with_c_live(c_pushed);

    // WHEN image c is prepared again (a re-tag, or a re-run)
    let plan =
        run_in(&store, &registry, &lambda, &ledger, EXECUTION, request(FN, REPO, &digest('c'), "sha-ccccccc"), NOW_MS)
            .await
            .unwrap();

    // THEN it does not supersede itself
    assert_eq!(plan.superseded_by, None);
}

#[tokio::test]
async fn an_image_with_no_push_time_or_no_records_is_not_superseded() {
    // GIVEN ECR gives no push time for v2, although the records show a newer image live
    let (store, lambda) = live_on_1();
    let undated = FakeRegistry::default();
    undated.push_at(REPO, &v2(), "sha-2222222", SINGLE_ARCH, None);
    let ledger = history_with_c_live(NOW_MS - 1_000);

    // WHEN v2 is prepared
    let plan = run_in(&store, &undated, &lambda, &ledger, EXECUTION, request(FN, REPO, &v2(), "sha-2222222"), NOW_MS)
        .await
        .unwrap();

    // THEN nothing says it is older: it is not superseded
    assert_eq!((plan.superseded_by, plan.image_pushed_at_ms), (None, None));

    // AND with no records at all, neither is an image with a push time
    let plan = run(&store, &registry(), &lambda, request(FN, REPO, &v2(), "sha-2222222")).await.unwrap();
    assert_eq!(plan.superseded_by, None);
}

// ---- a shift to a version with another execution role ----

#[tokio::test]
async fn a_gradual_shift_to_a_version_with_another_role_moves_all_at_once_and_says_why() {
    // GIVEN version 1 live, running as the spec's role
    let lambda = FakeLambda::new();
    let one = lambda.seed_release(&spec(), &v1());
    lambda.seed_alias(&spec(), &one, "deployer previous=none");
    let canary = |role: &str| {
        spec_with(json!({"strategy": {"type": "canary", "percent": 10, "bakeSeconds": 60},
                         "configuration": {"role": role}}))
    };
    let same = spec().configuration.role.clone();
    let other = "arn:aws:iam::123456789012:role/ml-inference-v2";
    let cases: Vec<(&str, TargetSpec, bool)> = vec![
        ("canary, same role", canary(&same), false),
        ("canary, another role", canary(other), true),
        ("all at once, another role", spec_with(json!({"configuration": {"role": other}})), false),
    ];
    for (what, target, all_at_once) in cases {
        // WHEN Prepare plans v2 with that spec
        let plan = run_in(
            &FakeStore::with([target.clone()]),
            &registry(),
            &lambda,
            &FakeLedger::new(),
            EXECUTION,
            request(FN, REPO, &v2(), "sha-2222222"),
            NOW_MS,
        )
        .await
        .unwrap();
        // THEN a canary whose role changes goes all at once, saying why: Lambda would refuse the weighted alias
        assert_eq!(plan.all_at_once_why.is_some(), all_at_once, "{what}: {:?}", plan.all_at_once_why);
        if let Some(why) = &plan.all_at_once_why {
            assert!(why.contains(&same) && why.contains(other) && why.contains("no canary shift"), "{why}");
        }
    }
}

#[tokio::test]
async fn the_tag_is_ecrs_never_the_requests() {
    // GIVEN v2 carries only `experimental` in ECR (the trigger rightly ignored its push), and v3 carries an
    // allowed tag and `experimental-2`
    let registry = FakeRegistry::default();
    registry.push(REPO, &v2(), "experimental", SINGLE_ARCH);
    registry.push(REPO, &digest('3'), "sha-3333333", SINGLE_ARCH);
    registry.tag(REPO, &digest('3'), "experimental-2");
    let refused = [
        // a hand-made push event or operator input naming an allowed tag v2 does not carry
        (request(FN, REPO, &v2(), "sha-abcdef0"), "does not carry the tag \"sha-abcdef0\" in repository ml-inference (its tags in ECR: experimental)"),
        // no tag named, and none of v2's is allowed
        (json!({"action": "deploy", "target": FN, "repository": REPO, "imageDigest": v2().as_str()}),
         "carries no tag that ml-inference allows (tagPattern \"^sha-[0-9a-f]{7,40}$\"; its tags in ECR: experimental)"),
    ];
    for (input, says) in refused {
        let (store, lambda, ledger) = (FakeStore::with([spec()]), FakeLambda::new(), FakeLedger::new());
        let err = run_in(&store, &registry, &lambda, &ledger, EXECUTION, input.clone(), NOW_MS).await.unwrap_err();
        let message = invalid_message(err);
        assert!(message.contains(says), "{input}: {message}");
        assert!(ledger.calls().is_empty() && lambda.writes().is_empty(), "{input}: nothing is locked or written");
    }

    // WHEN v3 is asked for without a tag, or by its allowed tag
    for input in [
        json!({"action": "deploy", "target": FN, "repository": REPO, "imageDigest": digest('3').as_str()}),
        request(FN, REPO, &digest('3'), "sha-3333333"),
    ] {
        let plan = run(&FakeStore::with([spec()]), &registry, &FakeLambda::new(), input.clone()).await.unwrap();
        // THEN the plan goes by the allowed tag ECR gives it
        assert_eq!(plan.image_tag, "sha-3333333", "{input}");
    }
}

#[tokio::test]
async fn a_target_outside_the_stacks_policy_is_refused_before_anything_is_read_or_locked() {
    let cases = [
        (json!({"function": "payments-api"}), "payments-api", "TargetFunctionPrefix \"ml-\""),
        (json!({"configuration": {"role": "arn:aws:iam::123456789012:role/admin"}}), FN, "TargetRolePrefix \"ml-\""),
        (
            json!({"configuration": {"role": "arn:aws:iam::999999999999:role/ml-x"}}),
            FN,
            "a role of account 999999999999",
        ),
        (json!({"repository": "other-repo"}), FN, "\"other-repo\" is not among the stack's AllowedRepositories"),
    ];
    for (patch, function, says) in cases {
        // GIVEN a stored target that breaks the policy (stored around deployctl, straight into the table)
        let target = spec_with(patch.clone());
        let store = FakeStore::with([target.clone()]);
        let registry = FakeRegistry::default();
        registry.push(target.repository.as_str(), &v2(), "sha-2222222", SINGLE_ARCH);
        let (lambda, ledger) = (FakeLambda::new(), FakeLedger::new());
        let input = request(function, target.repository.as_str(), &v2(), "sha-2222222");
        let err = run_in(&store, &registry, &lambda, &ledger, EXECUTION, input, NOW_MS).await.unwrap_err();
        let message = invalid_message(err);
        assert!(message.contains(says), "{patch}: {message}");
        assert!(message.contains("outside the deployer stack's policy"), "{patch}: {message}");
        assert!(registry.calls().is_empty(), "{patch}: ECR was read: {:?}", registry.calls());
        assert!(lambda.calls().is_empty() && ledger.calls().is_empty(), "{patch}");
    }
}
