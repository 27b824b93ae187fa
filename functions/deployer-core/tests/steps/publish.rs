//! Publish Version: exactly what passed the smoke test, guarded by its CodeSha256 and RevisionId.

use deployer_core::plan::{PlanInput, PublishInput, Published, SmokeOutput};
use deployer_core::steps::{publish_version, smoke_test};
use deployer_core::DeployError;

use crate::fakes::*;

/// Version 1 (v1) is live; $LATEST runs the candidate v2 and has just passed its smoke test.
async fn smoke_passed() -> (FakeLambda, SmokeOutput) {
    let lambda = FakeLambda::new();
    let one = lambda.seed_release(&spec(), &v1());
    lambda.seed_alias(&spec(), &one, "deployer previous=none");
    lambda.seed_latest(&spec(), &v2());
    lambda.model(&v2(), good_model());
    let smoke = smoke_test(&lambda, PlanInput { plan: plan(spec(), v2(), true, Some("1")) }).await.unwrap();
    lambda.clear_calls();
    (lambda, smoke)
}

fn input(smoke: &SmokeOutput) -> PublishInput {
    PublishInput { plan: plan(spec(), v2(), true, Some("1")), smoke: smoke.clone(), execution: EXECUTION.into() }
}

#[tokio::test]
async fn the_smoke_tested_revision_is_published_with_a_describing_description() {
    // GIVEN the candidate passed its smoke test
    let (lambda, smoke) = smoke_passed().await;

    // WHEN it is published
    let published = publish_version(&lambda, input(&smoke)).await.unwrap();

    // THEN version 2 holds the candidate's code, published with the smoke test's CodeSha256 and RevisionId
    assert_eq!(published, Published { version: version("2"), code_sha256: v2().hex().into() });
    let description = format!("image {} tag sha-2222222 execution {EXECUTION}", v2());
    assert_eq!(
        lambda.calls(),
        [format!(
            "PublishVersion ml-inference sha={} rev={} description={description}",
            smoke.code_sha256, smoke.revision_id
        )]
    );
    assert_eq!(lambda.version_numbers(FN), [1, 2]);
    assert_eq!(lambda.version_state(FN, 2).code_sha256, v2().hex());
    let recorded = lambda.version_description(FN, 2);
    for part in [v2().as_str(), "sha-2222222", EXECUTION] {
        assert!(recorded.contains(part), "{part} missing from {recorded:?}");
    }
    assert!(recorded.len() <= 256, "Lambda's limit: {}", recorded.len());
    // AND the alias was not touched
    assert_eq!(lambda.alias(FN, "live").unwrap().version, "1");
}

#[tokio::test]
async fn a_re_run_with_nothing_changed_returns_the_same_version() {
    // GIVEN the candidate was published as version 2
    let (lambda, smoke) = smoke_passed().await;
    let first = publish_version(&lambda, input(&smoke)).await.unwrap();

    // WHEN the step runs again with the same input (a retry after a lost response)
    let again = publish_version(&lambda, input(&smoke)).await.unwrap();

    // THEN Lambda returns the same version; no duplicate is created
    assert_eq!(again, first);
    assert_eq!(lambda.version_numbers(FN), [1, 2]);
    assert_eq!(lambda.count("PublishVersion"), 2);
}

#[tokio::test]
async fn a_change_after_the_smoke_test_is_refused() {
    // GIVEN someone edits the function after it passed its smoke test
    let (lambda, smoke) = smoke_passed().await;
    lambda.world().touch(FN);

    // WHEN publishing
    let err = publish_version(&lambda, input(&smoke)).await.unwrap_err();

    // THEN Lambda refuses the stale RevisionId, and no version is created
    assert!(matches!(err, DeployError::PreconditionFailed { .. }), "{err:?}");
    assert_eq!(lambda.version_numbers(FN), [1]);

    // AND a retry of the same input is refused the same way: only a new smoke test can publish
    let again = publish_version(&lambda, input(&smoke)).await.unwrap_err();
    assert!(matches!(again, DeployError::PreconditionFailed { .. }), "{again:?}");
    assert_eq!(lambda.version_numbers(FN), [1]);
}

#[tokio::test]
async fn code_other_than_the_tested_one_is_refused() {
    // GIVEN a smoke output whose CodeSha256 is not what $LATEST runs (same revision)
    let (lambda, mut smoke) = smoke_passed().await;
    smoke.code_sha256 = broken().hex().into();

    // WHEN publishing
    let err = publish_version(&lambda, input(&smoke)).await.unwrap_err();

    // THEN Lambda's CodeSha256 guard refuses it, and no version is created
    assert!(matches!(err, DeployError::AwsRefused { operation: "PublishVersion", .. }), "{err:?}");
    assert!(lambda.calls()[0].contains(&format!("sha={}", broken().hex())));
    assert_eq!(lambda.version_numbers(FN), [1]);
}

#[tokio::test]
async fn an_update_started_after_the_smoke_test_is_a_conflict() {
    // GIVEN someone starts an update after the smoke test passed
    let (lambda, smoke) = smoke_passed().await;
    lambda.world().start_foreign_update(FN);

    // WHEN publishing
    let err = publish_version(&lambda, input(&smoke)).await.unwrap_err();

    // THEN Lambda's conflict propagates, and no version is created
    assert!(matches!(err, DeployError::UpdateInProgress { .. }), "{err:?}");
    assert_eq!(lambda.version_numbers(FN), [1]);
}

#[tokio::test]
async fn aws_failures_propagate() {
    // GIVEN Lambda is unavailable
    let (lambda, smoke) = smoke_passed().await;
    let unavailable = DeployError::AwsUnavailable { service: "lambda", message: "connection reset".into() };
    lambda.fail_next("PublishVersion", 1, unavailable.clone());

    // WHEN publishing
    let err = publish_version(&lambda, input(&smoke)).await.unwrap_err();

    // THEN the error propagates unchanged, and the retry publishes version 2
    assert_eq!(err, unavailable);
    assert_eq!(lambda.version_numbers(FN), [1]);
    assert_eq!(publish_version(&lambda, input(&smoke)).await.unwrap().version, version("2"));
}
