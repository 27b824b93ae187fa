//! End to end on local AWS: the deployer stack (deployed from template.yaml) deploys real images pushed
//! to local ECR, and rolls back. Each test owns one repository and its own function.

use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use deployer_aws::DynamoTargetStore;
use deployer_core::ports::TargetStore;
use deployer_core::spec::{self, TargetSpec};
use deployer_tests::stack::{self, Execution, Stack, STACK};
use deployer_tests::{faults, fixture, readme, sdk, unique};
use serde_json::{json, Value};

struct Env {
    lambda: aws_sdk_lambda::Client,
    ecr: aws_sdk_ecr::Client,
    sfn: aws_sdk_sfn::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    store: DynamoTargetStore,
    stack: &'static Stack,
    role: String,
}

async fn env() -> Env {
    let cfg = sdk::config().await;
    let stack = tokio::task::spawn_blocking(stack::ensure).await.unwrap();
    let iam = aws_sdk_iam::Client::new(&cfg);
    Env {
        lambda: aws_sdk_lambda::Client::new(&cfg),
        logs: aws_sdk_cloudwatchlogs::Client::new(&cfg),
        ecr: aws_sdk_ecr::Client::new(&cfg),
        sfn: aws_sdk_sfn::Client::new(&cfg),
        store: DynamoTargetStore::from_sdk(&cfg, &stack.targets_table),
        role: sdk::role(&iam, "e2e-service-role").await,
        stack,
    }
}

const TIMEOUT: Duration = Duration::from_secs(120);

impl Env {
    /// A target for a fresh function deploying `repo`, registered in the stack's table.
    async fn target(&self, repo: &str) -> TargetSpec {
        let _ = self.ecr.create_repository().repository_name(repo).send().await;
        let spec = spec::parse(
            &json!({
                "function": unique("e2e"),
                "repository": repo,
                "tagPattern": "^sha-[0-9a-f]{7}$",
                "configuration": {
                    "role": self.role, "memoryMb": 256, "timeoutSeconds": 5,
                    "environment": {"MODE": "e2e"},
                    "logging": {"format": "JSON", "applicationLevel": "INFO"}
                },
                "smokeTest": {"latencyBudgetMs": 3000, "cases": [
                    {"name": "echo", "payload": {"echo": "smoke"}, "expect": {"echo": "smoke"}}
                ]},
                "readyTimeoutSeconds": 60
            })
            .to_string(),
        )
        .expect("a valid spec");
        self.store.put(&spec).await.expect("target stored");
        spec
    }

    /// Push the fixture image and wait for the deployment the push starts.
    async fn push(&self, t: &TargetSpec, tag: &str, args: &[(&str, &str)]) -> (String, Execution) {
        let (repo, tag_owned, args_owned) = (
            t.repository.to_string(),
            tag.to_string(),
            args.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>(),
        );
        let digest = tokio::task::spawn_blocking(move || {
            let args: Vec<(&str, &str)> = args_owned.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            fixture::push_image_with(&repo, &tag_owned, &args)
        })
        .await
        .unwrap();
        let name = format!("deploy-{}-{}", t.function, &digest["sha256:".len().."sha256:".len() + 12]);
        let exec = stack::finished(&self.sfn, &self.stack.execution_arn(&name), TIMEOUT).await;
        (digest, exec)
    }

    async fn alias_version(&self, t: &TargetSpec) -> Option<String> {
        let a = self.lambda.get_alias().function_name(t.function.as_str()).name("live").send().await.ok()?;
        a.function_version().map(str::to_string)
    }

    async fn versions(&self, t: &TargetSpec) -> Vec<String> {
        let out = self.lambda.list_versions_by_function().function_name(t.function.as_str()).send().await.unwrap();
        out.versions().iter().filter_map(|v| v.version().map(str::to_string)).collect()
    }

    async fn invoke_alias(&self, t: &TargetSpec) -> Value {
        let out = self
            .lambda
            .invoke()
            .function_name(t.function.as_str())
            .qualifier("live")
            .payload(Blob::new(json!({"echo": "hello"}).to_string()))
            .send()
            .await
            .unwrap();
        assert_eq!(out.function_error(), None);
        serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap()
    }

