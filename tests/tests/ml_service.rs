//! The ML service end to end: its image is built from its Dockerfile (scripts/build-ml-image, the same
//! build GitHub Actions runs), pushed to local ECR, deployed by the pipeline with the golden payloads as
//! its smoke test; the alias then answers with scikit-learn's predictions. The broken build (a mismatched
//! model) is caught by the smoke test and never served.

use std::process::Command;
use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use deployer_aws::DynamoTargetStore;
use deployer_core::ports::TargetStore;
use deployer_core::spec;
use deployer_tests::fixture::workspace_root;
use deployer_tests::stack;
use deployer_tests::{sdk, unique};
use serde_json::{json, Value};

const REPO: &str = "e2e-ml-inference";

fn build(version: &str, broken: bool) -> String {
    let mut cmd = Command::new(workspace_root().join("scripts/build-ml-image"));
    cmd.args(["--version", version, "--name", &format!("{REPO}:{version}")]).args([
        "--push",
        &format!("{}/{REPO}:sha-{version}", sdk::registry()),
        "--insecure",
    ]);
    if broken {
        cmd.arg("--broken");
    }
    let out = cmd.output().expect("scripts/build-ml-image runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn the_ml_service_is_deployed_from_its_dockerfile_and_a_broken_model_is_rolled_back() {
    let cfg = sdk::config().await;
    let stack = tokio::task::spawn_blocking(stack::ensure).await.unwrap();
    let lambda = aws_sdk_lambda::Client::new(&cfg);
    let sfn = aws_sdk_sfn::Client::new(&cfg);
    let iam = aws_sdk_iam::Client::new(&cfg);
    let ecr = aws_sdk_ecr::Client::new(&cfg);
    let _ = ecr.create_repository().repository_name(REPO).send().await;

    // GIVEN the service's own target spec, for a fresh function in this test's repository
    let text = std::fs::read_to_string(workspace_root().join("examples/ml-inference/target.json")).unwrap();
    let mut doc: Value = serde_json::from_str(&text).unwrap();
    let function = unique("e2e-ml");
    doc["function"] = json!(function);
    doc["repository"] = json!(REPO);
    doc["configuration"]["role"] = json!(sdk::role(&iam, "e2e-ml-role").await);
    let target = spec::parse(&doc.to_string()).unwrap();
    DynamoTargetStore::from_sdk(&cfg, &stack.targets_table).put(&target).await.unwrap();

    let deploy = |version: &'static str, broken: bool| {
        let (sfn, stack, function) = (sfn.clone(), stack, function.clone());
        async move {
            let digest = tokio::task::spawn_blocking(move || build(version, broken)).await.unwrap();
            let name = format!("deploy-{function}-{}", &digest[7..19]);
            stack::finished(&sfn, &stack.execution_arn(&name), Duration::from_secs(180)).await
        }
    };

    // WHEN the good build is pushed, THEN it is deployed and the alias answers as scikit-learn does
    let exec = deploy("0000aa1", false).await;
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("examples/ml-inference/model/golden.json")).unwrap(),
    )
    .unwrap();
    let out = lambda
        .invoke()
        .function_name(&function)
        .qualifier("live")
        .payload(Blob::new(json!({"rows": golden["rows"]}).to_string()))
        .send()
        .await
        .unwrap();
    assert_eq!(out.function_error(), None);
    assert_eq!(out.executed_version(), Some("1"));
    let answer: Value = serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap();
    assert_eq!(answer["classes"], golden["classes"]);
    assert_eq!(answer["serviceVersion"], "0000aa1");
    let tolerance = golden["tolerance"].as_f64().unwrap();
    for (got, want) in
        answer["probabilities"].as_array().unwrap().iter().zip(golden["probabilities"].as_array().unwrap())
    {
        for k in 0..2 {
            assert!((got[k].as_f64().unwrap() - want[k].as_f64().unwrap()).abs() <= tolerance, "{got} vs {want}");
        }
    }

    // WHEN the broken build is pushed, THEN its smoke test fails and the alias stays on the good one
    let exec = deploy("0000bb2", true).await;
    assert_eq!((exec.status.as_str(), exec.error.as_str()), ("FAILED", "SmokeTestFailed"), "{exec:?}");
    assert!(
        exec.cause.contains("$.classes[0]") && exec.cause.contains("alias live stayed on version 1"),
        "{}",
        exec.cause
    );
    let alias = lambda.get_alias().function_name(&function).name("live").send().await.unwrap();
    assert_eq!(alias.function_version(), Some("1"));

    // Bad requests get the service's 4xx-style error, naming what is wrong.
    let out = lambda
        .invoke()
        .function_name(&function)
        .qualifier("live")
        .payload(Blob::new(json!({"rows": [[1.0, 2.0]]}).to_string()))
        .send()
        .await
        .unwrap();
    assert_eq!(out.function_error(), Some("Unhandled"));
    let err: Value = serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap();
    assert_eq!(err["errorType"], "InvalidInput");
    assert_eq!(err["errorMessage"], "row 0 has 2 features; the model takes 30");
}
