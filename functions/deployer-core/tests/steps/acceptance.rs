//! The acceptance stage: the team's CodeBuild project runs against the candidate version, once; its
//! result gates the deployment.

use deployer_core::plan::{AcceptanceInput, AcceptanceState, AcceptanceStatus, Published};
use deployer_core::spec::{Acceptance, TargetSpec};
use deployer_core::steps::acceptance;

use crate::fakes::*;

fn with_stage() -> TargetSpec {
    let stage = Acceptance {
        project: "ml-inference-it".into(),
        environment: [("SUITE".to_string(), "smoke+golden".to_string())].into(),
        timeout_seconds: 600,
    };
    TargetSpec { acceptance: Some(stage), ..spec() }
}

fn input(t: TargetSpec, state: Option<AcceptanceState>) -> AcceptanceInput {
    AcceptanceInput {
        plan: plan(t, v2(), true, Some("1")),
        published: Published { version: version("2"), code_sha256: v2().hex().into() },
        acceptance: state,
    }
}

#[tokio::test]
async fn no_stage_no_build() {
    let builds = FakeBuilds::default();
    let s = acceptance(&builds, input(spec(), None), NOW_MS).await.unwrap();
    assert_eq!(s.status, AcceptanceStatus::None);
    assert!(builds.started.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_suite_runs_once_against_the_candidate_version_and_its_success_passes_the_stage() {
    let builds = FakeBuilds::default();
    let running = acceptance(&builds, input(with_stage(), None), NOW_MS).await.unwrap();
    assert_eq!(
        (running.status, running.build_id.as_deref()),
        (AcceptanceStatus::Running, Some("ml-inference-it:build-1"))
    );
    let started = builds.started.lock().unwrap().clone();
    assert_eq!(started.len(), 1);
    let (project, env) = &started[0];
    assert_eq!(project, "ml-inference-it");
    for (k, v) in [
        ("DEPLOY_FUNCTION", FN),
        ("DEPLOY_QUALIFIER", "2"),
        ("DEPLOY_ALIAS", "live"),
        ("DEPLOY_PREVIOUS_VERSION", "1"),
        ("SUITE", "smoke+golden"),
    ] {
        assert!(env.contains(&(k.to_string(), v.to_string())), "{k}={v} in {env:?}");
    }
    let still = acceptance(&builds, input(with_stage(), Some(running.clone())), NOW_MS + 3_000).await.unwrap();
    assert_eq!(still, running, "still running: the same build, no second start");
    builds.finish("ml-inference-it:build-1", "SUCCEEDED", None);
    let passed = acceptance(&builds, input(with_stage(), Some(still)), NOW_MS + 6_000).await.unwrap();
    assert_eq!(passed.status, AcceptanceStatus::Passed);
    assert_eq!(builds.started.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_failed_or_overdue_suite_fails_the_stage_saying_where_and_why() {
    let builds = FakeBuilds::default();
    let running = acceptance(&builds, input(with_stage(), None), NOW_MS).await.unwrap();
    builds.finish(
        "ml-inference-it:build-1",
        "FAILED",
        Some(("BUILD", "COMMAND_EXECUTION_ERROR: Error while executing command: pytest. Reason: exit status 1")),
    );
    let err = acceptance(&builds, input(with_stage(), Some(running.clone())), NOW_MS + 3_000).await.unwrap_err();
    assert_eq!(err.name(), "AcceptanceFailed");
    let m = err.to_string();
    assert!(m.contains("against version 2 ended FAILED in phase BUILD: COMMAND_EXECUTION_ERROR"), "{m}");
    assert!(m.contains("output in CloudWatch Logs /aws/codebuild/ml-inference-it/build-1"), "{m}");

    builds.finish("ml-inference-it:build-1", "IN_PROGRESS", None);
    let err = acceptance(&builds, input(with_stage(), Some(running)), NOW_MS + 601_000).await.unwrap_err();
    assert!(err.to_string().contains("still running after 601 s"), "{err}");
}
