//! Self-tests of local AWS: each extension behaves as AWS documents, seen through the real Rust SDK.
//!
//! Every test makes its own functions, repositories, rules and state machines (unique names), so the
//! tests run in parallel against one local AWS.

use std::time::Duration;

use aws_sdk_lambda::error::ProvideErrorMetadata;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    AliasRoutingConfiguration, Environment, FunctionCode, LastUpdateStatus, LogFormat, LoggingConfig, PackageType,
    Runtime, State,
};
use deployer_tests::sdk::{self, as_role, image_uri};
use deployer_tests::{faults, fixture, unique, wait};
use serde_json::{json, Value};

struct Aws {
    lambda: aws_sdk_lambda::Client,
    ecr: aws_sdk_ecr::Client,
    sfn: aws_sdk_sfn::Client,
    events: aws_sdk_eventbridge::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    role: String,
}

async fn aws() -> Aws {
    let cfg = sdk::config().await;
    let iam = aws_sdk_iam::Client::new(&cfg);
    let role = sdk::role(&iam, "local-aws-self-test").await;
    // Local AWS enforces IAM: the state machines these tests make invoke functions, and their EventBridge
    // targets start executions, with this role.
    iam.put_role_policy()
        .role_name("local-aws-self-test")
        .policy_name("self-test")
        .policy_document(
            json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "lambda:InvokeFunction",
                 "Resource": format!("arn:aws:lambda:{}:{}:function:*", sdk::REGION, sdk::ACCOUNT)},
                {"Effect": "Allow", "Action": "states:StartExecution",
                 "Resource": format!("arn:aws:states:{}:{}:stateMachine:*", sdk::REGION, sdk::ACCOUNT)}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    Aws {
        lambda: aws_sdk_lambda::Client::new(&cfg),
        ecr: aws_sdk_ecr::Client::new(&cfg),
        sfn: aws_sdk_sfn::Client::new(&cfg),
        events: aws_sdk_eventbridge::Client::new(&cfg),
        cloudwatch: aws_sdk_cloudwatch::Client::new(&cfg),
        logs: aws_sdk_cloudwatchlogs::Client::new(&cfg),
        role,
    }
}

/// A repository with the fixture pushed as tag `a` (variant "a"); returns (repo, digest of a).
async fn repo_with_image(aws: &Aws) -> (String, String) {
    let repo = unique("fixture");
    aws.ecr.create_repository().repository_name(&repo).send().await.unwrap();
    let digest = fixture::push_image(&repo, "a", "a");
    (repo, digest)
}

/// An image function on `repo:tag`, settled.
async fn image_function(aws: &Aws, repo: &str, tag: &str) -> String {
    let name = unique("fn");
    aws.lambda
        .create_function()
        .function_name(&name)
        .role(&aws.role)
        .package_type(PackageType::Image)
        .code(FunctionCode::builder().image_uri(image_uri(repo, tag)).build())
        .timeout(5)
        .send()
        .await
        .unwrap();
    let cfg = wait::function_settled(&aws.lambda, &name).await;
    assert_eq!(cfg.state(), Some(&State::Active), "{cfg:?}");
    name
}

/// A settled provided.al2023 zip function running the fixture, with `timeout` seconds and `env`.
async fn zip_function(aws: &Aws, prefix: &str, timeout: i32, env: &[(&str, &str)]) -> String {
    let name = unique(prefix);
    let mut vars = Environment::builder();
    for (k, v) in env {
        vars = vars.variables(*k, *v);
    }
    aws.lambda
        .create_function()
        .function_name(&name)
        .role(&aws.role)
        .runtime(Runtime::Providedal2023)
        .handler("bootstrap")
        .timeout(timeout)
        .code(FunctionCode::builder().zip_file(Blob::new(fixture::zip())).build())
        .environment(vars.build())
        .send()
        .await
        .unwrap();
    wait::function_settled(&aws.lambda, &name).await;
    name
}

struct Invoked {
    payload: Value,
    function_error: Option<String>,
    executed_version: String,
    log: String,
}

async fn invoke(aws: &Aws, name: &str, qualifier: Option<&str>, event: Value) -> Invoked {
    let out = aws
        .lambda
        .invoke()
        .function_name(name)
        .set_qualifier(qualifier.map(str::to_string))
        .log_type(aws_sdk_lambda::types::LogType::Tail)
        .payload(Blob::new(event.to_string()))
        .send()
        .await
        .unwrap();
    let log = out
        .log_result()
        .map(|b| {
            use base64_decode::decode;
            decode(b)
        })
        .unwrap_or_default();
    Invoked {
        payload: serde_json::from_slice(out.payload().map(|b| b.as_ref()).unwrap_or(b"null")).unwrap(),
        function_error: out.function_error().map(str::to_string),
        executed_version: out.executed_version().unwrap_or_default().to_string(),
        log,
    }
}