    async fn start(&self, name: &str, input: Value) -> Execution {
        let out = self
            .sfn
            .start_execution()
            .state_machine_arn(&self.stack.state_machine_arn)
            .name(name)
            .input(input.to_string())
            .send()
            .await
            .unwrap();
        stack::finished(&self.sfn, out.execution_arn(), TIMEOUT).await
    }

    async fn trigger(&self, event: Value) -> (Option<String>, Value) {
        stack::invoke_trigger(&self.lambda, &event).await
    }
}

fn ecr_event(repo: &str, digest: &str, tag: &str) -> Value {
    stack::ecr_push_event(repo, digest, tag)
}

#[tokio::test]
async fn a_push_deploys_and_the_next_push_replaces_it() {
    let env = env().await;
    let t = env.target("e2e-deploy").await;

    // WHEN v1 is pushed, THEN the function is created, version 1 published and the alias serves it.
    let (digest1, exec) = env.push(&t, "sha-0000001", &[("VARIANT", "v1")]).await;
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
    assert_eq!(exec.output["version"], "1");
    assert_eq!(exec.output["moved"], true);
    assert_eq!(env.alias_version(&t).await.as_deref(), Some("1"));
    assert_eq!(env.invoke_alias(&t).await["variant"], "v1");
    let cfg = env.lambda.get_function().function_name(t.function.as_str()).qualifier("1").send().await.unwrap();
    let c = cfg.configuration().unwrap();
    assert_eq!(c.code_sha256(), Some(digest1.trim_start_matches("sha256:")), "deployed by digest");
    assert_eq!(c.memory_size(), Some(256));
    assert!(c.description().unwrap().contains(&digest1) && c.description().unwrap().contains("sha-0000001"));
    assert_eq!(c.environment().unwrap().variables().unwrap().get("MODE").map(String::as_str), Some("e2e"));
    // The image that went live is tagged so the repository's lifecycle policy never expires it.
    let images = env
        .ecr
        .describe_images()
        .repository_name(t.repository.as_str())
        .image_ids(aws_sdk_ecr::types::ImageIdentifier::builder().image_digest(&digest1).build())
        .send()
        .await
        .unwrap();
    let tags = images.image_details()[0].image_tags().to_vec();
    assert!(tags.contains(&format!("deployed-{}-v1", t.function)), "{tags:?}");

    // WHEN v2 is pushed, THEN version 2 serves and version 1 is recorded as the previous one.
    let (_, exec) = env.push(&t, "sha-0000002", &[("VARIANT", "v2")]).await;
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
    assert_eq!((exec.output["version"].as_str(), exec.output["previousVersion"].as_str()), (Some("2"), Some("1")));
    assert_eq!(env.alias_version(&t).await.as_deref(), Some("2"));
    assert_eq!(env.invoke_alias(&t).await["variant"], "v2");
}

#[tokio::test]
async fn a_failing_smoke_test_leaves_the_alias_and_fails_with_a_clear_cause() {
    let env = env().await;
    let t = env.target("e2e-smoke-fails").await;
    let (_, exec) = env.push(&t, "sha-0000001", &[("VARIANT", "good")]).await;
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");

    let (_, exec) = env.push(&t, "sha-0000bad", &[("VARIANT", "bad"), ("BROKEN", "1")]).await;
    assert_eq!(exec.status, "FAILED");
    assert_eq!(exec.error, "SmokeTestFailed");
    assert!(exec.cause.contains("$.echo is \"broken build: wrong answer\", expected \"smoke\""), "{}", exec.cause);
    assert!(exec.cause.contains("alias live stayed on version 1"), "{}", exec.cause);
    assert_eq!(env.alias_version(&t).await.as_deref(), Some("1"));
    assert_eq!(env.invoke_alias(&t).await["variant"], "good");
    assert_eq!(env.versions(&t).await, ["$LATEST", "1"], "the bad build was never published");
}

