//! The deployer stack on local AWS, deployed once per test run from template.yaml by
//! `scripts/deploy-local.sh` (the same path as the demo): see [`ensure`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::fixture::workspace_root;

pub const STACK: &str = "deployer-e2e";

/// Repositories the stack's EventBridge rule listens to; each end-to-end test owns one.
pub const REPOSITORIES: &[&str] = &[
    "e2e-deploy",
    "e2e-progressive",
    "e2e-smoke-fails",
    "e2e-update-fails",
    "e2e-step-crash",
    "e2e-manual-rollback",
    "e2e-duplicates",
    "e2e-not-allowed",
    "e2e-untargeted",
    "e2e-ml-inference",
    "e2e-bad-input",
    "e2e-safety",
    "e2e-iam",
    "e2e-readme",
    "e2e-long-run",
    "e2e-fault-trigger",
    "e2e-fault-matrix",
    "e2e-reconcile",
];

#[derive(Debug, Clone)]
pub struct Stack {
    pub state_machine_arn: String,
    pub targets_table: String,
}

impl Stack {
    /// The ARN of an execution of the deploy state machine, by name.
    pub fn execution_arn(&self, name: &str) -> String {
        format!("{}:{name}", self.state_machine_arn.replacen(":stateMachine:", ":execution:", 1))
    }
}

/// Deploy (or update) the stack once per test run: once per `scripts/test.sh` run and local AWS endpoint
/// (it sets `DEPLOYER_E2E_RUN`; the test binaries of that run share the deployment through a record under
/// the target dir, taken under a file lock), else once per test binary.
pub fn ensure() -> &'static Stack {
    static STACK_ONCE: OnceLock<Stack> = OnceLock::new();
    STACK_ONCE.get_or_init(|| match std::env::var("DEPLOYER_E2E_RUN") {
        Ok(run) if !run.is_empty() => once_per_run(&run),
        _ => deploy(),
    })
}

/// The stack this run deployed to this endpoint, or a deployment now (recorded for the run's other binaries).
fn once_per_run(run: &str) -> Stack {
    let endpoint = crate::sdk::endpoint();
    let dir = crate::fixture::target_dir().join("e2e-stack");
    std::fs::create_dir_all(&dir).expect("the target dir is writable");
    let key: String = endpoint.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    let lock = std::fs::File::create(dir.join(format!("{key}.lock"))).expect("the lock file can be created");
    lock.lock().expect("the lock file can be locked");
    let record = dir.join(format!("{key}.json"));
    let wanted = |v: &serde_json::Value| v["run"] == run && v["endpoint"] == endpoint.as_str();
    // A record that does not read is a failed test, not a reason to deploy again: it was written under the lock.
    if let Some(v) = std::fs::read(&record).ok().map(|bytes| {
        serde_json::from_slice::<serde_json::Value>(&bytes)
            .unwrap_or_else(|e| panic!("{} does not read ({e}): delete it", record.display()))
    }) {
        if wanted(&v) {
            return Stack {
                state_machine_arn: v["stateMachineArn"].as_str().expect("stateMachineArn").to_string(),
                targets_table: v["targetsTable"].as_str().expect("targetsTable").to_string(),
            };
        }
    }
    let stack = deploy();
    let v = serde_json::json!({"run": run, "endpoint": endpoint, "stateMachineArn": stack.state_machine_arn,
                               "targetsTable": stack.targets_table});
    std::fs::write(&record, v.to_string()).expect("the record can be written");
    stack
}

fn deploy() -> Stack {
    let out = Command::new(workspace_root().join("scripts/deploy-local.sh"))
        .args(["--stack", STACK, "--repositories", &REPOSITORIES.join(",")])
        // Every function the tests deploy is named e2e-..., every service role e2e-...
        .args(["--param", "TargetFunctionPrefix=e2e-", "--param", "TargetRolePrefix=e2e-"])
        // Every alarm a gate reads is named e2e-...
        .args(["--param", "GateAlarmPrefix=e2e-"])
        .args(["--param", "Notifications=true"])
        // The same build as `cargo test --workspace`: its compiled dependencies are reused.
        .arg("--build-tests")
        .env("AWS_ENDPOINT_URL", crate::sdk::endpoint())
        .output()
        .expect("scripts/deploy-local.sh runs");
    assert!(
        out.status.success(),
        "deploying the stack failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let outputs: BTreeMap<String, String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    Stack { state_machine_arn: outputs["StateMachineArn"].clone(), targets_table: outputs["TargetsTableName"].clone() }
}

/// Wait until the named execution exists and has ended; (status, error, cause, output).
pub async fn finished(sfn: &aws_sdk_sfn::Client, arn: &str, limit: Duration) -> Execution {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(d) = sfn.describe_execution().execution_arn(arn).send().await {
            let status = d.status().as_str().to_string();
            if status != "RUNNING" {
                return Execution {
                    status,
                    error: d.error().unwrap_or_default().to_string(),
                    cause: d.cause().unwrap_or_default().to_string(),
                    output: d.output().and_then(|o| serde_json::from_str(o).ok()).unwrap_or_default(),
                };
            }
        }
        assert!(Instant::now() < deadline, "execution {arn} did not finish within {limit:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[derive(Debug, Clone)]
pub struct Execution {
    pub status: String,
    pub error: String,
    pub cause: String,
    pub output: serde_json::Value,
}

impl Execution {
    /// The cause as a person reads it: a Lambda error's cause (`{"errorType", "errorMessage"}`) is its
    /// errorMessage; any other cause is as it is.
    pub fn message(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.cause)
            .ok()
            .and_then(|c| c["errorMessage"].as_str().map(str::to_string))
            .unwrap_or_else(|| self.cause.clone())
    }
}

/// `deployctl`, built once for this test binary, by the build `scripts/deploy-local.sh --build-tests` makes
/// (the same features as `cargo test --workspace`, so nothing is compiled twice).
pub fn deployctl() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let out = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--workspace", "--bins", "--tests"])
            .current_dir(crate::fixture::workspace_root())
            .output()
            .expect("cargo runs");
        assert!(out.status.success(), "building deployctl failed:\n{}", String::from_utf8_lossy(&out.stderr));
        crate::fixture::target_dir().join("debug/deployctl")
    })
}

