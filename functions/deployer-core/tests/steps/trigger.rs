//! Trigger: the ECR event in, one Step Functions execution per matching target out.

use deployer_core::plan::PrepareInput;
use deployer_core::steps::{trigger, Ignored, Started};
use deployer_core::DeployError;
use serde_json::{json, Value};

use crate::fakes::*;

async fn run(
    store: &FakeStore,
    executions: &FakeExecutions,
    event: &Value,
) -> Result<deployer_core::steps::TriggerReport, DeployError> {
    trigger(store, executions, &policy(), event, REGION).await
}

#[tokio::test]
async fn a_valid_push_starts_one_execution_with_a_deterministic_name_and_a_deploy_input() {
    // GIVEN a target for repository ml-inference that deploys sha-* tags
    let store = FakeStore::with([spec()]);
    let executions = FakeExecutions::default();

    // WHEN ECR reports a successful push of sha-2222222
    let report = run(&store, &executions, &ecr_event(REPO, &v2(), "sha-2222222")).await.unwrap();

    // THEN exactly one execution starts, named after the target and the digest, with a Deploy input
    let name = "deploy-ml-inference-222222222222";
    assert_eq!(report.started, [Started { target: FN.into(), execution_arn: execution_arn(name) }]);
    assert!(report.duplicates.is_empty() && report.ignored.is_empty(), "{report:?}");
    let started = executions.started();
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].0, name);
    let input: Value = serde_json::from_str(&started[0].1).unwrap();
    assert_eq!(
        input,
        json!({"action": "deploy", "target": FN, "repository": REPO, "imageDigest": v2().as_str(), "imageTag": "sha-2222222"})
    );
}

#[tokio::test]
async fn the_started_input_is_one_that_prepare_accepts() {
    // GIVEN a push that the trigger turns into an execution input
    let store = FakeStore::with([spec()]);
    let executions = FakeExecutions::default();
    run(&store, &executions, &ecr_event(REPO, &v2(), "sha-2222222")).await.unwrap();
    let input: Value = serde_json::from_str(&executions.started()[0].1).unwrap();
    let registry = FakeRegistry::default();
    registry.push(REPO, &v2(), "sha-2222222", SINGLE_ARCH);
    let lambda = FakeLambda::new();
    let ledger = FakeLedger::new();
    let (name, _) = executions.started().remove(0);

    // WHEN the state machine hands that input to Prepare, in the execution the trigger started
    let prepare_input = PrepareInput { request: input, execution: execution(&name) };
    let plan = deployer_core::steps::prepare(&store, &policy(), &registry, &lambda, &ledger, prepare_input, NOW_MS)
        .await
        .unwrap();

    // THEN Prepare reads it as the same deployment, and takes the function's lock for that execution
    assert_eq!(plan.image_digest, v2());
    assert_eq!(plan.image_tag, "sha-2222222");
    assert_eq!(plan.target.function.as_str(), FN);
    assert_eq!(ledger.lock(FN).map(|l| l.owner), Some(name));
}

#[tokio::test]
async fn a_duplicate_event_is_reported_and_starts_nothing_twice() {
    // GIVEN a push whose execution was already started
    let store = FakeStore::with([spec()]);
    let executions = FakeExecutions::default();
    let event = ecr_event(REPO, &v2(), "sha-2222222");
    run(&store, &executions, &event).await.unwrap();

    // WHEN EventBridge delivers the same event again
    let report = run(&store, &executions, &event).await.unwrap();

    // THEN the second delivery is a duplicate: the same name was asked for, and nothing new started
    assert_eq!(report.duplicates, [FN]);
    assert!(report.started.is_empty(), "{report:?}");
    assert_eq!(executions.started().len(), 1);
    assert_eq!(executions.attempts(), ["deploy-ml-inference-222222222222", "deploy-ml-inference-222222222222"]);
}

#[tokio::test]
async fn a_second_tag_on_the_same_digest_is_a_duplicate() {
    // GIVEN sha-2222222 was pushed and its deployment started
    let store = FakeStore::with([spec()]);
    let executions = FakeExecutions::default();
    run(&store, &executions, &ecr_event(REPO, &v2(), "sha-2222222")).await.unwrap();

    // WHEN the same image is pushed again under another matching tag
    let report = run(&store, &executions, &ecr_event(REPO, &v2(), "sha-2222222abcdef")).await.unwrap();

    // THEN the execution name depends on the digest only: nothing new starts
    assert_eq!(report.duplicates, [FN]);
    assert_eq!(executions.started().len(), 1);
}

#[tokio::test]
async fn a_tag_that_does_not_match_is_ignored_with_the_reason() {
    // GIVEN a target that deploys only sha-* tags
    let store = FakeStore::with([spec()]);
    let executions = FakeExecutions::default();

    // WHEN "latest" is pushed
    let report = run(&store, &executions, &ecr_event(REPO, &v2(), "latest")).await.unwrap();

    // THEN the target is skipped with the tag and the pattern named, and nothing starts
    assert_eq!(
        report.ignored,
        [Ignored {
            target: Some(FN.into()),
            reason: "tag \"latest\" does not match tagPattern \"^sha-[0-9a-f]{7,40}$\"".into()
        }]
    );
    assert!(report.started.is_empty() && report.duplicates.is_empty());
    assert!(executions.attempts().is_empty());
}