#[tokio::test]
async fn a_failed_update_leaves_the_alias_and_fails_with_the_reason() {
    let env = env().await;
    let t = env.target("e2e-update-fails").await;
    let (_, exec) = env.push(&t, "sha-0000001", &[("VARIANT", "good")]).await;
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");

    let (_, exec) = env.push(&t, "sha-00000f1", &[("VARIANT", "crashes"), ("INIT", "exit")]).await;
    assert_eq!(exec.status, "FAILED");
    assert_eq!(exec.error, "UpdateFailed");
    assert!(exec.cause.contains("failed") && exec.cause.contains("exit status 3"), "{}", exec.cause);
    assert!(exec.cause.contains("alias live stayed on version 1"), "{}", exec.cause);
    assert_eq!(env.alias_version(&t).await.as_deref(), Some("1"));
    assert_eq!(env.invoke_alias(&t).await["variant"], "good");
}

#[tokio::test]
async fn a_crashing_step_leaves_the_alias_and_fails_with_a_clear_cause() {
    let env = env().await;
    let t = env.target("e2e-step-crash").await;
    let (_, exec) = env.push(&t, "sha-0000001", &[("VARIANT", "good")]).await;
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");

    // GIVEN the Publish Version step's Lambda fails on every attempt of this deployment (1 + 4 retries)
    let fault = faults::inject(json!({"service": "lambda", "operation": "Invoke", "error": "ServiceException",
        "count": 5, "match": [format!("{STACK}-publish-version"), t.function.to_string()]}))
    .await;
    let (_, exec) = env.push(&t, "sha-0000002", &[("VARIANT", "new")]).await;
    assert_eq!(faults::fired(fault["faults"][0]["id"].as_u64().unwrap()).await, 5);
    assert_eq!(exec.status, "FAILED");
    assert_eq!(exec.error, "Lambda.ServiceException");
    assert!(exec.cause.contains("alias live stayed on version 1"), "{}", exec.cause);
    assert_eq!(env.alias_version(&t).await.as_deref(), Some("1"));
    assert_eq!(env.invoke_alias(&t).await["variant"], "good");
}

