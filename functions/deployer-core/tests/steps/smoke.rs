//! Smoke Test: the candidate ($LATEST) answers the golden cases right and fast enough; the revision that
//! passed is reported, and nothing is published or shifted here.

use deployer_core::plan::{CaseResult, PlanInput, SmokeOutput};
use deployer_core::steps::smoke_test;
use deployer_core::DeployError;
use serde_json::{json, Value};

use crate::fakes::*;

/// Version 1 (v1) is live; $LATEST runs `candidate`, ready. Both images have a model scripted.
fn candidate(candidate: &deployer_core::ids::ImageDigest, model: Model) -> FakeLambda {
    let lambda = FakeLambda::new();
    let one = lambda.seed_release(&spec(), &v1());
    lambda.seed_alias(&spec(), &one, "deployer previous=none");
    lambda.seed_latest(&spec(), candidate);
    lambda.model(&v1(), good_model());
    lambda.model(candidate, model);
    lambda
}

async fn smoke(lambda: &FakeLambda) -> Result<SmokeOutput, DeployError> {
    smoke_test(lambda, PlanInput { plan: plan(spec(), v2(), true, Some("1")) }).await
}

/// Nothing reaches a version or the alias from the smoke test, whatever its outcome.
fn assert_nothing_released(lambda: &FakeLambda) {
    assert!(lambda.writes().is_empty(), "{:?}", lambda.writes());
    assert_eq!(lambda.count("PublishVersion") + lambda.count("CreateAlias") + lambda.count("UpdateAlias"), 0);
}

fn report(err: DeployError) -> String {
    match err {
        DeployError::SmokeTestFailed { function, report } => {
            assert_eq!(function, FN);
            report
        }
        other => panic!("expected SmokeTestFailed, got {other:?}"),
    }
}

#[tokio::test]
async fn a_good_candidate_passes_and_reports_the_revision_it_tested() {
    // GIVEN $LATEST runs the candidate, whose model answers the golden cases
    let lambda = candidate(&v2(), good_model());
    let tested = lambda.latest(FN);

    // WHEN the smoke test runs
    let out = smoke(&lambda).await.unwrap();

    // THEN it passes, and names exactly the revision and code it tested
    assert_eq!(out.revision_id, tested.revision_id);
    assert_eq!(out.code_sha256, v2().hex());
    assert_eq!(out.warmup_ms, 40);
    assert_eq!(
        out.cases,
        [
            CaseResult { name: "golden-benign".into(), latency_ms: 40 },
            CaseResult { name: "golden-malignant".into(), latency_ms: 40 }
        ]
    );
    // AND one warm-up then one invocation per case went to $LATEST, running the candidate
    let served = lambda.served();
    assert_eq!(served.len(), 3);
    assert!(served.iter().all(|s| s.qualifier == "$LATEST" && s.code_sha256 == v2().hex()), "{served:?}");
    assert_eq!(lambda.ops(), ["GetFunction", "Invoke", "Invoke", "Invoke", "GetFunction"]);
    assert_nothing_released(&lambda);
}

#[tokio::test]
async fn wrong_answers_fail_the_test_listing_every_mismatch() {
    // GIVEN a candidate that answers the benign case right and the malignant one wrong
    let half_wrong: Model = std::sync::Arc::new(|payload: &Value| {
        if payload["rows"][0][0].as_f64().unwrap_or(0.0) < 15.0 {
            Reply::ok(json!({"classes": [1], "probabilities": [[0.02, 0.98]]}))
        } else {
            Reply::ok(json!({"classes": [1], "probabilities": [[0.03, 0.97]]}))
        }
    });
    let lambda = candidate(&v2(), half_wrong);

    // WHEN the smoke test runs
    let report = report(smoke(&lambda).await.unwrap_err());

    // THEN every mismatch of the wrong case is listed, each with its path, value and expectation
    assert_eq!(
        report,
        "3 problem(s): case \"golden-malignant\": $.classes[0] is 1, expected 0 (tolerance 0.001); \
         case \"golden-malignant\": $.probabilities[0][0] is 0.03, expected 0.97 (tolerance 0.001); \
         case \"golden-malignant\": $.probabilities[0][1] is 0.97, expected 0.03 (tolerance 0.001)"
    );
    assert_nothing_released(&lambda);
}

#[tokio::test]
async fn a_bad_image_on_latest_fails_while_the_live_version_answers_right() {
    // GIVEN $LATEST runs an image whose model is broken, while version 1 (live) runs a good one
    let lambda = candidate(&v2(), flipped_model());

    // WHEN the smoke test runs
    let report = report(smoke(&lambda).await.unwrap_err());

    // THEN the candidate fails on every case, and only $LATEST was invoked
    assert!(report.contains("case \"golden-benign\": $.classes[0] is 0, expected 1"), "{report}");
    assert!(lambda.served().iter().all(|s| s.qualifier == "$LATEST"));
    assert_nothing_released(&lambda);

    // AND the live version still answers right through the alias
    let run = deployer_core::steps::run_cases(&lambda, &fname(FN), "live", &spec().smoke_test).await.unwrap();
    assert!(run.failures.is_empty(), "{:?}", run.failures);
    assert!(lambda.served().iter().filter(|s| s.qualifier == "live").all(|s| s.executed_version == "1"));
}

