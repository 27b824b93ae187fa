//! Prepare: check the request against the target and the image, and read where the function stands.

use deployer_core::plan::Plan;
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

async fn run(
    store: &FakeStore,
    registry: &FakeRegistry,
    lambda: &FakeLambda,
    input: Value,
) -> Result<Plan, DeployError> {
    prepare(store, registry, lambda, input).await
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

        // WHEN Prepare gets a request that does not fit
        let err = run(&store, &registry, &lambda, input).await.unwrap_err();

        // THEN it is an InvalidInput naming the thing, and Lambda saw no write
        let message = invalid_message(err);
        assert!(message.contains(says), "{what}: {message}");
        assert!(lambda.writes().is_empty(), "{what}: {:?}", lambda.writes());
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