#[tokio::test]
async fn a_permission_missing_from_a_step_role_fails_the_deployment_naming_it() {
    let env = env().await;
    let iam = aws_sdk_iam::Client::new(&sdk::config().await);
    let t = env.target("e2e-iam").await;
    assert_eq!(env.push(&t, "sha-0000001", &[("VARIANT", "one")]).await.1.status, "SUCCEEDED");

    // GIVEN the Publish Version step's role loses lambda:PublishVersion on this function (an explicit Deny for
    // this function alone, so the tests running beside it keep the permission)
    let step = format!("{STACK}-publish-version");
    let cfg = env.lambda.get_function_configuration().function_name(&step).send().await.unwrap();
    let role = cfg.role().unwrap().rsplit('/').next().unwrap().to_string();
    let function_arn = format!("arn:aws:lambda:{}:{}:function:{}", sdk::REGION, sdk::ACCOUNT, t.function);
    let policy = format!("e2e-iam-{}", t.function);
    iam.put_role_policy()
        .role_name(&role)
        .policy_name(&policy)
        .policy_document(
            json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Deny", "Action": "lambda:PublishVersion", "Resource": function_arn}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    // WHEN v2 is pushed
    let (_, exec) = env.push(&t, "sha-0000002", &[("VARIANT", "two")]).await;
    iam.delete_role_policy().role_name(&role).policy_name(&policy).send().await.unwrap();

    // THEN the deployment fails with AWS's refusal, naming the action and the function, and the alias stayed
    assert_eq!((exec.status.as_str(), exec.error.as_str()), ("FAILED", "AwsRefused"), "{exec:?}");
    assert!(exec.cause.contains("AccessDeniedException"), "{}", exec.cause);
    assert!(exec.cause.contains("lambda:PublishVersion") && exec.cause.contains(&function_arn), "{}", exec.cause);
    assert!(exec.cause.contains("alias live stayed on version 1"), "{}", exec.cause);
    assert_eq!(env.alias_version(&t).await.as_deref(), Some("1"));
    assert_eq!(env.invoke_alias(&t).await["variant"], "one");
    assert_eq!(env.versions(&t).await, ["$LATEST", "1"], "nothing was published");

    // GIVEN a spec (stored around deployctl) that sends the function's logs to a group outside
    // `/aws/lambda/<TargetFunctionPrefix>*`, the only log groups the UpdateCode role may create
    let mut outside = t.clone();
    let group = format!("/teams/ml/{}", t.function);
    outside.configuration.logging.log_group = Some(group.clone());
    outside.configuration.logging.retention_days = Some(7);
    env.store.put(&outside).await.unwrap();
    // WHEN v3 is pushed, THEN Prepare refuses it before CloudWatch Logs would, naming the group and the
    // prefix, and nothing moved
    let (_, exec) = env.push(&t, "sha-0000003", &[("VARIANT", "three")]).await;
    env.store.put(&t).await.unwrap();
    assert_eq!((exec.status.as_str(), exec.error.as_str()), ("FAILED", "InvalidInput"), "{exec:?}");
    let says = format!("configuration.logging.logGroup: \"{group}\" does not start with \"/aws/lambda/e2e-\"");
    assert!(exec.message().contains(&says), "{}", exec.message());
    assert_eq!(env.alias_version(&t).await.as_deref(), Some("1"));
    assert_eq!(env.invoke_alias(&t).await["variant"], "one");
}

#[tokio::test]
async fn a_manual_rollback_moves_the_alias_back_and_verifies_it() {
    let env = env().await;
    let t = env.target("e2e-manual-rollback").await;
    assert_eq!(env.push(&t, "sha-0000001", &[("VARIANT", "one")]).await.1.status, "SUCCEEDED");
    assert_eq!(env.push(&t, "sha-0000002", &[("VARIANT", "two")]).await.1.status, "SUCCEEDED");

    // Back to the previous version, as an operator does with `aws stepfunctions start-execution`.
    let exec = env.start(&unique("rollback"), json!({"action": "rollback", "function": t.function})).await;
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
    assert_eq!((exec.output["fromVersion"].as_str(), exec.output["toVersion"].as_str()), (Some("2"), Some("1")));
    assert_eq!(exec.output["verifiedCases"], 1);
    assert_eq!(env.alias_version(&t).await.as_deref(), Some("1"));
    assert_eq!(env.invoke_alias(&t).await["variant"], "one");

    // To a named version.
    let exec =
        env.start(&unique("rollback"), json!({"action": "rollback", "function": t.function, "toVersion": "2"})).await;
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
    assert_eq!(env.alias_version(&t).await.as_deref(), Some("2"));

    // Wrong requests change nothing and say what was wrong.
    let exec =
        env.start(&unique("rollback"), json!({"action": "rollback", "function": t.function, "toVersion": "9"})).await;
    assert_eq!((exec.status.as_str(), exec.error.as_str()), ("FAILED", "NotFound"), "{exec:?}");
    assert!(exec.cause.contains("version 9 of") && exec.cause.contains("does not exist"), "{}", exec.cause);
    let exec = env.start(&unique("rollback"), json!({"action": "rollback", "function": "no-such-function"})).await;
    assert_eq!((exec.status.as_str(), exec.error.as_str()), ("FAILED", "InvalidInput"), "{exec:?}");
    assert!(exec.cause.contains("no deployment target named no-such-function"), "{}", exec.cause);
    assert_eq!(env.alias_version(&t).await.as_deref(), Some("2"));
}

#[tokio::test]
async fn duplicate_events_and_console_reruns_deploy_nothing_twice() {
    let env = env().await;
    let t = env.target("e2e-duplicates").await;
    let (digest, exec) = env.push(&t, "sha-0000001", &[("VARIANT", "once")]).await;
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
    let alias_before = env.lambda.get_alias().function_name(t.function.as_str()).name("live").send().await.unwrap();

    // EventBridge delivers the same push again: the trigger starts nothing.
    let (err, report) = env.trigger(ecr_event(t.repository.as_str(), &digest, "sha-0000001")).await;
    assert_eq!(err, None, "{report}");
    // (Targets left by earlier runs against the same local AWS may be listed too: only ours matters.)
    assert!(report["duplicates"].as_array().unwrap().contains(&json!(t.function.as_str())), "{report}");
    assert!(!report["started"].as_array().unwrap().iter().any(|s| s["target"] == t.function.as_str()), "{report}");

    // An operator re-runs the execution from the console with the same input.
    let input = json!({"action": "deploy", "target": t.function, "repository": t.repository,
                       "imageDigest": digest, "imageTag": "sha-0000001"});
    let exec = env.start(&unique("rerun"), input).await;
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
    assert_eq!(exec.output["alreadyLive"], true);
    assert_eq!(env.versions(&t).await, ["$LATEST", "1"], "no second version");
    let alias_after = env.lambda.get_alias().function_name(t.function.as_str()).name("live").send().await.unwrap();
    assert_eq!(alias_after.revision_id(), alias_before.revision_id(), "the alias did not move");
}

#[tokio::test]
async fn pushes_no_target_allows_change_nothing_and_bad_input_is_refused() {
    let env = env().await;
    let t = env.target("e2e-not-allowed").await;

    // A tag outside the target's pattern: the trigger skips it and says why.
    let (digest, _) = {
        let repo = t.repository.to_string();
        let d = tokio::task::spawn_blocking(move || fixture::push_image(&repo, "latest", "x")).await.unwrap();
        (d, ())
    };
    let (err, report) = env.trigger(ecr_event(t.repository.as_str(), &digest, "latest")).await;
    assert_eq!(err, None, "{report}");
    assert!(report["ignored"][0]["reason"].as_str().unwrap().contains("does not match tagPattern"), "{report}");
    assert_eq!(report["started"], json!([]));

    // A repository no target deploys.
    let _ = env.ecr.create_repository().repository_name("e2e-untargeted").send().await;
    let d = tokio::task::spawn_blocking(|| fixture::push_image("e2e-untargeted", "sha-0000001", "x")).await.unwrap();
    let (_, report) = env.trigger(ecr_event("e2e-untargeted", &d, "sha-0000001")).await;
    assert_eq!(report["ignored"][0]["reason"], "no target deploys repository e2e-untargeted", "{report}");

    // A malformed event is an error that names the problem.
    let mut bad = ecr_event(t.repository.as_str(), "sha256:nope", "sha-0000001");
    bad["detail"].as_object_mut().unwrap().remove("image-digest");
    let (err, body) = env.trigger(bad).await;
    assert_eq!(err.as_deref(), Some("Unhandled"));
    assert_eq!(body["errorType"], "InvalidInput");
    assert!(body["errorMessage"].as_str().unwrap().contains("no image-digest"), "{body}");

    // A deploy request for an unknown target is rejected before anything changes.
    let exec = env
        .start(
            &unique("bad"),
            json!({"action": "deploy", "target": "nobody", "repository": t.repository,
                                       "imageDigest": digest, "imageTag": "sha-0000001"}),
        )
        .await;
    assert_eq!((exec.status.as_str(), exec.error.as_str()), ("FAILED", "InvalidInput"), "{exec:?}");
    assert!(exec.cause.contains("no deployment target named nobody"), "{}", exec.cause);

    // Nothing was created: the EventBridge deliveries of these pushes started no deployment.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let e = env.lambda.get_function().function_name(t.function.as_str()).send().await;
    assert!(e.is_err(), "the function must not exist");
    let name = format!("deploy-{}-{}", t.function, &digest["sha256:".len().."sha256:".len() + 12]);
    assert!(env.sfn.describe_execution().execution_arn(env.stack.execution_arn(&name)).send().await.is_err());
}

#[tokio::test]
async fn a_push_whose_event_was_lost_is_deployed_by_the_reconcile() {
    let env = env().await;
    // GIVEN an image whose push the trigger saw before any target deployed its repository (for the target
    // registered next, as good as a lost event)
    let _ = env.ecr.create_repository().repository_name("e2e-reconcile").send().await;
    let since = deployer_core::steps::now_ms() as i64;
    let tag = format!("sha-{:07x}", since & 0x0fff_ffff);
    let pushed = tag.clone();
    let digest =
        tokio::task::spawn_blocking(move || fixture::push_image("e2e-reconcile", &pushed, "found")).await.unwrap();
    stack::trigger_saw(&env.logs, &[&digest, &tag], since).await.expect("the trigger handled the push");
    let t = env.target("e2e-reconcile").await;
    let name = format!("deploy-{}-{}", t.function, &digest["sha256:".len().."sha256:".len() + 12]);
    assert!(env.sfn.describe_execution().execution_arn(env.stack.execution_arn(&name)).send().await.is_err());

    // WHEN the reconcile runs (the schedule does it every 15 minutes; here for this target only, with the
    // README's command as written)
    let report = readme_reconcile(t.function.as_str());
    assert_eq!(report["started"][0]["target"], t.function.as_str(), "{report}");

    // THEN the image is deployed under the push's own execution name, and a second run starts nothing
    let exec = stack::finished(&env.sfn, &env.stack.execution_arn(&name), TIMEOUT).await;
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
    assert_eq!(env.invoke_alias(&t).await["variant"], "found");
    let (_, again) = env.trigger(json!({"reconcile": {"targets": [t.function]}})).await;
    assert_eq!(again["started"], json!([]), "{again}");
    assert!(again["ignored"][0]["reason"].as_str().unwrap().contains("already serves"), "{again}");
    env.store.delete(&t.function).await.unwrap();
}

/// The README's reconcile command for `function`, run as written in a scratch folder; the report it writes.
fn readme_reconcile(function: &str) -> Value {
    let command = readme::command("aws lambda invoke --function-name <stack>-trigger")
        .replace("<stack>", STACK)
        .replace("<name>", function);
    let dir = std::env::temp_dir().join(unique("readme-reconcile"));
    std::fs::create_dir_all(&dir).unwrap();
    let out = std::process::Command::new("bash").args(["-c", &command]).current_dir(&dir).output().expect("bash");
    assert!(out.status.success(), "{command}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("FunctionError"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report = std::fs::read(dir.join("reconcile.json")).expect("the command writes reconcile.json");
    std::fs::remove_dir_all(&dir).ok();
    serde_json::from_slice(&report).unwrap()
}

/// The README's rollback command, taken from the README and run as written (the `aws` CLI, no `--name`).
fn readme_rollback_command(state_machine_arn: &str, function: &str) -> String {
    let command = readme::command(
        r#"aws stepfunctions start-execution --state-machine-arn <StateMachineArn> --input '{"action":"rollback""#,
    );
    assert!(command.contains(r#"'{"action":"rollback","function":"<name>"}'"#), "{command}");
    command.replace("<StateMachineArn>", state_machine_arn).replace("<name>", function)
}

#[tokio::test]
async fn the_readmes_rollback_command_works_as_written_every_time() {
    let env = env().await;
    let t = env.target("e2e-readme").await;
    assert_eq!(env.push(&t, "sha-0000001", &[("VARIANT", "one")]).await.1.status, "SUCCEEDED");
    assert_eq!(env.push(&t, "sha-0000002", &[("VARIANT", "two")]).await.1.status, "SUCCEEDED");
    let command = readme_rollback_command(&env.stack.state_machine_arn, t.function.as_str());
    let rollback = || async {
        let out = std::process::Command::new("bash").args(["-c", &command]).output().expect("bash runs");
        assert!(out.status.success(), "{command}\n{}", String::from_utf8_lossy(&out.stderr));
        let started: Value = serde_json::from_slice(&out.stdout).expect("start-execution prints JSON");
        let arn = started["executionArn"].as_str().unwrap().to_string();
        (arn.rsplit(':').next().unwrap().to_string(), stack::finished(&env.sfn, &arn, TIMEOUT).await)
    };
    // WHEN an operator runs it, THEN the alias goes back from 2 to 1
    let (first, exec) = rollback().await;
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
    assert_eq!(env.alias_version(&t).await.as_deref(), Some("1"));
    // WHEN v3 goes live and the operator runs the same command again, THEN it starts (a name of its own) and
    // the alias goes back from 3 to 1
    assert_eq!(env.push(&t, "sha-0000003", &[("VARIANT", "three")]).await.1.status, "SUCCEEDED");
    let (second, exec) = rollback().await;
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
    assert_eq!(env.alias_version(&t).await.as_deref(), Some("1"));
    assert_ne!(first, second, "each unnamed start gets its own name");
    assert_eq!(env.invoke_alias(&t).await["variant"], "one");
}