/// Run `deployctl --stack <the test stack> <args>`; (exit ok, stdout + stderr).
pub async fn run_deployctl<S: AsRef<str>>(args: &[S]) -> (bool, String) {
    deployctl_in(&std::env::temp_dir(), args.iter().map(|a| a.as_ref().to_string()).collect()).await
}

/// Run `deployctl <args>` in `dir`, naming no stack of its own; (exit ok, stdout + stderr).
pub async fn deployctl_with(dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let (code, text) = deployctl_code(dir, args.iter().map(|a| a.to_string()).collect()).await;
    (code == 0, text)
}

/// Run `deployctl --stack <the test stack> <args>` in `dir`; (exit ok, stdout + stderr).
pub async fn deployctl_in(dir: &std::path::Path, args: Vec<String>) -> (bool, String) {
    let (code, text) = deployctl_code(dir, [vec!["--stack".to_string(), STACK.to_string()], args].concat()).await;
    (code == 0, text)
}

/// Run `deployctl <args>` in `dir`; (its exit code, stdout + stderr). A signal's end is a failed test.
pub async fn deployctl_code(dir: &std::path::Path, args: Vec<String>) -> (i32, String) {
    let mut cmd = Command::new(deployctl());
    cmd.args(&args).env("AWS_ENDPOINT_URL", crate::sdk::endpoint()).current_dir(dir);
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("deployctl runs")).await.unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let code = out.status.code().unwrap_or_else(|| panic!("deployctl {args:?} ended by a signal: {text}"));
    (code, text)
}

/// A queue subscribed to the stack's notification topic.
pub async fn notifications_queue() -> (aws_sdk_sqs::Client, String) {
    let cfg = crate::sdk::config().await;
    let (sns, sqs) = (aws_sdk_sns::Client::new(&cfg), aws_sdk_sqs::Client::new(&cfg));
    let topics = sns.list_topics().send().await.unwrap();
    let topic = topics
        .topics()
        .iter()
        .filter_map(|t| t.topic_arn())
        .find(|a| a.ends_with(&format!(":{STACK}-deployments")))
        .expect("the stack has a notification topic (Notifications=true)")
        .to_string();
    let url = sqs
        .create_queue()
        .queue_name(crate::unique("e2e-notes"))
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap();
    let arn = attrs.attributes().unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn].clone();
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();
    (sqs, url)
}

/// The notification lines about `function` so far.
pub async fn notifications(sqs: &aws_sdk_sqs::Client, url: &str, function: &str) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let out = sqs.receive_message().queue_url(url).max_number_of_messages(10).send().await.unwrap();
        if out.messages().is_empty() {
            return lines;
        }
        lines.extend(
            out.messages().iter().filter_map(|m| m.body()).filter(|b| b.contains(function)).map(str::to_string),
        );
    }
}

/// The stack's trigger Lambda invoked with `event`, as EventBridge (or anyone allowed to invoke it) would:
/// (FunctionError, the answer).
pub async fn invoke_trigger(
    lambda: &aws_sdk_lambda::Client,
    event: &serde_json::Value,
) -> (Option<String>, serde_json::Value) {
    let out = lambda
        .invoke()
        .function_name(format!("{STACK}-trigger"))
        .payload(aws_sdk_lambda::primitives::Blob::new(event.to_string()))
        .send()
        .await
        .expect("the trigger can be invoked");
    let body = serde_json::from_slice(out.payload().map(|p| p.as_ref()).unwrap_or_default())
        .unwrap_or_else(|e| serde_json::json!({"unreadable answer": e.to_string()}));
    (out.function_error().map(str::to_string), body)
}

/// ECR's push event for `repo:tag` = `digest`, with every field EventBridge sets (in local AWS's account and
/// region), as anyone may write one.
pub fn ecr_push_event(repo: &str, digest: &str, tag: &str) -> serde_json::Value {
    serde_json::json!({"version": "0", "id": crate::unique("event"), "detail-type": "ECR Image Action",
           "source": "aws.ecr", "account": crate::sdk::ACCOUNT, "time": "2026-11-27T00:00:00Z",
           "region": crate::sdk::REGION, "resources": [],
           "detail": {"result": "SUCCESS", "repository-name": repo, "image-digest": digest,
                      "action-type": "PUSH", "image-tag": tag}})
}

/// Wait until the trigger's log (since `since_ms`) names one of `needles` (a pushed image's digest or
/// tag): the trigger has handled that push.
pub async fn trigger_saw(logs: &aws_sdk_cloudwatchlogs::Client, needles: &[&str], since_ms: i64) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out =
            logs.filter_log_events().log_group_name(format!("/{STACK}/trigger")).start_time(since_ms).send().await;
        let out = out.map_err(|e| format!("reading the trigger's log: {e:?}"))?;
        if out.events().iter().filter_map(|e| e.message()).any(|m| needles.iter().any(|n| m.contains(n))) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("the trigger's log never named {needles:?} within 120 s of the push"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