/// The documented contract of SmokeTestFailed is that `report` lists every mismatch; when the warm-up
/// (which is the first case) fails, the cases are not run, so the other cases' mismatches are missing.
#[tokio::test]
async fn a_bad_image_is_reported_for_every_case_not_only_the_warm_up() {
    // GIVEN $LATEST runs an image that answers every case wrongly
    let lambda = candidate(&v2(), flipped_model());

    // WHEN the smoke test runs
    let report = report(smoke(&lambda).await.unwrap_err());

    // THEN both cases' mismatches are listed
    assert!(report.contains("case \"golden-benign\""), "{report}");
    assert!(report.contains("case \"golden-malignant\""), "{report}");
}

#[tokio::test]
async fn a_function_error_fails_the_test_with_the_error() {
    // GIVEN a candidate that cannot load its model
    let lambda = candidate(&v2(), crashing_model());

    // WHEN the smoke test runs
    let report = report(smoke(&lambda).await.unwrap_err());

    // THEN the function's own error type and message are in the report, for every case
    assert!(report.starts_with("2 problem(s): "), "{report}");
    for case in ["golden-benign", "golden-malignant"] {
        assert!(
            report.contains(&format!(
                "case \"{case}\": the function failed (ModelLoadError: weights file /opt/model/model.onnx is truncated)"
            )),
            "{report}"
        );
    }
    assert_nothing_released(&lambda);
}

#[tokio::test]
async fn a_case_over_the_latency_budget_fails_but_a_slow_warm_up_does_not() {
    // GIVEN a candidate whose cold start takes 4 s, then answers in 120 ms and 1500 ms (budget 1000 ms)
    let lambda = candidate(&v2(), good_model());
    let benign = json!({"classes": [1], "probabilities": [[0.02, 0.98]]});
    let malignant = json!({"classes": [0], "probabilities": [[0.97, 0.03]]});
    lambda.queue(
        "$LATEST",
        [
            Reply::ok(benign.clone()).after_ms(4_000),
            Reply::ok(benign).after_ms(120),
            Reply::ok(malignant).after_ms(1_500),
        ],
    );

    // WHEN the smoke test runs
    let report = report(smoke(&lambda).await.unwrap_err());

    // THEN only the slow case fails; the warm-up's latency is not judged
    assert_eq!(report, "1 problem(s): case \"golden-malignant\": took 1500 ms, over the 1000 ms latency budget");
    assert_nothing_released(&lambda);
}

#[tokio::test]
async fn a_slow_cold_start_alone_passes() {
    // GIVEN a candidate whose cold start takes 4 s, then answers within budget
    let lambda = candidate(&v2(), good_model());
    let model = good_model();
    let benign = model(&json!({"rows": BENIGN_ROWS})).payload;
    lambda.queue("$LATEST", [Reply::ok(benign).after_ms(4_000)]);

    // WHEN the smoke test runs
    let out = smoke(&lambda).await.unwrap();

    // THEN it passes, reporting the warm-up time apart
    assert_eq!(out.warmup_ms, 4_000);
    assert!(out.cases.iter().all(|c| c.latency_ms == 40), "{:?}", out.cases);
}

#[tokio::test]
async fn latest_running_another_image_is_a_precondition_failure_and_nothing_is_invoked() {
    // GIVEN $LATEST runs v1, not the candidate of the plan (v2)
    let lambda = candidate(&v1(), good_model());

    // WHEN the smoke test runs
    let err = smoke(&lambda).await.unwrap_err();

    // THEN it refuses to test the wrong image
    let DeployError::PreconditionFailed { resource, message } = &err else { panic!("{err:?}") };
    assert_eq!(resource, FN);
    assert!(
        message.contains(&format!("$LATEST runs {} instead of the image under test {}", v1().hex(), v2())),
        "{message}"
    );
    assert_eq!(lambda.count("Invoke"), 0);
    assert_nothing_released(&lambda);
}

#[tokio::test]
async fn a_change_during_the_test_is_a_precondition_failure() {
    // GIVEN someone edits the function while its second case is being invoked
    let lambda = candidate(&v2(), good_model());
    lambda.before_call("Invoke", 2, |w| w.touch(FN));

    // WHEN the smoke test runs
    let err = smoke(&lambda).await.unwrap_err();

    // THEN the pass does not count: what was tested is not what would be published
    let DeployError::PreconditionFailed { message, .. } = &err else { panic!("{err:?}") };
    assert_eq!(message, "the function changed while it was being smoke-tested");
    assert_nothing_released(&lambda);
}

#[tokio::test]
async fn a_missing_function_is_not_found() {
    // GIVEN the function was deleted
    let lambda = FakeLambda::new();

    // WHEN the smoke test runs
    let err = smoke(&lambda).await.unwrap_err();

    // THEN it is NotFound, naming the function
    assert_eq!(err, DeployError::NotFound { what: "function", message: FN.into() });
}

#[tokio::test]
async fn a_throttled_invocation_propagates() {
    // GIVEN Lambda throttles the second invocation
    let lambda = candidate(&v2(), good_model());
    let throttled = DeployError::Throttled { service: "lambda", message: "Rate exceeded".into() };
    let injected = throttled.clone();
    lambda.before_call("Invoke", 2, move |w| w.fail_next("Invoke", 1, injected));

    // WHEN the smoke test runs
    let err = smoke(&lambda).await.unwrap_err();

    // THEN the throttle propagates (the state machine retries), and it is not mistaken for a failed test
    assert_eq!(err, throttled);
    assert_nothing_released(&lambda);
}