mod base64_decode {
    /// Decode standard base64 (the Tail log); small enough not to need a crate.
    pub fn decode(s: &str) -> String {
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut bits = 0u32;
        let mut n = 0;
        let mut out = Vec::new();
        for c in s.bytes().filter(|c| *c != b'=') {
            let Some(v) = T.iter().position(|t| *t == c) else {
                continue;
            };
            bits = (bits << 6) | v as u32;
            n += 6;
            if n >= 8 {
                n -= 8;
                out.push((bits >> n) as u8);
                bits &= (1 << n) - 1;
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

fn code<E: ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("<no code>").to_string()
}

// ---------------------------------------------------------------------------------------------
// Invoke runs real code
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn zip_function_runs_its_bootstrap_with_its_environment() {
    let aws = aws().await;
    let name = unique("zip");
    // GIVEN a provided.al2023 zip function with an environment variable
    aws.lambda
        .create_function()
        .function_name(&name)
        .role(&aws.role)
        .runtime(Runtime::Providedal2023)
        .handler("bootstrap")
        .code(FunctionCode::builder().zip_file(Blob::new(fixture::zip())).build())
        .memory_size(256)
        .environment(Environment::builder().variables("FIXTURE_VARIANT", "from-env").build())
        .send()
        .await
        .unwrap();
    let cfg = wait::function_settled(&aws.lambda, &name).await;
    assert_eq!(cfg.state(), Some(&State::Active));
    assert_eq!(cfg.last_update_status(), Some(&LastUpdateStatus::Successful));
    // WHEN it is invoked
    let out = invoke(&aws, &name, None, json!({"echo": {"n": 42}})).await;
    // THEN its own code answered, with Lambda's context and the function's variables
    assert_eq!(out.function_error, None, "{}", out.payload);
    assert_eq!(out.payload["echo"], json!({"n": 42}));
    assert_eq!(out.payload["variant"], "from-env");
    assert_eq!(out.payload["functionName"], name.as_str());
    assert_eq!(out.payload["functionVersion"], "$LATEST");
    assert_eq!(out.payload["memorySize"], "256");
    assert_eq!(out.executed_version, "$LATEST");
    assert!(out.payload["deadlineMs"].as_u64().unwrap() > 0);
    assert!(out.log.contains("REPORT RequestId:"), "tail log: {}", out.log);
}

#[tokio::test]
async fn image_function_runs_the_image_entrypoint_pinned_to_its_digest() {
    let aws = aws().await;
    let (repo, digest) = repo_with_image(&aws).await;
    // The registry push is visible to ECR with the true manifest digest.
    let images = aws.ecr.describe_images().repository_name(&repo).send().await.unwrap();
    let detail = &images.image_details()[0];
    assert_eq!(detail.image_digest(), Some(digest.as_str()));
    assert_eq!(detail.image_tags(), ["a"]);

    let name = image_function(&aws, &repo, "a").await;
    let got = aws.lambda.get_function().function_name(&name).send().await.unwrap();
    let code_loc = got.code().unwrap();
    assert_eq!(code_loc.image_uri(), Some(image_uri(&repo, "a").as_str()));
    assert_eq!(code_loc.resolved_image_uri(), Some(image_uri(&repo, &digest).as_str()));
    let cfg = got.configuration().unwrap();
    assert_eq!(cfg.code_sha256(), Some(digest.trim_start_matches("sha256:")));

    let out = invoke(&aws, &name, None, json!({"echo": "hi"})).await;
    assert_eq!(out.function_error, None, "{}", out.payload);
    assert_eq!(out.payload["variant"], "a", "the image's own ENV reaches the process");

    // Moving the tag does not change what the function runs: it is pinned to the digest.
    fixture::push_image(&repo, "a", "moved");
    let out = invoke(&aws, &name, None, json!({})).await;
    assert_eq!(out.payload["variant"], "a");
}

#[tokio::test]
async fn handler_errors_timeouts_and_crashes_come_back_as_function_errors() {
    let aws = aws().await;
    let (repo, _) = repo_with_image(&aws).await;
    let name = image_function(&aws, &repo, "a").await;
    aws.lambda.update_function_configuration().function_name(&name).timeout(1).send().await.unwrap();
    wait::function_settled(&aws.lambda, &name).await;

    let err = invoke(&aws, &name, None, json!({"fail": {"type": "SmokeTestFailed", "message": "bad output"}})).await;
    assert_eq!(err.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(err.payload["errorType"], "SmokeTestFailed");
    assert_eq!(err.payload["errorMessage"], "bad output");

    let slow = invoke(&aws, &name, None, json!({"sleepMs": 3000})).await;
    assert_eq!(slow.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(slow.payload["errorType"], "Sandbox.Timedout");
    assert!(slow.payload["errorMessage"].as_str().unwrap().contains("Task timed out after 1.00 seconds"));

    let crash = invoke(&aws, &name, None, json!({"exit": 7})).await;
    assert_eq!(crash.payload["errorType"], "Runtime.ExitError");
    assert!(crash.payload["errorMessage"].as_str().unwrap().contains("exit status 7"), "{}", crash.payload);

    // A fresh sandbox serves the next invocation.
    let ok = invoke(&aws, &name, None, json!({"echo": 1})).await;
    assert_eq!(ok.function_error, None, "{}", ok.payload);
}

// ---------------------------------------------------------------------------------------------
// Lambda fidelity: lifecycle, preconditions, versions, aliases
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn updates_go_in_progress_then_successful_and_block_other_writes_meanwhile() {
    let aws = aws().await;
    let (repo, _) = repo_with_image(&aws).await;
    let digest_b = fixture::push_image(&repo, "b", "b");
    let name = image_function(&aws, &repo, "a").await;

    let upd =
        aws.lambda.update_function_code().function_name(&name).image_uri(image_uri(&repo, "b")).send().await.unwrap();
    assert_eq!(upd.last_update_status(), Some(&LastUpdateStatus::InProgress));
    assert_eq!(upd.code_sha256(), Some(digest_b.trim_start_matches("sha256:")));

    // While the update runs, other writes are refused as AWS does.
    let again = aws.lambda.update_function_configuration().function_name(&name).timeout(9).send().await;
    let e = again.expect_err("update during update");
    assert_eq!(code(&e), "ResourceConflictException");
    assert!(e.message().unwrap_or("").contains("An update is in progress"), "{e:?}");
    let publish = aws.lambda.publish_version().function_name(&name).send().await;
    assert_eq!(code(&publish.expect_err("publish during update")), "ResourceConflictException");
    // ... and $LATEST keeps serving the previous code until the update succeeds.
    let during = invoke(&aws, &name, None, json!({})).await;
    assert_eq!(during.payload["variant"], "a");

    let cfg = wait::function_settled(&aws.lambda, &name).await;
    assert_eq!(cfg.last_update_status(), Some(&LastUpdateStatus::Successful));
    assert_eq!(invoke(&aws, &name, None, json!({})).await.payload["variant"], "b");
}

#[tokio::test]
async fn an_update_whose_code_cannot_start_fails_with_a_reason() {
    let aws = aws().await;
    let (repo, _) = repo_with_image(&aws).await;
    let name = image_function(&aws, &repo, "a").await;
    aws.lambda
        .update_function_configuration()
        .function_name(&name)
        .environment(Environment::builder().variables("FIXTURE_INIT", "exit").build())
        .send()
        .await
        .unwrap();
    let cfg = wait::function_settled(&aws.lambda, &name).await;
    assert_eq!(cfg.last_update_status(), Some(&LastUpdateStatus::Failed), "{cfg:?}");
    let reason = cfg.last_update_status_reason().unwrap_or_default();
    assert!(reason.contains("Runtime.ExitError") && reason.contains("exit status 3"), "{reason}");

    // A runtime that reports its failed init through /runtime/init/error: the reason carries its error type.
    aws.lambda
        .update_function_configuration()
        .function_name(&name)
        .environment(Environment::builder().variables("FIXTURE_INIT", "report").build())
        .send()
        .await
        .unwrap();
    let cfg = wait::function_settled(&aws.lambda, &name).await;
    assert_eq!(cfg.last_update_status(), Some(&LastUpdateStatus::Failed), "{cfg:?}");
    let reason = cfg.last_update_status_reason().unwrap_or_default();
    assert!(reason.contains("Fixture.InitError") && reason.contains("told to fail its init"), "{reason}");

    // An image that is not in the repository is refused at once, naming it.
    let missing = aws
        .lambda
        .update_function_code()
        .function_name(&name)
        .image_uri(image_uri(&repo, "nope"))
        .send()
        .await
        .expect_err("missing image");
    assert_eq!(code(&missing), "InvalidParameterValueException");
    assert!(missing.message().unwrap_or("").contains("does not exist"), "{missing:?}");
}

#[tokio::test]
async fn revision_id_preconditions_guard_every_write() {
    let aws = aws().await;
    let (repo, _) = repo_with_image(&aws).await;
    let name = image_function(&aws, &repo, "a").await;
    let stale = "00000000-0000-0000-0000-000000000000";

    let e = aws.lambda.update_function_configuration().function_name(&name).timeout(4).revision_id(stale).send().await;
    assert_eq!(code(&e.expect_err("stale config update")), "PreconditionFailedException");
    let e = aws
        .lambda
        .update_function_code()
        .function_name(&name)
        .image_uri(image_uri(&repo, "a"))
        .revision_id(stale)
        .send()
        .await;
    assert_eq!(code(&e.expect_err("stale code update")), "PreconditionFailedException");
    let e = aws.lambda.publish_version().function_name(&name).revision_id(stale).send().await;
    assert_eq!(code(&e.expect_err("stale publish")), "PreconditionFailedException");

    let current = aws.lambda.get_function_configuration().function_name(&name).send().await.unwrap();
    let v1 = aws
        .lambda
        .publish_version()
        .function_name(&name)
        .revision_id(current.revision_id().unwrap())
        .send()
        .await
        .unwrap();
    let alias = aws
        .lambda
        .create_alias()
        .function_name(&name)
        .name("live")
        .function_version(v1.version().unwrap())
        .send()
        .await
        .unwrap();
    let e = aws
        .lambda
        .update_alias()
        .function_name(&name)
        .name("live")
        .function_version("1")
        .revision_id(stale)
        .send()
        .await;
    assert_eq!(code(&e.expect_err("stale alias update")), "PreconditionFailedException");
    let moved = aws
        .lambda
        .update_alias()
        .function_name(&name)
        .name("live")
        .description("moved with the right revision")
        .revision_id(alias.revision_id().unwrap())
        .send()
        .await
        .unwrap();
    assert_ne!(moved.revision_id(), alias.revision_id(), "an alias update changes its RevisionId");
}

#[tokio::test]
async fn versions_are_immutable_and_publish_is_guarded_by_code_sha256() {
    let aws = aws().await;
    let (repo, digest_a) = repo_with_image(&aws).await;
    let digest_b = fixture::push_image(&repo, "b", "b");
    let name = image_function(&aws, &repo, "a").await;

    let wrong = aws
        .lambda
        .publish_version()
        .function_name(&name)
        .code_sha256(digest_b.trim_start_matches("sha256:"))
        .send()
        .await;
    let e = wrong.expect_err("publish with another CodeSha256");
    assert_eq!(code(&e), "InvalidParameterValueException");
    assert!(e.message().unwrap_or("").contains("is different from current CodeSHA256"), "{e:?}");

    let v1 = aws
        .lambda
        .publish_version()
        .function_name(&name)
        .code_sha256(digest_a.trim_start_matches("sha256:"))
        .description("first")
        .send()
        .await
        .unwrap();
    assert_eq!(v1.version(), Some("1"));
    // Nothing changed: publishing again returns the same version.
    let again = aws.lambda.publish_version().function_name(&name).send().await.unwrap();
    assert_eq!(again.version(), Some("1"));

    aws.lambda.update_function_code().function_name(&name).image_uri(image_uri(&repo, "b")).send().await.unwrap();
    wait::function_settled(&aws.lambda, &name).await;
    let v2 = aws.lambda.publish_version().function_name(&name).send().await.unwrap();
    assert_eq!(v2.version(), Some("2"));

    // Version 1 still has its own image and code, and runs it.
    let got1 = aws.lambda.get_function().function_name(&name).qualifier("1").send().await.unwrap();
    assert_eq!(got1.code().unwrap().resolved_image_uri(), Some(image_uri(&repo, &digest_a).as_str()));
    assert_eq!(got1.configuration().unwrap().code_sha256(), Some(digest_a.trim_start_matches("sha256:")));
    assert_eq!(got1.configuration().unwrap().description(), Some("first"));
    let r1 = invoke(&aws, &name, Some("1"), json!({})).await;
    let r2 = invoke(&aws, &name, Some("2"), json!({})).await;
    assert_eq!((r1.payload["variant"].as_str(), r1.executed_version.as_str()), (Some("a"), "1"));
    assert_eq!((r2.payload["variant"].as_str(), r2.executed_version.as_str()), (Some("b"), "2"));
    assert_eq!(r1.payload["functionVersion"], "1");

    let versions = aws.lambda.list_versions_by_function().function_name(&name).send().await.unwrap();
    let labels: Vec<_> = versions.versions().iter().filter_map(|v| v.version()).collect();
    assert_eq!(labels, ["$LATEST", "1", "2"]);
}

#[tokio::test]
async fn alias_routing_config_is_validated_as_aws_does() {
    let aws = aws().await;
    let (repo, _) = repo_with_image(&aws).await;
    fixture::push_image(&repo, "b", "b");
    let name = image_function(&aws, &repo, "a").await;
    aws.lambda.publish_version().function_name(&name).send().await.unwrap();
    aws.lambda.update_function_code().function_name(&name).image_uri(image_uri(&repo, "b")).send().await.unwrap();
    wait::function_settled(&aws.lambda, &name).await;
    aws.lambda.publish_version().function_name(&name).send().await.unwrap();

    let weights = |pairs: &[(&str, f64)]| {
        let mut b = AliasRoutingConfiguration::builder();
        for (v, w) in pairs {
            b = b.additional_version_weights(*v, *w);
        }
        b.build()
    };
    let try_alias = |version: &'static str, routing: AliasRoutingConfiguration| {
        let lambda = aws.lambda.clone();
        let name = name.clone();
        async move {
            lambda
                .create_alias()
                .function_name(&name)
                .name(unique("a"))
                .function_version(version)
                .routing_config(routing)
                .send()
                .await
        }
    };
    let cases: Vec<(&str, &'static str, AliasRoutingConfiguration, &str)> = vec![
        ("weight above 1", "1", weights(&[("2", 1.5)]), "ValidationException"),
        ("negative weight", "1", weights(&[("2", -0.1)]), "ValidationException"),
        ("$LATEST as the extra version", "1", weights(&[("$LATEST", 0.5)]), "ValidationException"),
        ("two extra versions", "1", weights(&[("2", 0.1), ("3", 0.1)]), "ValidationException"),
        ("routing from $LATEST", "$LATEST", weights(&[("2", 0.5)]), "InvalidParameterValueException"),
        ("the same version twice", "2", weights(&[("2", 0.5)]), "InvalidParameterValueException"),
        ("an unpublished version", "1", weights(&[("9", 0.5)]), "ResourceNotFoundException"),
    ];
    for (what, version, routing, want) in cases {
        let e = try_alias(version, routing).await.expect_err(what);
        assert_eq!(code(&e), want, "{what}: {e:?}");
    }
    let ok = try_alias("1", weights(&[("2", 0.25)])).await.unwrap();
    assert_eq!(ok.routing_config().unwrap().additional_version_weights().unwrap().get("2"), Some(&0.25));

    // Version 3 runs with another execution role: an alias may not route between it and version 2
    let iam = aws_sdk_iam::Client::new(&sdk::config().await);
    let other_role = sdk::role(&iam, "local-aws-self-test-other").await;
    aws.lambda.update_function_configuration().function_name(&name).role(&other_role).send().await.unwrap();
    wait::function_settled(&aws.lambda, &name).await;
    assert_eq!(aws.lambda.publish_version().function_name(&name).send().await.unwrap().version(), Some("3"));
    let e = try_alias("2", weights(&[("3", 0.1)])).await.expect_err("two execution roles");
    assert_eq!(code(&e), "InvalidParameterValueException", "{e:?}");
    assert!(e.message().unwrap_or_default().contains("same execution role"), "{e:?}");
    try_alias("3", AliasRoutingConfiguration::builder().build()).await.expect("all of it on one version is fine");
}

#[tokio::test]
async fn a_weighted_alias_routes_by_its_weights_and_reports_the_executed_version() {
    let aws = aws().await;
    let (repo, _) = repo_with_image(&aws).await;
    fixture::push_image(&repo, "b", "b");
    let name = image_function(&aws, &repo, "a").await;
    aws.lambda.publish_version().function_name(&name).send().await.unwrap();
    aws.lambda.update_function_code().function_name(&name).image_uri(image_uri(&repo, "b")).send().await.unwrap();
    wait::function_settled(&aws.lambda, &name).await;
    aws.lambda.publish_version().function_name(&name).send().await.unwrap();
    let route = |w: f64| AliasRoutingConfiguration::builder().additional_version_weights("2", w).build();
    aws.lambda
        .create_alias()
        .function_name(&name)
        .name("live")
        .function_version("1")
        .routing_config(route(0.5))
        .send()
        .await
        .unwrap();

    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..40 {
        let out = invoke(&aws, &name, Some("live"), json!({})).await;
        let expected_variant = if out.executed_version == "1" { "a" } else { "b" };
        assert_eq!(out.payload["variant"], expected_variant, "ExecutedVersion names the code that ran");
        *seen.entry(out.executed_version).or_insert(0) += 1;
    }
    // 40 draws at 50%: both sides appear unless something is wrong (chance of a miss: 2 in 10^12).
    assert!(seen.get("1").copied().unwrap_or(0) > 0 && seen.get("2").copied().unwrap_or(0) > 0, "{seen:?}");

    for (weight, only) in [(0.0, "1"), (1.0, "2")] {
        aws.lambda.update_alias().function_name(&name).name("live").routing_config(route(weight)).send().await.unwrap();
        for _ in 0..5 {
            assert_eq!(invoke(&aws, &name, Some("live"), json!({})).await.executed_version, only, "weight {weight}");
        }
    }
}

#[tokio::test]
async fn reserved_concurrency_zero_throttles_and_counts_throttles() {
    let aws = aws().await;
    let (repo, _) = repo_with_image(&aws).await;
    let name = image_function(&aws, &repo, "a").await;
    aws.lambda.put_function_concurrency().function_name(&name).reserved_concurrent_executions(0).send().await.unwrap();
    let e = aws.lambda.invoke().function_name(&name).payload(Blob::new("{}")).send().await.expect_err("throttled");
    assert_eq!(code(&e), "TooManyRequestsException");
    let sum = metric_sum(&aws, "Throttles", &[("FunctionName", &name)]).await;
    assert_eq!(sum, 1.0);
    // Through an alias: the throttle counts for the alias, and for no ExecutedVersion (none ran).
    let version = aws.lambda.publish_version().function_name(&name).send().await.unwrap();
    let v = version.version().unwrap();
    aws.lambda.create_alias().function_name(&name).name("live").function_version(v).send().await.unwrap();
    let e = aws.lambda.invoke().function_name(&name).qualifier("live").send().await.expect_err("throttled");
    assert_eq!(code(&e), "TooManyRequestsException");
    let resource = format!("{name}:live");
    let by_alias = [("FunctionName", name.as_str()), ("Resource", resource.as_str())];
    assert_eq!(metric_sum(&aws, "Throttles", &by_alias).await, 1.0);
    let by_version = [("FunctionName", name.as_str()), ("Resource", resource.as_str()), ("ExecutedVersion", v)];
    assert_eq!(metric_sum(&aws, "Throttles", &by_version).await, 0.0);
    aws.lambda.delete_function_concurrency().function_name(&name).send().await.unwrap();
    assert_eq!(invoke(&aws, &name, None, json!({})).await.function_error, None);
}

// ---------------------------------------------------------------------------------------------
// Metrics and logs
// ---------------------------------------------------------------------------------------------

/// The sum of a metric over the last ten minutes, read once local AWS's ingest lag has passed for what
/// was invoked before the call.
async fn metric_sum(aws: &Aws, metric: &str, dims: &[(&str, &str)]) -> f64 {
    tokio::time::sleep(Duration::from_secs_f64(sdk::metric_lag_seconds().await + 1.0)).await;
    metric_points(aws, metric, dims, 60).await.iter().map(|(_, sum)| sum).sum()
}

/// (timestamp in seconds, sum) of each datapoint of the last ten minutes, as CloudWatch has them now.
async fn metric_points(aws: &Aws, metric: &str, dims: &[(&str, &str)], period: i32) -> Vec<(i64, f64)> {
    use aws_sdk_cloudwatch::types::{Dimension, Statistic};
    use aws_smithy_types::DateTime;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let mut req = aws
        .cloudwatch
        .get_metric_statistics()
        .namespace("AWS/Lambda")
        .metric_name(metric)
        .start_time(DateTime::from_secs(now - 600))
        .end_time(DateTime::from_secs(now + 60))
        .period(period)
        .statistics(Statistic::Sum);
    for (k, v) in dims {
        req = req.dimensions(Dimension::builder().name(*k).value(*v).build());
    }
    let out = req.send().await.unwrap();
    out.datapoints().iter().filter_map(|d| Some((d.timestamp()?.secs(), d.sum()?))).collect()
}

#[tokio::test]
async fn a_datapoint_is_visible_only_after_the_ingest_lag_and_keeps_the_invocation_time() {
    let aws = aws().await;
    let lag = sdk::metric_lag_seconds().await;
    assert!(lag >= 2.0, "this test needs an ingest lag of 2 s or more (LOCAL_AWS_METRIC_LAG_SECONDS), not {lag}");
    let name = zip_function(&aws, "lt-lag", 10, &[]).await;
    let dims = [("FunctionName", name.as_str())];
    // Read right after the invocation, the datapoint is not there yet. A loaded machine may take longer than
    // the lag between the two calls: then the look proves nothing and is made again.
    let mut invoked = 0;
    let mut seen_missing = false;
    let mut invoked_at = Vec::new();
    for _ in 0..5 {
        let before = std::time::Instant::now();
        invoke(&aws, &name, None, json!({})).await;
        invoked += 1;
        invoked_at.push(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64);
        let points = metric_points(&aws, "Invocations", &dims, 1).await;
        if before.elapsed().as_secs_f64() < lag - 1.0 {
            assert_eq!(points, Vec::new(), "a datapoint was visible {:?} after the invocation", before.elapsed());
            seen_missing = true;
            break;
        }
    }
    assert!(seen_missing, "no invocation was answered and read inside the {lag} s lag");
    // Once the lag has passed it is there, stamped with the invocation's second, not the second it arrived.
    let deadline = std::time::Instant::now() + Duration::from_secs_f64(lag + 30.0);
    let points = loop {
        let points = metric_points(&aws, "Invocations", &dims, 1).await;
        if points.iter().map(|(_, s)| s).sum::<f64>() >= f64::from(invoked) {
            break points;
        }
        assert!(std::time::Instant::now() < deadline, "the datapoints never arrived: {points:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let last = *invoked_at.last().unwrap();
    assert!(points.iter().all(|(t, _)| *t <= last), "datapoints {points:?} stamped after the invocation at {last}");
}

#[tokio::test]
async fn invocations_publish_lambda_metrics_by_function_resource_and_executed_version() {
    let aws = aws().await;
    let (repo, _) = repo_with_image(&aws).await;
    let name = image_function(&aws, &repo, "a").await;
    aws.lambda.publish_version().function_name(&name).send().await.unwrap();
    aws.lambda.create_alias().function_name(&name).name("live").function_version("1").send().await.unwrap();
    for _ in 0..3 {
        invoke(&aws, &name, Some("live"), json!({})).await;
    }
    invoke(&aws, &name, Some("live"), json!({"fail": {"type": "Boom"}})).await;

    let resource = format!("{name}:live");
    let by_version = [("FunctionName", name.as_str()), ("Resource", resource.as_str()), ("ExecutedVersion", "1")];
    assert_eq!(metric_sum(&aws, "Invocations", &by_version).await, 4.0);
    assert_eq!(metric_sum(&aws, "Errors", &by_version).await, 1.0);
    assert_eq!(metric_sum(&aws, "Invocations", &[("FunctionName", &name)]).await, 4.0);
    assert_eq!(
        metric_sum(&aws, "Invocations", &[("FunctionName", name.as_str()), ("Resource", resource.as_str())]).await,
        4.0
    );
    assert!(metric_sum(&aws, "Duration", &by_version).await > 0.0);
}

#[tokio::test]
async fn logs_receive_what_the_code_prints_in_text_and_json_formats() {
    let aws = aws().await;
    let (repo, _) = repo_with_image(&aws).await;
    let name = image_function(&aws, &repo, "a").await;
    invoke(&aws, &name, None, json!({"print": "text-marker-7731"})).await;
    let group = format!("/aws/lambda/{name}");
    let messages = log_messages(&aws, &group).await;
    assert!(messages.iter().any(|m| m == "text-marker-7731"), "{messages:?}");
    assert!(messages.iter().any(|m| m.starts_with("START RequestId:")));
    assert!(
        messages.iter().any(|m| m.starts_with("REPORT RequestId:") && m.contains("Init Duration:")),
        "{messages:?}"
    );

    let custom = format!("/custom/{name}");
    aws.lambda
        .update_function_configuration()
        .function_name(&name)
        .logging_config(LoggingConfig::builder().log_format(LogFormat::Json).log_group(&custom).build())
        .send()
        .await
        .unwrap();
    wait::function_settled(&aws.lambda, &name).await;
    let out = invoke(&aws, &name, None, json!({"echo": 1})).await;
    assert_eq!(out.payload["logFormat"], "JSON");
    assert_eq!(out.payload["logGroup"], custom.as_str());
    let messages = log_messages(&aws, &custom).await;
    let records: Vec<Value> = messages.iter().filter_map(|m| serde_json::from_str(m).ok()).collect();
    assert!(
        records.iter().any(|r| r["type"] == "platform.report" && r["record"]["metrics"]["durationMs"].is_number()),
        "{messages:?}"
    );
    assert!(
        records.iter().any(|r| r["fields"]["message"] == "fixture handled an event"),
        "the code's tracing is JSON: {messages:?}"
    );
}

async fn log_messages(aws: &Aws, group: &str) -> Vec<String> {
    let out = aws.logs.filter_log_events().log_group_name(group).send().await.unwrap();
    out.events().iter().filter_map(|e| e.message().map(str::to_string)).collect()
}

// ---------------------------------------------------------------------------------------------
// ECR events, EventBridge delivery, Step Functions
// ---------------------------------------------------------------------------------------------

async fn state_machine(aws: &Aws, definition: Value) -> String {
    aws.sfn
        .create_state_machine()
        .name(unique("sm"))
        .definition(definition.to_string())
        .role_arn(&aws.role)
        .send()
        .await
        .unwrap()
        .state_machine_arn()
        .to_string()
}

#[tokio::test]
async fn an_ecr_push_reaches_step_functions_and_lambda_through_eventbridge() {
    use aws_sdk_eventbridge::types::{InputTransformer, Target};
    let aws = aws().await;
    let repo = unique("pushed");
    aws.ecr.create_repository().repository_name(&repo).send().await.unwrap();
    let (fixture_repo, _) = repo_with_image(&aws).await;
    let listener = image_function(&aws, &fixture_repo, "a").await;
    let sm = state_machine(&aws, json!({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": true}}})).await;

    let rule = unique("on-push");
    let pattern = json!({"source": ["aws.ecr"], "detail-type": ["ECR Image Action"],
        "detail": {"action-type": ["PUSH"], "result": ["SUCCESS"], "repository-name": [repo.clone()]}});
    let rule_arn = aws.events.put_rule().name(&rule).event_pattern(pattern.to_string()).send().await.unwrap();
    let transformer = InputTransformer::builder()
        .input_paths_map("digest", "$.detail.image-digest")
        .input_paths_map("tag", "$.detail.image-tag")
        .input_template(r#"{"digest": "<digest>", "tag": "<tag>", "print": "<digest>"}"#)
        .build()
        .unwrap();
    aws.events
        .put_targets()
        .rule(&rule)
        .targets(Target::builder().id("sfn").arn(&sm).role_arn(&aws.role).build().unwrap())
        .targets(
            Target::builder()
                .id("fn")
                .arn(format!("arn:aws:lambda:us-east-1:123456789012:function:{listener}"))
                .input_transformer(transformer)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    aws.lambda
        .add_permission()
        .function_name(&listener)
        .statement_id("events")
        .action("lambda:InvokeFunction")
        .principal("events.amazonaws.com")
        .source_arn(rule_arn.rule_arn().unwrap())
        .send()
        .await
        .unwrap();

    // WHEN an image is pushed to the repository
    let digest = fixture::push_image(&repo, "v1", "a");

    // THEN the state machine ran with ECR's event as input ...
    let mut input = None;
    for _ in 0..100 {
        let execs = aws.sfn.list_executions().state_machine_arn(&sm).send().await.unwrap();
        if let Some(e) = execs.executions().first() {
            let d = aws.sfn.describe_execution().execution_arn(e.execution_arn()).send().await.unwrap();
            input = d.input().map(str::to_string);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let event: Value = serde_json::from_str(&input.expect("an execution started")).unwrap();
    assert_eq!(event["source"], "aws.ecr");
    assert_eq!(event["detail-type"], "ECR Image Action");
    assert_eq!(event["account"], sdk::ACCOUNT);
    assert_eq!(event["detail"]["image-digest"], digest.as_str());
    assert_eq!(event["detail"]["image-tag"], "v1");
    assert_eq!(event["detail"]["repository-name"], repo.as_str());

    // ... and the Lambda target got the transformed input (it printed the digest to its log).
    let group = format!("/aws/lambda/{listener}");
    let mut found = false;
    for _ in 0..100 {
        if log_messages(&aws, &group).await.iter().any(|m| m == &digest) {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(found, "the Lambda target did not log {digest}");

    // A push to another repository matches nothing.
    let other = unique("other");
    aws.ecr.create_repository().repository_name(&other).send().await.unwrap();
    fixture::push_image(&other, "v1", "a");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let execs = aws.sfn.list_executions().state_machine_arn(&sm).send().await.unwrap();
    assert_eq!(execs.executions().len(), 1);
}

#[tokio::test]
async fn step_functions_runs_the_asl_against_real_lambda_code_with_retry_and_catch() {
    let aws = aws().await;
    let (repo, _) = repo_with_image(&aws).await;
    let name = image_function(&aws, &repo, "a").await;
    let fn_arn = format!("arn:aws:lambda:us-east-1:123456789012:function:{name}");
    let definition = json!({
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": fn_arn, "Payload.$": "$"},
                "ResultSelector": {"result.$": "$.Payload"},
                "Retry": [{"ErrorEquals": ["Lambda.TooManyRequestsException"], "IntervalSeconds": 1, "MaxAttempts": 3, "BackoffRate": 1.0}],
                "Catch": [{"ErrorEquals": ["SmokeTestFailed"], "ResultPath": "$.caught", "Next": "Caught"}],
                "End": true
            },
            "Caught": {"Type": "Pass", "End": true}
        }
    });
    let sm = state_machine(&aws, definition).await;

    // GIVEN Invoke throttles twice for this function
    let fault = faults::inject(json!({"service": "lambda", "operation": "Invoke", "error": "TooManyRequestsException", "count": 2, "match": name})).await;
    let id = fault["faults"][0]["id"].as_u64().unwrap();
    // WHEN the state machine runs, THEN Retry absorbs the throttles and the real code answers
    let exec = aws
        .sfn
        .start_execution()
        .state_machine_arn(&sm)
        .name(unique("ok"))
        .input(json!({"echo": "through sfn"}).to_string())
        .send()
        .await
        .unwrap();
    let (status, output) = wait::execution_done(&aws.sfn, exec.execution_arn(), Duration::from_secs(60)).await;
    assert_eq!(status, "SUCCEEDED", "{output}");
    let output: Value = serde_json::from_str(&output).unwrap();
    assert_eq!(output["result"]["echo"], "through sfn");
    assert_eq!(faults::fired(id).await, 2);

    // A handler error's type is the error name Catch matches.
    let exec = aws
        .sfn
        .start_execution()
        .state_machine_arn(&sm)
        .name(unique("caught"))
        .input(json!({"fail": {"type": "SmokeTestFailed", "message": "wrong class"}}).to_string())
        .send()
        .await
        .unwrap();
    let (status, output) = wait::execution_done(&aws.sfn, exec.execution_arn(), Duration::from_secs(60)).await;
    assert_eq!(status, "SUCCEEDED", "{output}");
    let output: Value = serde_json::from_str(&output).unwrap();
    assert_eq!(output["caught"]["Error"], "SmokeTestFailed");
    assert!(output["caught"]["Cause"].as_str().unwrap().contains("wrong class"));
}

// ---------------------------------------------------------------------------------------------
// Fault injection and AWS's own errors
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn injected_faults_fire_count_times_per_operation_and_resource() {
    let aws = aws().await;
    let (repo, _) = repo_with_image(&aws).await;
    let name = image_function(&aws, &repo, "a").await;
    aws.lambda.publish_version().function_name(&name).send().await.unwrap();
    aws.lambda.create_alias().function_name(&name).name("live").function_version("1").send().await.unwrap();

    let f = faults::inject(json!({"service": "lambda", "operation": "UpdateAlias", "error": "TooManyRequestsException", "count": 2, "match": name})).await;
    let id = f["faults"][0]["id"].as_u64().unwrap();
    for _ in 0..2 {
        let e = aws
            .lambda
            .update_alias()
            .function_name(&name)
            .name("live")
            .description("x")
            .send()
            .await
            .expect_err("throttled");
        assert_eq!(code(&e), "TooManyRequestsException");
        assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(429));
    }
    aws.lambda
        .update_alias()
        .function_name(&name)
        .name("live")
        .description("x")
        .send()
        .await
        .expect("third call passes");
    assert_eq!(faults::fired(id).await, 2);

    // JSON-protocol services (ECR) and other error codes.
    let f = faults::inject(json!({"service": "ecr", "operation": "DescribeImages", "error": "ServerException", "status": 500, "count": 1, "match": repo})).await;
    let e = aws.ecr.describe_images().repository_name(&repo).send().await.expect_err("injected");
    assert_eq!(code(&e), "ServerException");
    assert_eq!(faults::fired(f["faults"][0]["id"].as_u64().unwrap()).await, 1);
    aws.ecr.describe_images().repository_name(&repo).send().await.expect("fault used up");

    for error in ["ServiceException", "ResourceConflictException", "PreconditionFailedException"] {
        faults::inject(
            json!({"service": "lambda", "operation": "PublishVersion", "error": error, "count": 1, "match": name}),
        )
        .await;
        let e = aws.lambda.publish_version().function_name(&name).send().await.expect_err(error);
        assert_eq!(code(&e), error);
    }

    // A timeout: the call hangs past the client's patience and nothing is done.
    faults::inject(json!({"service": "lambda", "operation": "UpdateFunctionConfiguration", "error": "timeout", "delaySeconds": 3, "count": 1, "match": name})).await;
    let cfg = sdk::config().await;
    let impatient = aws_sdk_lambda::Client::from_conf(
        aws_sdk_lambda::config::Builder::from(&cfg)
            .timeout_config(
                aws_sdk_lambda::config::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_millis(500))
                    .build(),
            )
            .build(),
    );
    let e = impatient
        .update_function_configuration()
        .function_name(&name)
        .memory_size(512)
        .send()
        .await
        .expect_err("times out");
    assert!(matches!(e, aws_sdk_lambda::error::SdkError::TimeoutError(_)), "{e:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cfg = aws.lambda.get_function_configuration().function_name(&name).send().await.unwrap();
    assert_eq!(cfg.memory_size(), Some(128), "the timed-out call changed nothing");
}

#[tokio::test]
async fn wrong_requests_get_the_errors_aws_gives() {
    let aws = aws().await;
    let (repo, _) = repo_with_image(&aws).await;
    let name = image_function(&aws, &repo, "a").await;

    let e = aws.lambda.get_function().function_name(unique("ghost")).send().await.expect_err("unknown function");
    assert_eq!(code(&e), "ResourceNotFoundException");
    assert!(e.message().unwrap().starts_with("Function not found: arn:aws:lambda:us-east-1:123456789012:function:"));

    let e = aws.lambda.invoke().function_name(&name).qualifier("7").send().await.expect_err("unknown version");
    assert_eq!(code(&e), "ResourceNotFoundException");

    let e = aws
        .lambda
        .update_function_configuration()
        .function_name(&name)
        .memory_size(64)
        .send()
        .await
        .expect_err("too little memory");
    assert_eq!(code(&e), "ValidationException");
    assert!(e.message().unwrap().contains("memorySize"), "{e:?}");

    let e = aws
        .lambda
        .update_function_configuration()
        .function_name(&name)
        .environment(Environment::builder().variables("AWS_REGION", "eu-west-1").build())
        .send()
        .await
        .expect_err("reserved variable");
    assert_eq!(code(&e), "InvalidParameterValueException");
    assert!(e.message().unwrap().contains("AWS_REGION"));

    let e = aws
        .lambda
        .create_function()
        .function_name(unique("norole"))
        .role("arn:aws:iam::123456789012:role/does-not-exist")
        .package_type(PackageType::Image)
        .code(FunctionCode::builder().image_uri(image_uri(&repo, "a")).build())
        .send()
        .await
        .expect_err("unknown role");
    assert_eq!(code(&e), "InvalidParameterValueException");
    assert!(e.message().unwrap().contains("cannot be assumed by Lambda"));

    let e = aws
        .lambda
        .create_function()
        .function_name(&name)
        .role(&aws.role)
        .package_type(PackageType::Image)
        .code(FunctionCode::builder().image_uri(image_uri(&repo, "a")).build())
        .send()
        .await
        .expect_err("exists");
    assert_eq!(code(&e), "ResourceConflictException");

    let e = aws
        .lambda
        .delete_function()
        .function_name(&name)
        .qualifier("$LATEST")
        .send()
        .await
        .expect_err("delete $LATEST");
    assert_eq!(code(&e), "InvalidParameterValueException");

    // A push to a repository that does not exist fails as ECR's does.
    let out =
        fixture::build_image(&unique("no-such-repo"), "x", &[]).env("BUILD_IMAGE_PUSH_ATTEMPTS", "1").output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not exist in the registry"), "{stderr}");
}

#[tokio::test]
async fn pending_and_failed_functions_refuse_invocations() {
    let aws = aws().await;
    let (repo, _) = repo_with_image(&aws).await;
    let name = unique("pending");
    aws.lambda
        .create_function()
        .function_name(&name)
        .role(&aws.role)
        .package_type(PackageType::Image)
        .code(FunctionCode::builder().image_uri(image_uri(&repo, "a")).build())
        .environment(Environment::builder().variables("FIXTURE_INIT", "exit").build())
        .send()
        .await
        .unwrap();
    let e = aws.lambda.invoke().function_name(&name).send().await.expect_err("pending");
    assert_eq!(code(&e), "ResourceConflictException");
    assert!(e.message().unwrap().contains("Pending"), "{e:?}");
    let cfg = wait::function_settled(&aws.lambda, &name).await;
    assert_eq!(cfg.state(), Some(&State::Failed), "{cfg:?}");
    assert!(cfg.state_reason().unwrap_or("").contains("exit status 3"), "{cfg:?}");
}

/// `scripts/build-image` with its own buildah storage under `root`, pushing `repo:tag` (variant `tag`).
fn build_image(root: &std::path::Path, repo: &str, tag: &str) -> std::process::Output {
    fixture::build_image(repo, tag, &[("VARIANT", tag)])
        .env("BUILDAH_ROOT", root)
        .output()
        .expect("scripts/build-image runs")
}

/// The images left in the buildah storage under `root`, as `repo:tag`.
fn stored_images(root: &std::path::Path) -> Vec<String> {
    let out = fixture::buildah(root)
        .args(["images", "--noheading", "--format", "{{.Name}}:{{.Tag}}"])
        .output()
        .expect("buildah runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim_start_matches("localhost/").to_string()).collect()
}

/// A new ECR repository and a buildah storage folder of its own (not yet made), for a build-image test.
async fn repo_and_storage(aws: &Aws, label: &str) -> (String, std::path::PathBuf) {
    let repo = unique(label);
    aws.ecr.create_repository().repository_name(&repo).send().await.unwrap();
    (repo, fixture::target_dir().join(unique(&format!("buildah-{label}"))))
}

/// Builds of one layer side by side, as the fault matrix runs them. A commit reuses a stored layer with the
/// same content; a finished build that removed its image then could delete that layer under the other build
/// ("layer not known"). Every build must succeed, and storage must hold the layer once.
#[tokio::test]
async fn image_builds_side_by_side_that_share_a_layer_all_succeed() {
    let aws = aws().await;
    let (repo, root) = repo_and_storage(&aws, "side-by-side").await;
    let builders: Vec<_> = (0..3)
        .map(|t| {
            let (root, repo) = (root.clone(), repo.clone());
            std::thread::spawn(move || {
                (0..5)
                    .filter_map(|i| {
                        let tag = format!("t{t}-{i}");
                        let out = build_image(&root, &repo, &tag);
                        (!out.status.success()).then(|| format!("{tag}: {}", String::from_utf8_lossy(&out.stderr)))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let failures: Vec<String> = builders.into_iter().flat_map(|b| b.join().unwrap()).collect();
    let layers = std::fs::read_dir(root.join("root/vfs/dir")).map(|d| d.count());
    let _ = std::fs::remove_dir_all(&root);
    assert!(failures.is_empty(), "{} of 15 builds failed:\n{}", failures.len(), failures.join("\n"));
    let layers = layers.expect("buildah's vfs storage has its layer folder");
    assert!(layers <= 1, "15 images of one layer left {layers} layer copies in storage");
    let pushed = aws.ecr.describe_images().repository_name(&repo).send().await.unwrap();
    assert_eq!(pushed.image_details().len(), 15);
}

/// The clean-up rule itself: a pushed image is removed from storage only when no other build is running
/// (one holds the shared lock here), and is kept, with a note saying why, while one is.
#[tokio::test]
async fn a_pushed_image_is_removed_from_storage_only_when_no_other_build_is_running() {
    let aws = aws().await;
    let (repo, root) = repo_and_storage(&aws, "cleanup").await;
    std::fs::create_dir_all(&root).unwrap();

    let other_build = std::fs::File::create(root.join("build-image.lock")).unwrap();
    other_build.lock_shared().unwrap();
    let kept = build_image(&root, &repo, "kept");
    drop(other_build);
    let removed = build_image(&root, &repo, "removed");
    let left = stored_images(&root);
    let _ = std::fs::remove_dir_all(&root);

    assert!(kept.status.success(), "{}", String::from_utf8_lossy(&kept.stderr));
    assert!(
        String::from_utf8_lossy(&kept.stderr).contains("another build is running"),
        "{}",
        String::from_utf8_lossy(&kept.stderr)
    );
    assert!(removed.status.success(), "{}", String::from_utf8_lossy(&removed.stderr));
    assert_eq!(left, vec![format!("{repo}:kept")]);
}

// ---------------------------------------------------------------------------------------------
// IAM, enforced (iam.py)
// ---------------------------------------------------------------------------------------------

/// A role the tests' account may assume, with one inline policy.
async fn assumable_role(iam: &aws_sdk_iam::Client, name: &str, policy: Value) -> String {
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{}:root", sdk::ACCOUNT), "Service": "lambda.amazonaws.com"},
        "Action": "sts:AssumeRole"}]});
    let arn = iam
        .create_role()
        .role_name(name)
        .assume_role_policy_document(trust.to_string())
        .send()
        .await
        .unwrap()
        .role()
        .unwrap()
        .arn()
        .to_string();
    iam.put_role_policy().role_name(name).policy_name("p").policy_document(policy.to_string()).send().await.unwrap();
    arn
}

fn fn_arn(name: &str) -> String {
    format!("arn:aws:lambda:{}:{}:function:{name}", sdk::REGION, sdk::ACCOUNT)
}

fn denied<E: ProvideErrorMetadata + std::fmt::Debug>(what: &str, r: Result<impl std::fmt::Debug, E>) -> String {
    let e = r.expect_err(&format!("{what}: expected AccessDenied"));
    let msg = e.message().unwrap_or_default().to_string();
    assert!(code(&e).starts_with("AccessDenied"), "{what}: {e:?}");
    msg
}

#[tokio::test]
async fn a_fault_aimed_at_a_caller_fires_only_on_that_roles_calls_and_usage_names_the_role() {
    let admin = sdk::config().await;
    let iam = aws_sdk_iam::Client::new(&admin);
    let ecr = aws_sdk_ecr::Client::new(&admin);
    let repo = unique("caller-fault");
    ecr.create_repository().repository_name(&repo).send().await.unwrap();
    let name = unique("fault-caller");
    let role = assumable_role(
        &iam,
        &name,
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ecr:DescribeImages", "Resource": "*"}]}),
    )
    .await;
    let as_role = aws_sdk_ecr::Client::from_conf(
        aws_sdk_ecr::config::Builder::from(&as_role(&role).await)
            .retry_config(aws_sdk_ecr::config::retry::RetryConfig::disabled())
            .build(),
    );
    let before = usage_of(&name, "DescribeImages").await;
    // GIVEN a fault on DescribeImages aimed at the role's calls
    let f = faults::inject(json!({"service": "ecr", "operation": "DescribeImages", "error": "ServerException",
                                  "status": 500, "count": 1, "match": repo, "caller": name}))
    .await;
    let id = f["faults"][0]["id"].as_u64().unwrap();
    // WHEN the administrator makes the call, THEN it is not the fault's target
    ecr.describe_images().repository_name(&repo).send().await.expect("the admin's call is not aimed at");
    assert_eq!(faults::fired(id).await, 0, "a fault aimed at a role fired on the administrator's call");
    // WHEN the role makes it, THEN it fails, once
    let e = as_role.describe_images().repository_name(&repo).send().await.expect_err("aimed at the role");
    assert_eq!(code(&e), "ServerException", "{e:?}");
    as_role.describe_images().repository_name(&repo).send().await.expect("the fault is used up");
    assert_eq!(faults::fired(id).await, 1);
    // AND the usage log counts both of the role's calls under its name
    assert_eq!(usage_of(&name, "DescribeImages").await - before, 2);

    // A caller that is not a role name is refused with a reason, and nothing is armed.
    let resp = reqwest::Client::new()
        .post(format!("{}/_local/faults", sdk::endpoint()))
        .json(&json!({"service": "ecr", "operation": "DescribeImages", "error": "X", "caller": 7}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.text().await.unwrap().contains("caller must be an IAM role name"));
    let resp = reqwest::Client::new()
        .post(format!("{}/_local/faults", sdk::endpoint()))
        .json(&json!({"service": "ecr", "operation": "DescribeImages", "error": "X", "calller": name}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400, "a misspelt field must not arm a fault aimed at everyone");
    assert!(faults::list().await.iter().all(|f| f["error"] != "X"));
}

/// Run the `aws` CLI against local AWS; its stdout, or the failure.
fn aws_cli(args: &[&str]) -> String {
    let out = std::process::Command::new("aws")
        .args(args)
        .args(["--region", sdk::REGION])
        .env("AWS_ENDPOINT_URL", sdk::endpoint())
        .output();
    let out = out.expect("the aws CLI runs");
    assert!(out.status.success(), "aws {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `aws cloudformation <verb>-stack` with `body`, then wait until it is complete.
async fn stack_op(verb: &'static str, stack: &str, body: String) {
    let stack = stack.to_string();
    tokio::task::spawn_blocking(move || {
        let op = format!("{verb}-stack");
        aws_cli(&[
            "cloudformation",
            &op,
            "--stack-name",
            &stack,
            "--template-body",
            &body,
            "--capabilities",
            "CAPABILITY_IAM",
        ]);
        aws_cli(&["cloudformation", "wait", &format!("stack-{verb}-complete"), "--stack-name", &stack]);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_policy_without_version_is_accepted_as_iam_defaults_it() {
    let iam = aws_sdk_iam::Client::new(&sdk::config().await);
    let name = unique("no-version");
    sdk::role(&iam, &name).await;
    let statement = json!([{"Effect": "Allow", "Action": "lambda:GetFunction", "Resource": "*"}]);
    let put = |doc: Value| {
        let (iam, name) = (iam.clone(), name.clone());
        async move { iam.put_role_policy().role_name(&name).policy_name("p").policy_document(doc.to_string()).send().await }
    };
    // A document with no Version (as SAM's policy templates write them) is taken, and kept as given
    put(json!({"Statement": statement})).await.expect("IAM defaults a missing Version to 2008-10-17");
    let got = iam.get_role_policy().role_name(&name).policy_name("p").send().await.unwrap();
    assert!(got.policy_document().contains("GetFunction"), "{got:?}");
    // ... and so is the current version; a Version IAM does not know is refused
    put(json!({"Version": "2012-10-17", "Statement": statement})).await.expect("the current version");
    let e = put(json!({"Version": "2011-01-01", "Statement": statement})).await.expect_err("an unknown Version");
    assert_eq!(code(&e), "MalformedPolicyDocument", "{e:?}");
}

#[tokio::test]
async fn a_stack_update_gives_a_role_the_templates_policies_and_takes_the_others_away() {
    let stack = unique("cfn-role");
    let template = |statements: Value, extra: Option<&str>| {
        let mut policies =
            vec![json!({"PolicyName": "main", "PolicyDocument": {"Version": "2012-10-17", "Statement": statements}})];
        if let Some(name) = extra {
            policies.push(json!({"PolicyName": name, "PolicyDocument": {"Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"}]}}));
        }
        json!({"Resources": {"R": {"Type": "AWS::IAM::Role", "Properties": {
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
            "Policies": policies}}}})
        .to_string()
    };
    let wide =
        json!([{"Effect": "Allow", "Action": "logs:CreateLogGroup", "Resource": "arn:aws:logs:*:*:log-group:*"}]);
    let narrow = json!([{"Effect": "Allow", "Action": "logs:CreateLogGroup", "Resource": "arn:aws:logs:*:*:log-group:/aws/lambda/x-*"}]);
    // GIVEN a stack whose role has two inline policies, one of them wide
    stack_op("create", &stack, template(wide, Some("extra"))).await;
    // WHEN an update narrows the one and drops the other
    stack_op("update", &stack, template(narrow, None)).await;
    let stack_ = stack.clone();
    let role = tokio::task::spawn_blocking(move || {
        let r = aws_cli(&[
            "cloudformation",
            "describe-stack-resource",
            "--stack-name",
            &stack_,
            "--logical-resource-id",
            "R",
            "--query",
            "StackResourceDetail.PhysicalResourceId",
            "--output",
            "text",
        ]);
        r.trim().to_string()
    })
    .await
    .unwrap();
    // THEN the role has exactly the template's policy, as the template now writes it
    let iam = aws_sdk_iam::Client::new(&sdk::config().await);
    let names = iam.list_role_policies().role_name(&role).send().await.unwrap().policy_names().to_vec();
    assert_eq!(names, ["main"], "the policy the template dropped is gone");
    let doc = iam.get_role_policy().role_name(&role).policy_name("main").send().await.unwrap();
    // (GetRolePolicy answers the document URL-encoded, as IAM does)
    let doc: Value = serde_json::from_str(&sdk::percent_decoded(doc.policy_document())).unwrap();
    assert_eq!(doc["Statement"][0]["Resource"], "arn:aws:logs:*:*:log-group:/aws/lambda/x-*", "{doc}");
}

#[tokio::test]
async fn a_stack_update_changes_a_rules_pattern_in_place() {
    let stack = unique("cfn-rule");
    let template = |source: &str| {
        json!({"Resources": {"R": {"Type": "AWS::Events::Rule", "Properties": {
            "EventPattern": {"source": [source]}, "State": "ENABLED"}}}})
        .to_string()
    };
    let rule_name = |stack: String| async move {
        tokio::task::spawn_blocking(move || {
            let args = ["cloudformation", "describe-stack-resource", "--stack-name", &stack, "--logical-resource-id"];
            let mut args: Vec<&str> = args.to_vec();
            args.extend(["R", "--query", "StackResourceDetail.PhysicalResourceId", "--output", "text"]);
            aws_cli(&args).trim().to_string()
        })
        .await
        .unwrap()
    };
    // GIVEN a stack with a rule
    stack_op("create", &stack, template("team.a")).await;
    let before = rule_name(stack.clone()).await;
    // WHEN an update changes its pattern
    stack_op("update", &stack, template("team.b")).await;
    // THEN it is the same rule (same name, so the same ARN a Lambda permission names), with the new pattern
    assert_eq!(rule_name(stack.clone()).await, before);
    let events = aws_sdk_eventbridge::Client::new(&sdk::config().await);
    let rule = events.describe_rule().name(&before).send().await.expect("the rule is still there");
    let pattern: Value = serde_json::from_str(rule.event_pattern().unwrap()).unwrap();
    assert_eq!(pattern["source"], json!(["team.b"]), "{pattern}");
}

/// The calls local AWS's usage log counts for `role`'s sessions and `operation`.
async fn usage_of(role: &str, operation: &str) -> u64 {
    let body: Value = reqwest::get(format!("{}/_local/usage", sdk::endpoint())).await.unwrap().json().await.unwrap();
    body["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["role"] == role && c["operation"] == operation)
        .map(|c| c["count"].as_u64().unwrap())
        .sum()
}

#[tokio::test]
async fn a_role_session_may_do_only_what_its_policies_allow() {
    let admin = sdk::config().await;
    let iam = aws_sdk_iam::Client::new(&admin);
    let name = unique("iam-probe");
    let allowed = format!("{name}-ok");
    let refused = format!("{name}-deny");
    // GIVEN a role allowed GetFunction on `<name>*` but explicitly denied it on `<name>-deny`
    let role = assumable_role(
        &iam,
        &name,
        json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["lambda:Get*"], "Resource": fn_arn(&format!("{name}*"))},
            {"Effect": "Deny", "Action": "lambda:GetFunction", "Resource": fn_arn(&refused)},
            {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": fn_arn(&format!("{allowed}:*"))}]}),
    )
    .await;
    let cfg = as_role(&role).await;
    let lambda = aws_sdk_lambda::Client::new(&cfg);

    // THEN an allowed action on an allowed resource reaches Lambda (which says the function does not exist) ...
    let e = lambda.get_function().function_name(&allowed).send().await.expect_err("no such function");
    assert_eq!(code(e.as_service_error().unwrap()), "ResourceNotFoundException", "{e:?}");
    // ... another function is refused, in AWS's words, naming the action, the resource and the session
    let other = unique("elsewhere");
    let msg = denied("GetFunction elsewhere", lambda.get_function().function_name(&other).send().await);
    assert!(msg.contains("is not authorized to perform: lambda:GetFunction"), "{msg}");
    assert!(msg.contains(&format!("on resource: {}", fn_arn(&other))), "{msg}");
    assert!(msg.contains(&format!("assumed-role/{name}/self-test")), "{msg}");
    assert!(msg.contains("no identity-based policy allows"), "{msg}");
    // ... an explicit Deny wins over the Allow
    let msg = denied("GetFunction denied", lambda.get_function().function_name(&refused).send().await);
    assert!(msg.contains("explicit deny"), "{msg}");
    // ... an action no statement names is refused (UpdateAlias is not lambda:Get*)
    denied(
        "UpdateAlias",
        lambda.update_alias().function_name(&allowed).name("live").function_version("1").send().await,
    );
    // ... Invoke is lambda:InvokeFunction on the qualified ARN: `<fn>:*` allows an alias, not $LATEST unqualified
    let e = lambda.invoke().function_name(&allowed).qualifier("live").send().await.expect_err("no function");
    assert_eq!(code(e.as_service_error().unwrap()), "ResourceNotFoundException", "{e:?}");
    let msg = denied("unqualified Invoke", lambda.invoke().function_name(&allowed).send().await);
    assert!(msg.contains("lambda:InvokeFunction"), "{msg}");
    // ... ListProvisionedConcurrencyConfigs is its own action, though Lambda serves it on Get's path
    let msg = denied(
        "ListProvisionedConcurrencyConfigs",
        lambda.list_provisioned_concurrency_configs().function_name(&allowed).send().await,
    );
    assert!(msg.contains("lambda:ListProvisionedConcurrencyConfigs"), "{msg}");
    // ... other services answer with their own code: Step Functions (JSON), CloudWatch (CBOR)
    denied("ListStateMachines", aws_sdk_sfn::Client::new(&cfg).list_state_machines().send().await);
    let msg =
        denied("DescribeAlarms", aws_sdk_cloudwatch::Client::new(&cfg).describe_alarms().alarm_names("x").send().await);
    assert!(msg.contains("alarm:x"), "each named alarm is the resource: {msg}");

    // WHEN the role's policy changes, THEN the next call is judged by the new policy
    iam.put_role_policy()
        .role_name(&name)
        .policy_name("sfn")
        .policy_document(
            json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "states:ListStateMachines", "Resource": "*"}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    aws_sdk_sfn::Client::new(&cfg).list_state_machines().send().await.expect("allowed after the policy change");

    // A session key local AWS never issued is refused.
    let forged = admin
        .clone()
        .into_builder()
        .credentials_provider(aws_sdk_lambda::config::SharedCredentialsProvider::new(
            aws_sdk_lambda::config::Credentials::new("ASIAFORGEDFORGED0000", "x", Some("y".into()), None, "forged"),
        ))
        .build();
    let e = aws_sdk_lambda::Client::new(&forged).get_function().function_name(&allowed).send().await.unwrap_err();
    assert_eq!(e.code(), Some("UnrecognizedClientException"), "{e:?}");
}

#[tokio::test]
async fn conditions_and_pass_role_are_evaluated() {
    let admin = sdk::config().await;
    let iam = aws_sdk_iam::Client::new(&admin);
    let name = unique("iam-pass");
    let target_role = sdk::role(&iam, "local-aws-self-test").await;
    // GIVEN a role that may create functions, pass roles only to Lambda, and list state machines only in another region
    let role = assumable_role(
        &iam,
        &name,
        json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "lambda:CreateFunction", "Resource": fn_arn(&format!("{name}*"))},
            {"Effect": "Allow", "Action": "iam:PassRole", "Resource": target_role.clone(),
             "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}},
            {"Effect": "Allow", "Action": "states:ListStateMachines", "Resource": "*",
             "Condition": {"StringEquals": {"aws:RequestedRegion": "eu-west-1"}}}]}),
    )
    .await;
    let cfg = as_role(&role).await;
    let create = || {
        aws_sdk_lambda::Client::new(&cfg)
            .create_function()
            .function_name(format!("{name}-fn"))
            .role(&target_role)
            .runtime(Runtime::Providedal2023)
            .handler("bootstrap")
            .code(FunctionCode::builder().zip_file(Blob::new(fixture::zip())).build())
            .send()
    };
    // THEN CreateFunction is refused for the role it hands over: iam:PassRole to lambda.amazonaws.com
    let msg = denied("CreateFunction without PassRole to Lambda", create().await);
    assert!(msg.contains("iam:PassRole") && msg.contains(&target_role), "{msg}");
    // ... and a condition on another region does not hold here
    denied("ListStateMachines in us-east-1", aws_sdk_sfn::Client::new(&cfg).list_state_machines().send().await);

    // WHEN PassRole is allowed to Lambda, THEN the function is created
    iam.put_role_policy()
        .role_name(&name)
        .policy_name("pass")
        .policy_document(
            json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "iam:PassRole", "Resource": target_role.clone(),
             "Condition": {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    create().await.expect("created once iam:PassRole is allowed");
}

#[tokio::test]
async fn a_function_calls_aws_with_its_execution_roles_session() {
    let aws = aws().await;
    let name = zip_function(&aws, "creds", 3, &[]).await;
    // WHEN the function's code uses the credentials Lambda gave it
    let out = invoke(&aws, &name, None, json!({"credentials": true})).await;
    let key = out.payload["accessKeyId"].as_str().unwrap().to_string();
    assert!(key.starts_with("ASIA"), "a role session's key: {key}");
    let creds = aws_sdk_lambda::config::Credentials::new(
        key,
        out.payload["secretAccessKey"].as_str().unwrap(),
        out.payload["sessionToken"].as_str().map(str::to_string),
        None,
        "function",
    );
    let cfg = sdk::config()
        .await
        .into_builder()
        .credentials_provider(aws_sdk_lambda::config::SharedCredentialsProvider::new(creds))
        .build();
    let lambda = aws_sdk_lambda::Client::new(&cfg);
    // THEN what its role allows works (the self-test role may invoke functions) ...
    lambda.invoke().function_name(&name).payload(Blob::new("{}")).send().await.expect("lambda:InvokeFunction");
    // ... and what it does not is refused, naming the function's own session
    let msg = denied("GetFunction", lambda.get_function().function_name(&name).send().await);
    assert!(msg.contains(&format!("assumed-role/local-aws-self-test/{name}")), "{msg}");
}

#[tokio::test]
async fn a_state_machine_task_runs_with_the_state_machines_role() {
    let aws = aws().await;
    let admin = sdk::config().await;
    let iam = aws_sdk_iam::Client::new(&admin);
    let (repo, _) = repo_with_image(&aws).await;
    let name = image_function(&aws, &repo, "a").await;
    // GIVEN a state machine whose role may invoke nothing
    let bare = unique("sm-bare-role");
    let bare_arn = assumable_role(
        &iam,
        &bare,
        json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "lambda:GetFunction", "Resource": "*"}]}),
    )
    .await;
    let definition = json!({"StartAt": "Call", "States": {"Call": {"Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": fn_arn(&name), "Payload": {"echo": 1}}, "End": true}}});
    let run = |role: String| {
        let sfn = aws.sfn.clone();
        let definition = definition.to_string();
        async move {
            let sm = sfn
                .create_state_machine()
                .name(unique("sm-iam"))
                .definition(definition)
                .role_arn(role)
                .send()
                .await
                .unwrap()
                .state_machine_arn()
                .to_string();
            let exec = sfn
                .start_execution()
                .state_machine_arn(&sm)
                .name(unique("x"))
                .send()
                .await
                .unwrap()
                .execution_arn()
                .to_string();
            for _ in 0..300 {
                let d = sfn.describe_execution().execution_arn(&exec).send().await.unwrap();
                if d.status() != &aws_sdk_sfn::types::ExecutionStatus::Running {
                    return d;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("execution {exec} did not end");
        }
    };
    // THEN its Task fails with Lambda's AccessDeniedException, naming lambda:InvokeFunction
    let d = run(bare_arn).await;
    assert_eq!(d.status(), &aws_sdk_sfn::types::ExecutionStatus::Failed, "{d:?}");
    assert!(d.error().unwrap_or_default().contains("AccessDenied"), "{d:?}");
    assert!(d.cause().unwrap_or_default().contains("lambda:InvokeFunction"), "{d:?}");
    // ... while the same definition under a role allowed to invoke succeeds
    let d = run(aws.role.clone()).await;
    assert_eq!(d.status(), &aws_sdk_sfn::types::ExecutionStatus::Succeeded, "{d:?}");
}

#[tokio::test]
async fn lambda_adds_its_pull_statement_to_a_repository_policy_only_for_a_caller_who_may() {
    let aws = aws().await;
    let admin = sdk::config().await;
    let iam = aws_sdk_iam::Client::new(&admin);
    let (repo, _) = repo_with_image(&aws).await;
    let name = unique("iam-pull");
    // GIVEN a repository with no policy, and a role that may create functions and pass the role, but not
    // read or set repository policies
    let statements = |extra: Vec<Value>| {
        let mut s = vec![
            json!({"Effect": "Allow", "Action": "lambda:CreateFunction", "Resource": fn_arn(&format!("{name}*"))}),
            json!({"Effect": "Allow", "Action": "iam:PassRole", "Resource": aws.role.clone()}),
        ];
        s.extend(extra);
        json!({"Version": "2012-10-17", "Statement": s})
    };
    let role = assumable_role(&iam, &name, statements(vec![])).await;
    let cfg = as_role(&role).await;
    let create_from = |repo: &str, suffix: &str| {
        aws_sdk_lambda::Client::new(&cfg)
            .create_function()
            .function_name(format!("{name}-{suffix}"))
            .role(&aws.role)
            .package_type(PackageType::Image)
            .code(FunctionCode::builder().image_uri(image_uri(repo, "a")).build())
            .send()
    };
    let create = |suffix: &str| create_from(&repo, suffix);
    // THEN Lambda refuses: it cannot pull, and the caller may not let it
    let msg = denied("CreateFunction from a repository Lambda may not pull", create("a").await);
    assert!(msg.contains("ecr:GetRepositoryPolicy") || msg.contains("ecr:SetRepositoryPolicy"), "{msg}");
    assert!(msg.contains(&repo), "{msg}");
    let policy = aws.ecr.get_repository_policy().repository_name(&repo).send().await;
    assert!(policy.is_err(), "nothing was written to the repository policy: {policy:?}");

    // WHEN the caller may read and set the repository's policy
    let repo_arn = format!("arn:aws:ecr:{}:{}:repository/{repo}", sdk::REGION, sdk::ACCOUNT);
    iam.put_role_policy()
        .role_name(&name)
        .policy_name("p")
        .policy_document(
            statements(vec![json!({"Effect": "Allow",
                "Action": ["ecr:GetRepositoryPolicy", "ecr:SetRepositoryPolicy"], "Resource": repo_arn})])
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    // THEN the function is created and the repository policy now lets lambda.amazonaws.com pull
    create("b").await.expect("created");
    let text = aws.ecr.get_repository_policy().repository_name(&repo).send().await.unwrap();
    let doc: Value = serde_json::from_str(text.policy_text().unwrap()).unwrap();
    let st = doc["Statement"].as_array().unwrap().iter().find(|s| s["Principal"]["Service"] == "lambda.amazonaws.com");
    let st = st.unwrap_or_else(|| panic!("no Lambda statement in {doc}"));
    assert_eq!(st["Action"], json!(["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]));
    // ... so a caller without those permissions can now create functions from it
    iam.put_role_policy()
        .role_name(&name)
        .policy_name("p")
        .policy_document(statements(vec![]).to_string())
        .send()
        .await
        .unwrap();
    create("c").await.expect("the repository policy already lets Lambda pull");

    // A policy whose statement is conditioned on the function (aws:sourceArn) lets Lambda pull only for
    // the functions it names: for others, Lambda would have to add its statement, and this caller may not.
    let (other_repo, _) = repo_with_image(&aws).await;
    let conditioned = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "lambda.amazonaws.com"}, "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
        "Condition": {"StringLike": {"aws:sourceArn": fn_arn(&format!("{name}-yes*"))}}}]});
    aws.ecr
        .set_repository_policy()
        .repository_name(&other_repo)
        .policy_text(conditioned.to_string())
        .send()
        .await
        .unwrap();
    create_from(&other_repo, "yes").await.expect("the condition names this function");
    denied("a function the condition does not name", create_from(&other_repo, "no").await);
}

#[tokio::test]
async fn an_execution_started_without_a_name_gets_a_unique_one() {
    let aws = aws().await;
    let sm = state_machine(&aws, json!({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": true}}})).await;
    // WHEN two executions are started without a name (as `aws stepfunctions start-execution` without --name does)
    let mut names = Vec::new();
    for _ in 0..2 {
        let arn = aws.sfn.start_execution().state_machine_arn(&sm).input("{}").send().await.unwrap();
        let d = aws.sfn.describe_execution().execution_arn(arn.execution_arn()).send().await.unwrap();
        names.push(d.name().unwrap_or_default().to_string());
    }
    // THEN each got its own generated name (a UUID, as Step Functions generates), not "None"
    for n in &names {
        assert_eq!(n.len(), 36, "a UUID: {n}");
        assert_eq!(n.matches('-').count(), 4, "a UUID: {n}");
    }
    assert_ne!(names[0], names[1]);
}

// ---------------------------------------------------------------------------------------------
// Step Functions' limits (moto's own, and stepfunctions.py)
// ---------------------------------------------------------------------------------------------

/// Run a definition to its end; the described execution.
async fn run_to_end(
    aws: &Aws,
    definition: Value,
    limit: Duration,
) -> aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput {
    let sm = state_machine(aws, definition).await;
    let exec = aws.sfn.start_execution().state_machine_arn(&sm).name(unique("x")).send().await.unwrap();
    let deadline = std::time::Instant::now() + limit;
    loop {
        let d = aws.sfn.describe_execution().execution_arn(exec.execution_arn()).send().await.unwrap();
        if d.status() != &aws_sdk_sfn::types::ExecutionStatus::Running {
            return d;
        }
        assert!(std::time::Instant::now() < deadline, "execution still running after {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_execution_fails_when_its_history_reaches_25000_events() {
    let aws = aws().await;
    // A Pass state that loops forever: two events a pass.
    let d = run_to_end(
        &aws,
        json!({"StartAt": "Loop", "States": {"Loop": {"Type": "Pass", "Next": "Loop"}}}),
        Duration::from_secs(300),
    )
    .await;
    assert_eq!(d.status(), &aws_sdk_sfn::types::ExecutionStatus::Failed, "{d:?}");
    assert_eq!(d.error(), Some("States.Runtime"), "{d:?}");
    assert!(d.cause().unwrap_or_default().contains("25000"), "{d:?}");
    let history =
        aws.sfn.get_execution_history().execution_arn(d.execution_arn()).max_results(1000).send().await.unwrap();
    let mut count = history.events().len();
    let mut token = history.next_token().map(str::to_string);
    while let Some(t) = token {
        let page = aws.sfn.get_execution_history().execution_arn(d.execution_arn()).next_token(t).send().await.unwrap();
        count += page.events().len();
        token = page.next_token().map(str::to_string);
    }
    assert_eq!(count, 25_000, "the history holds exactly the quota");
}

#[tokio::test]
async fn a_state_over_256_kib_fails_the_execution_and_states_all_does_not_catch_it() {
    let aws = aws().await;
    let (repo, _) = repo_with_image(&aws).await;
    let name = image_function(&aws, &repo, "a").await;
    let definition = |pad: u64| {
        json!({"StartAt": "Big", "States": {
            "Big": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": fn_arn(&name), "Payload": {"pad": pad}},
                    "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}], "End": true},
            "Caught": {"Type": "Pass", "End": true}}})
    };
    // An answer of 300 KB: the state's output is over 262,144 bytes.
    let d = run_to_end(&aws, definition(300_000), Duration::from_secs(60)).await;
    assert_eq!(d.status(), &aws_sdk_sfn::types::ExecutionStatus::Failed, "{d:?}");
    assert_eq!(d.error(), Some("States.DataLimitExceeded"), "not caught by States.ALL: {d:?}");
    // One of 200 KB fits (the Task's result wraps it with the invocation's metadata).
    let d = run_to_end(&aws, definition(200_000), Duration::from_secs(60)).await;
    assert_eq!(d.status(), &aws_sdk_sfn::types::ExecutionStatus::Succeeded, "{d:?}");
}

#[tokio::test]
async fn an_execution_past_its_timeout_times_out_and_a_slow_task_fails_with_states_timeout() {
    let aws = aws().await;
    let d = run_to_end(
        &aws,
        json!({"TimeoutSeconds": 1, "StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 30, "End": true}}}),
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(d.status(), &aws_sdk_sfn::types::ExecutionStatus::TimedOut, "{d:?}");

    // A Task with TimeoutSeconds 1 on a function that takes 4 s.
    let name = zip_function(&aws, "slow", 10, &[("FIXTURE_TRAFFIC", "slow:4000")]).await;
    let d = run_to_end(
        &aws,
        json!({"StartAt": "Slow", "States": {"Slow": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
            "TimeoutSeconds": 1, "Parameters": {"FunctionName": fn_arn(&name), "Payload": {"traffic": true}},
            "End": true}}}),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(d.status(), &aws_sdk_sfn::types::ExecutionStatus::Failed, "{d:?}");
    assert_eq!(d.error(), Some("States.Timeout"), "{d:?}");
}

#[tokio::test]
async fn duration_is_the_handlers_time_and_init_is_reported_apart() {
    let aws = aws().await;
    // GIVEN a function whose init takes 1.5 s and whose handler takes 0.3 s on traffic
    let name =
        zip_function(&aws, "duration", 10, &[("FIXTURE_INIT", "slow:1500"), ("FIXTURE_TRAFFIC", "slow:300")]).await;
    // WHEN it is invoked cold, then warm
    let cold = invoke(&aws, &name, None, json!({"traffic": true})).await;
    let warm = invoke(&aws, &name, None, json!({"traffic": true})).await;
    assert_eq!((cold.function_error.as_deref(), warm.function_error.as_deref()), (None, None));
    // THEN REPORT gives the cold start's init apart, and Duration is the handler's time: no init in it
    let field = |log: &str, key: &str| -> f64 {
        let at = log.find(key).unwrap_or_else(|| panic!("no {key} in {log}")) + key.len();
        log[at..].trim_start().split(' ').next().unwrap().parse().unwrap()
    };
    let init = field(&cold.log, "Init Duration:");
    assert!(init >= 1500.0, "init {init} ms");
    for (what, out) in [("cold", &cold), ("warm", &warm)] {
        let duration = field(&out.log, "\tDuration:");
        assert!(
            (300.0..1500.0).contains(&duration),
            "{what}: Duration {duration} ms must be the handler's 300 ms, not init"
        );
    }
    assert!(!warm.log.contains("Init Duration"), "{}", warm.log);
}

// ---------------------------------------------------------------------------------------------
// Step Functions' RedriveExecution (redrive.py)
// ---------------------------------------------------------------------------------------------

async fn history(aws: &Aws, arn: &str) -> Vec<aws_sdk_sfn::types::HistoryEvent> {
    let out = aws.sfn.get_execution_history().execution_arn(arn).max_results(1000).send().await.unwrap();
    out.events().to_vec()
}

fn not_redrivable<T: std::fmt::Debug>(
    what: &str,
    r: Result<T, aws_sdk_sfn::error::SdkError<aws_sdk_sfn::operation::redrive_execution::RedriveExecutionError>>,
) -> String {
    let e = r.expect_err(&format!("{what}: expected ExecutionNotRedrivable"));
    let e = e.into_service_error();
    assert!(e.is_execution_not_redrivable(), "{what}: {e:?}");
    e.message().unwrap_or_default().to_string()
}

#[tokio::test]
async fn redrive_continues_a_failed_execution_from_its_failed_state_and_refuses_what_aws_refuses() {
    use aws_sdk_sfn::types::{ExecutionRedriveStatus, ExecutionStatus, HistoryEventType};
    let aws = aws().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk::config().await);
    // GIVEN a function that fails on traffic (a bug), and a Pass that succeeds before the Task that calls it
    let name = zip_function(&aws, "redrive", 10, &[("FIXTURE_TRAFFIC", "fail")]).await;
    let sm = state_machine(
        &aws,
        json!({"StartAt": "Prepare", "States": {
            "Prepare": {"Type": "Pass", "Next": "Call",
                "Parameters": {"order.$": "$.order", "preparedAt.$": "$$.State.EnteredTime"}},
            "Call": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": fn_arn(&name), "Payload": {"traffic": true, "echo": {
                    "state.$": "$", "redriveCount.$": "$$.Execution.RedriveCount", "input.$": "$$.Execution.Input",
                    "name.$": "$$.Execution.Name", "startTime.$": "$$.Execution.StartTime"}}},
                "ResultSelector": {"echo.$": "$.Payload.echo"}, "End": true}}}),
    )
    .await;
    let exec_name = unique("redriven");
    let arn = format!("{}:{exec_name}", sm.replace(":stateMachine:", ":execution:"));
    // ... and the execution's status-change events queued, to see what EventBridge gets
    let queue = sqs.create_queue().queue_name(unique("redrive-events")).send().await.unwrap();
    let queue_url = queue.queue_url().unwrap().to_string();
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap();
    let queue_arn = attrs.attributes().unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn].clone();
    let rule = unique("redrive-events");
    aws.events
        .put_rule()
        .name(&rule)
        .event_pattern(json!({"source": ["aws.states"], "detail": {"executionArn": [&arn]}}).to_string())
        .send()
        .await
        .unwrap();
    let target = aws_sdk_eventbridge::types::Target::builder().id("queue").arn(&queue_arn).build().unwrap();
    aws.events.put_targets().rule(&rule).targets(target).send().await.unwrap();

    // WHEN it runs, the Task fails
    let input = json!({"order": 7});
    aws.sfn.start_execution().state_machine_arn(&sm).name(&exec_name).input(input.to_string()).send().await.unwrap();
    let (status, detail) = wait::execution_done(&aws.sfn, &arn, Duration::from_secs(60)).await;
    assert_eq!((status.as_str(), detail.starts_with("ModelError")), ("FAILED", true), "{detail}");
    let first = aws.sfn.describe_execution().execution_arn(&arn).send().await.unwrap();
    assert_eq!(first.redrive_count(), Some(0), "{first:?}");
    assert_eq!(first.redrive_date(), None, "{first:?}");
    assert_eq!(first.redrive_status(), Some(&ExecutionRedriveStatus::Redrivable), "{first:?}");
    let failed_at = history(&aws, &arn).await.len();

    // ... the bug is fixed, and the execution is redriven
    aws.lambda
        .update_function_configuration()
        .function_name(&name)
        .environment(Environment::builder().variables("FIXTURE_TRAFFIC", "").build())
        .send()
        .await
        .unwrap();
    wait::function_settled(&aws.lambda, &name).await;
    let redriven = aws.sfn.redrive_execution().execution_arn(&arn).send().await.unwrap();
    let redrive_date = *redriven.redrive_date();

    // THEN the same execution ends SUCCEEDED, redriven once, with its start date unchanged
    let (status, output) = wait::execution_done(&aws.sfn, &arn, Duration::from_secs(60)).await;
    assert_eq!(status, "SUCCEEDED", "{output}");
    let d = aws.sfn.describe_execution().execution_arn(&arn).send().await.unwrap();
    assert_eq!(d.redrive_count(), Some(1), "{d:?}");
    assert_eq!(d.redrive_date(), Some(&redrive_date), "{d:?}");
    assert_eq!(d.start_date(), first.start_date(), "{d:?}");
    assert_eq!(d.redrive_status(), Some(&ExecutionRedriveStatus::NotRedrivable), "{d:?}");
    assert_eq!(d.redrive_status_reason(), Some("Execution is SUCCEEDED and cannot be redriven"), "{d:?}");
    // ... the Task got the input it failed with (the Pass's output, not rerun), and the context object keeps the
    // execution's Input, Name and StartTime, with RedriveCount 1
    let echo = &serde_json::from_str::<Value>(&output).unwrap()["echo"];
    let prepare_output = {
        let events = history(&aws, &arn).await;
        let exited = events.iter().find(|e| e.r#type() == &HistoryEventType::PassStateExited).expect("Prepare exited");
        serde_json::from_str::<Value>(exited.state_exited_event_details().unwrap().output().unwrap()).unwrap()
    };
    assert_eq!(echo["state"], prepare_output, "{echo}");
    assert_eq!(echo["state"]["order"], 7, "{echo}");
    assert_eq!(echo["redriveCount"], 1, "{echo}");
    assert_eq!(echo["input"], input, "{echo}");
    assert_eq!(echo["name"], exec_name.as_str(), "{echo}");
    let start_ms = first.start_date().to_millis().unwrap();
    let start_time = echo["startTime"].as_str().unwrap_or_default();
    assert!(start_time.ends_with('Z') && start_time.len() == 24, "ISO 8601 with ms: {start_time}");
    let echoed_ms = aws_smithy_types::DateTime::from_str(start_time, aws_smithy_types::date_time::Format::DateTime)
        .unwrap()
        .to_millis()
        .unwrap();
    // (DescribeExecution's startDate travels as float seconds: 1 ms of rounding either way)
    assert!((echoed_ms - start_ms).abs() <= 1, "$$.Execution.StartTime is the first run's start: {start_time}");

    // ... the history goes on after the failure: ExecutionRedriven, then only the Task again
    let events = history(&aws, &arn).await;
    let types: Vec<&str> = events.iter().map(|e| e.r#type().as_str()).collect();
    assert_eq!(types.iter().filter(|t| **t == "PassStateEntered").count(), 1, "the Pass is not rerun: {types:?}");
    assert_eq!(types.iter().filter(|t| **t == "TaskStateEntered").count(), 2, "{types:?}");
    assert_eq!(types[failed_at - 1], "ExecutionFailed", "{types:?}");
    assert_eq!(types[failed_at], "ExecutionRedriven", "{types:?}");
    assert_eq!(types[failed_at + 1], "TaskStateEntered", "{types:?}");
    assert_eq!(types.last(), Some(&"ExecutionSucceeded"), "{types:?}");
    let ids: Vec<i64> = events.iter().map(|e| e.id()).collect();
    assert_eq!(ids, (1..=events.len() as i64).collect::<Vec<_>>(), "one history, numbered on");
    let redriven_event = &events[failed_at];
    assert_eq!(redriven_event.execution_redriven_event_details().and_then(|x| x.redrive_count()), Some(1));
    let rerun_input = events[failed_at + 1].state_entered_event_details().unwrap().input().unwrap();
    assert_eq!(serde_json::from_str::<Value>(rerun_input).unwrap(), prepare_output);

    // ... EventBridge got a RUNNING event for the redrive, then its end, both with redriveCount 1
    let mut redriven_events = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while redriven_events.len() < 2 {
        assert!(std::time::Instant::now() < deadline, "redriven status events: {redriven_events:?}");
        let got = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for m in got.messages() {
            let detail = serde_json::from_str::<Value>(m.body().unwrap()).unwrap()["detail"].clone();
            if detail["redriveCount"] == 1 {
                redriven_events.push((detail["status"].as_str().unwrap().to_string(), detail["redriveDate"].clone()));
            }
        }
    }
    let statuses: Vec<&str> = redriven_events.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(statuses, ["RUNNING", "SUCCEEDED"], "status-change events of the redriven run");
    for (status, date) in &redriven_events {
        let ms = date.as_i64().unwrap_or_else(|| panic!("{status}: redriveDate in epoch ms: {date}"));
        assert!((ms - redrive_date.to_millis().unwrap()).abs() <= 1, "{status}: redriveDate {ms}");
    }

    // AND a SUCCEEDED execution is not redriven, nor one that does not exist
    let msg = not_redrivable("SUCCEEDED", aws.sfn.redrive_execution().execution_arn(&arn).send().await);
    assert!(msg.contains("Execution is SUCCEEDED and cannot be redriven"), "{msg}");
    let e = aws.sfn.redrive_execution().execution_arn(format!("{arn}-none")).send().await.expect_err("no such one");
    assert!(e.into_service_error().is_execution_does_not_exist());

    // AND a RUNNING one is not; stopped (ABORTED), it is, and reenters the state it was stopped in
    let hold = state_machine(
        &aws,
        json!({"StartAt": "Hold", "States": {"Hold": {"Type": "Wait", "Seconds": 600, "End": true}}}),
    )
    .await;
    let held = aws.sfn.start_execution().state_machine_arn(&hold).name(unique("held")).send().await.unwrap();
    let held = held.execution_arn();
    let msg = not_redrivable("RUNNING", aws.sfn.redrive_execution().execution_arn(held).send().await);
    assert!(msg.contains("Execution is RUNNING and cannot be redriven"), "{msg}");
    aws.sfn.stop_execution().execution_arn(held).send().await.unwrap();
    let (status, _) = wait::execution_done(&aws.sfn, held, Duration::from_secs(30)).await;
    assert_eq!(status, "ABORTED");
    let token = unique("token");
    let once = aws.sfn.redrive_execution().execution_arn(held).client_token(&token).send().await;
    let once = once.expect("an ABORTED execution is redriven");
    let d = aws.sfn.describe_execution().execution_arn(held).send().await.unwrap();
    assert_eq!((d.status(), d.redrive_count()), (&ExecutionStatus::Running, Some(1)), "{d:?}");
    // ... the same client token again gets the same answer, and redrives nothing
    let again = aws.sfn.redrive_execution().execution_arn(held).client_token(&token).send().await.unwrap();
    assert_eq!(again.redrive_date(), once.redrive_date());
    let d = aws.sfn.describe_execution().execution_arn(held).send().await.unwrap();
    assert_eq!(d.redrive_count(), Some(1), "{d:?}");
    let msg = not_redrivable("redriven, RUNNING", aws.sfn.redrive_execution().execution_arn(held).send().await);
    assert!(msg.contains("RUNNING"), "{msg}");
    let types: Vec<String> = history(&aws, held).await.iter().map(|e| e.r#type().as_str().to_string()).collect();
    assert_eq!(
        &types[types.len() - 3..],
        ["ExecutionAborted", "ExecutionRedriven", "WaitStateEntered"],
        "the Wait is reentered: {types:?}"
    );
    aws.sfn.stop_execution().execution_arn(held).send().await.unwrap();
    let (status, _) = wait::execution_done(&aws.sfn, held, Duration::from_secs(30)).await;
    assert_eq!(status, "ABORTED");

    // AND a TIMED_OUT one is redriven with the state machine's TimeoutSeconds started again from 0
    let d = run_to_end(
        &aws,
        json!({"TimeoutSeconds": 1, "StartAt": "Slow", "States": {"Slow": {"Type": "Wait", "Seconds": 5, "End": true}}}),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(d.status(), &ExecutionStatus::TimedOut, "{d:?}");
    aws.sfn.redrive_execution().execution_arn(d.execution_arn()).send().await.expect("TIMED_OUT is redrivable");
    let (status, _) = wait::execution_done(&aws.sfn, d.execution_arn(), Duration::from_secs(30)).await;
    assert_eq!(status, "TIMED_OUT");
    let events = history(&aws, d.execution_arn()).await;
    let at =
        |t: HistoryEventType| events.iter().rev().find(|e| e.r#type() == &t).unwrap().timestamp().to_millis().unwrap();
    let rerun_ms = at(HistoryEventType::ExecutionTimedOut) - at(HistoryEventType::ExecutionRedriven);
    assert!(rerun_ms >= 1000, "the redriven run had its own 1 s before timing out, not {rerun_ms} ms");

    // AND an EXPRESS state machine's execution is not redriven
    let express = aws
        .sfn
        .create_state_machine()
        .name(unique("express"))
        .r#type(aws_sdk_sfn::types::StateMachineType::Express)
        .definition(json!({"StartAt": "No", "States": {"No": {"Type": "Fail", "Error": "E"}}}).to_string())
        .role_arn(&aws.role)
        .send()
        .await
        .unwrap();
    let x = aws.sfn.start_execution().state_machine_arn(express.state_machine_arn()).send().await.unwrap();
    let msg = not_redrivable("EXPRESS", aws.sfn.redrive_execution().execution_arn(x.execution_arn()).send().await);
    assert!(msg.contains("not supported by EXPRESS state machines"), "{msg}");

    // AND one whose history reached the quota is not (there is no room for ExecutionRedriven and one more event)
    let d = run_to_end(
        &aws,
        json!({"StartAt": "Loop", "States": {"Loop": {"Type": "Pass", "Next": "Loop"}}}),
        Duration::from_secs(300),
    )
    .await;
    assert_eq!(d.status(), &ExecutionStatus::Failed, "{d:?}");
    assert_eq!(d.redrive_status_reason(), Some("Execution history event limit exceeded"), "{d:?}");
    let msg = not_redrivable("full history", aws.sfn.redrive_execution().execution_arn(d.execution_arn()).send().await);
    assert!(msg.contains("Execution history event limit exceeded"), "{msg}");

    // AND a role session needs states:RedriveExecution on the execution itself
    let iam = aws_sdk_iam::Client::new(&sdk::config().await);
    let role_name = unique("redriver");
    let role = assumable_role(
        &iam,
        &role_name,
        json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "states:RedriveExecution", "Resource": held}]}),
    )
    .await;
    let as_redriver = aws_sdk_sfn::Client::new(&as_role(&role).await);
    let msg = denied("redrive elsewhere", as_redriver.redrive_execution().execution_arn(&arn).send().await);
    assert!(msg.contains(&format!("states:RedriveExecution on resource: {arn}")), "{msg}");
    as_redriver.redrive_execution().execution_arn(held).send().await.expect("allowed on this execution");
    aws.sfn.stop_execution().execution_arn(held).send().await.unwrap();
}
