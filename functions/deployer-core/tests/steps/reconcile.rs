//! The reconcile: ECR push events are best effort, so a scheduled run deploys, per target, the newest
//! allowed image the alias does not serve.

use deployer_core::decisions::execution_name;
use deployer_core::steps::{is_reconcile, reconcile};
use serde_json::json;

use crate::fakes::*;

#[tokio::test]
async fn a_scheduled_event_deploys_the_newest_allowed_image_the_alias_does_not_serve() {
    // GIVEN the alias serves v1, and v2 (newer, allowed tag) was pushed but its event was lost
    let lambda = FakeLambda::new();
    let live = lambda.seed_release(&spec(), &v1());
    lambda.seed_alias(&spec(), &live, "");
    let registry = FakeRegistry::default();
    registry.push_at(REPO, &v1(), "sha-1111111", SINGLE_ARCH, Some(1_000));
    registry.push_at(REPO, &v2(), "sha-2222222", SINGLE_ARCH, Some(2_000));
    registry.push_at(REPO, &digest('9'), "latest", SINGLE_ARCH, Some(3_000));
    let store = FakeStore::with([spec()]);
    let executions = FakeExecutions::default();
    let event = json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
    assert!(is_reconcile(&event));

    // WHEN the reconcile runs
    let report =
        reconcile(&store, &registry, &lambda, &executions, &FakeLedger::new(), &policy(), &event).await.unwrap();

    // THEN v2 (not the newer but disallowed "latest") is deployed, under the push's own execution name
    let started = executions.started();
    assert_eq!(started.len(), 1, "{report:?}");
    assert_eq!(started[0].0, execution_name(&fname(FN), &v2()));
    assert!(started[0].1.contains(v2().as_str()) && started[0].1.contains("sha-2222222"));
    assert!(lambda.writes().is_empty());
}

#[tokio::test]
async fn nothing_starts_when_the_alias_serves_the_newest_or_the_image_was_already_attempted() {
    let lambda = FakeLambda::new();
    let live = lambda.seed_release(&spec(), &v2());
    lambda.seed_alias(&spec(), &live, "");
    let registry = FakeRegistry::default();
    registry.push_at(REPO, &v1(), "sha-1111111", SINGLE_ARCH, Some(1_000));
    registry.push_at(REPO, &v2(), "sha-2222222", SINGLE_ARCH, Some(2_000));
    let store = FakeStore::with([spec()]);
    let executions = FakeExecutions::default();
    let event = json!({"reconcile": {}});

    let report =
        reconcile(&store, &registry, &lambda, &executions, &FakeLedger::new(), &policy(), &event).await.unwrap();
    assert!(executions.started().is_empty());
    assert!(report.ignored[0].reason.contains("already serves"), "{report:?}");

    // An image whose deployment was already started (say it failed and rolled back) is not retried.
    registry.push_at(REPO, &digest('3'), "sha-3333333", SINGLE_ARCH, Some(3_000));
    let first =
        reconcile(&store, &registry, &lambda, &executions, &FakeLedger::new(), &policy(), &event).await.unwrap();
    assert_eq!(first.started.len(), 1);
    let again =
        reconcile(&store, &registry, &lambda, &executions, &FakeLedger::new(), &policy(), &event).await.unwrap();
    assert!(again.started.is_empty());
    assert_eq!(again.duplicates, [FN]);
}

#[tokio::test]
async fn an_operator_reconcile_names_its_targets() {
    let lambda = FakeLambda::new();
    let registry = FakeRegistry::default();
    registry.push_at(REPO, &v1(), "sha-1111111", SINGLE_ARCH, Some(1_000));
    let store = FakeStore::with([spec()]);
    let executions = FakeExecutions::default();

    let other = reconcile(
        &store,
        &registry,
        &lambda,
        &executions,
        &FakeLedger::new(),
        &policy(),
        &json!({"reconcile": {"targets": ["someone-else", FN]}}),
    )
    .await
    .unwrap_err();
    assert!(other.message().contains("no target named someone-else;"), "{other}");
    assert!(executions.started().is_empty(), "a refused reconcile starts nothing, not even for the known name");
    let mine = reconcile(
        &store,
        &registry,
        &lambda,
        &executions,
        &FakeLedger::new(),
        &policy(),
        &json!({"reconcile": {"targets": [FN]}}),
    )
    .await
    .unwrap();
    assert_eq!(mine.started.len(), 1, "a function that does not exist yet gets its first deployment");
}