#[tokio::test]
async fn an_unknown_repository_is_ignored() {
    // GIVEN targets for ml-inference only
    let store = FakeStore::with([spec()]);
    let executions = FakeExecutions::default();

    // WHEN another repository gets a push
    let report = run(&store, &executions, &ecr_event("billing-api", &v2(), "sha-2222222")).await.unwrap();

    // THEN it is ignored, saying no target deploys that repository
    assert_eq!(report.ignored, [Ignored { target: None, reason: "no target deploys repository billing-api".into() }]);
    assert!(report.started.is_empty());
    assert!(executions.attempts().is_empty());
}

#[tokio::test]
async fn deletes_and_failed_pushes_are_ignored() {
    let cases = [
        ("action-type", "DELETE", "action-type DELETE is not a push"),
        ("result", "FAILURE", "push result is FAILURE"),
    ];
    for (field, value, reason) in cases {
        // GIVEN a target for the repository
        let store = FakeStore::with([spec()]);
        let executions = FakeExecutions::default();
        let mut event = ecr_event(REPO, &v2(), "sha-2222222");
        event["detail"][field] = json!(value);

        // WHEN the event is not a successful push
        let report = run(&store, &executions, &event).await.unwrap();

        // THEN it is ignored with the reason, and nothing starts
        assert_eq!(report.ignored.len(), 1, "{value}");
        assert!(report.ignored[0].reason.contains(reason), "{value}: {:?}", report.ignored);
        assert!(report.started.is_empty(), "{value}");
        assert!(executions.attempts().is_empty(), "{value}");
    }
}

#[tokio::test]
async fn malformed_foreign_or_other_events_are_refused_and_start_nothing() {
    let mut other_account = ecr_event(REPO, &v2(), "sha-2222222");
    other_account["account"] = json!("999999999999");
    let mut other_type = ecr_event(REPO, &v2(), "sha-2222222");
    other_type["detail-type"] = json!("ECR Image Scan");
    let mut bad_digest = ecr_event(REPO, &v2(), "sha-2222222");
    bad_digest["detail"]["image-digest"] = json!("sha256:not-a-digest");
    let cases = [
        ("malformed", json!({"hello": "world"}), "not an EventBridge event"),
        ("other account", other_account, "account 999999999999"),
        ("wrong detail-type", other_type, "detail-type is \"ECR Image Scan\""),
        ("bad digest", bad_digest, "image digest \"sha256:not-a-digest\""),
    ];
    for (what, event, says) in cases {
        // GIVEN a target for the repository
        let store = FakeStore::with([spec()]);
        let executions = FakeExecutions::default();

        // WHEN the event is not a well-formed ECR event of this account
        let err = run(&store, &executions, &event).await.unwrap_err();

        // THEN it is an InvalidInput that says what is wrong, and nothing starts
        let DeployError::InvalidInput { message } = &err else { panic!("{what}: {err:?}") };
        assert!(message.starts_with("event refused: ") && message.contains(says), "{what}: {message}");
        assert!(executions.attempts().is_empty(), "{what}");
    }
}

#[tokio::test]
async fn two_targets_on_one_repository_get_one_execution_each() {
    // GIVEN two functions deployed from the same repository
    let canary = spec_with(json!({"function": "ml-inference-canary"}));
    let store = FakeStore::with([spec(), canary]);
    let executions = FakeExecutions::default();

    // WHEN an image is pushed
    let report = run(&store, &executions, &ecr_event(REPO, &v2(), "sha-2222222")).await.unwrap();

    // THEN each target gets its own execution, with its own name and input
    let names: Vec<_> = executions.started().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["deploy-ml-inference-222222222222", "deploy-ml-inference-canary-222222222222"]);
    let targets: Vec<_> = report.started.iter().map(|s| s.target.as_str()).collect();
    assert_eq!(targets, ["ml-inference", "ml-inference-canary"]);
    let input: Value = serde_json::from_str(&executions.started()[1].1).unwrap();
    assert_eq!(input["target"], "ml-inference-canary");
}

#[tokio::test]
async fn only_the_targets_whose_pattern_matches_start() {
    // GIVEN two targets on one repository, one deploying only release tags
    let releases = spec_with(json!({"function": "ml-inference-prod", "tagPattern": "^v[0-9]+\\.[0-9]+\\.[0-9]+$"}));
    let store = FakeStore::with([spec(), releases]);
    let executions = FakeExecutions::default();

    // WHEN a sha-* tag is pushed
    let report = run(&store, &executions, &ecr_event(REPO, &v2(), "sha-2222222")).await.unwrap();

    // THEN the matching target starts and the other is ignored by name
    assert_eq!(report.started.len(), 1);
    assert_eq!(report.started[0].target, FN);
    assert_eq!(report.ignored.len(), 1);
    assert_eq!(report.ignored[0].target.as_deref(), Some("ml-inference-prod"));
    assert_eq!(executions.started().len(), 1);
}