#[tokio::test]
async fn images_pushed_in_the_same_second_as_the_live_one_are_not_deployed_over_it() {
    // GIVEN v1 and v2 share the latest ECR push time, and the alias serves v2 (the one that went live first)
    let lambda = FakeLambda::new();
    let live = lambda.seed_release(&spec(), &v2());
    lambda.seed_alias(&spec(), &live, "");
    let registry = FakeRegistry::default();
    registry.push_at(REPO, &v1(), "sha-1111111", SINGLE_ARCH, Some(5_000));
    registry.push_at(REPO, &v2(), "sha-2222222", SINGLE_ARCH, Some(5_000));
    let store = FakeStore::with([spec()]);
    let executions = FakeExecutions::default();

    // WHEN the reconcile runs
    let report =
        reconcile(&store, &registry, &lambda, &executions, &FakeLedger::new(), &policy(), &json!({"reconcile": {}}))
            .await
            .unwrap();

    // THEN nothing starts: which of the two is newer cannot be known, and one of them is live
    assert!(executions.started().is_empty(), "{report:?}");
    assert!(report.ignored[0].reason.contains(v2().as_str()), "{report:?}");
}

#[tokio::test]
async fn a_malformed_reconcile_request_is_refused_never_read_as_every_target() {
    let lambda = FakeLambda::new();
    let registry = FakeRegistry::default();
    registry.push_at(REPO, &v1(), "sha-1111111", SINGLE_ARCH, Some(1_000));
    let store = FakeStore::with([spec()]);
    let executions = FakeExecutions::default();
    let cases = [
        (
            json!({"reconcile": {"targets": "typo-fn"}}),
            "reconcile.targets: invalid type: string \"typo-fn\", expected a sequence",
        ),
        (json!({"reconcile": {"target": [FN]}}), "reconcile.target: unknown field `target`, expected `targets`"),
        (json!({"reconcile": {"targets": []}}), "reconcile.targets is empty"),
        (json!({"reconcile": {"targets": ["Bad Name"]}}), "reconcile.targets[0]: function name \"Bad Name\""),
        (json!({"reconcile": {}, "also": 1}), "unknown field `also`"),
        (json!({"reconcile": "all"}), "reconcile: invalid type: string \"all\""),
    ];
    for (event, want) in cases {
        let err = reconcile(&store, &registry, &lambda, &executions, &FakeLedger::new(), &policy(), &event)
            .await
            .unwrap_err();
        assert_eq!(err.name(), "InvalidInput", "{event}");
        assert!(err.message().contains(want), "{event}: {err}");
    }
    assert!(executions.started().is_empty(), "{:?}", executions.started());
}

#[tokio::test]
async fn a_target_outside_the_stacks_policy_is_skipped_with_the_reason() {
    let lambda = FakeLambda::new();
    let registry = FakeRegistry::default();
    registry.push_at(REPO, &v1(), "sha-1111111", SINGLE_ARCH, Some(1_000));
    let outside = spec_with(json!({"function": "payments-api"}));
    let store = FakeStore::with([outside, spec()]);
    let executions = FakeExecutions::default();
    let report =
        reconcile(&store, &registry, &lambda, &executions, &FakeLedger::new(), &policy(), &json!({"reconcile": {}}))
            .await
            .unwrap();
    assert_eq!(report.started.len(), 1, "{report:?}");
    assert_eq!(report.started[0].target, FN);
    let skipped = report.ignored.iter().find(|i| i.target.as_deref() == Some("payments-api")).expect("skipped");
    assert!(skipped.reason.contains("TargetFunctionPrefix \"ml-\""), "{report:?}");
}
