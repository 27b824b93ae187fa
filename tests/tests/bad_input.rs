//! Bad input changes nothing and says exactly what was wrong (the README's safety table), over the corpus in
//! `tests/fixtures/bad-input/`: one JSON file per case,
//!
//! ```json
//! {"kind": "event" | "execution", "input": <the JSON sent>, "error": "<error name>" | null,
//!  "message": "<a substring of the message>", "why": "<one line>", "known_bug": "<optional: what is wrong>"}
//! ```
//!
//! - `event`: the input is invoked on the trigger Lambda directly, as a duplicate EventBridge delivery would be.
//!   With an `error`, the trigger must fail with that `errorType` and an `errorMessage` containing `message`.
//!   With `"error": null` the event is well-formed but not one to act on: the trigger answers without error,
//!   starts nothing (`started` and `duplicates` empty) and `ignored[0].reason` contains `message`.
//! - `execution`: the input starts an execution of the stack's state machine, which must end FAILED with
//!   `error` as its error and `message` in its cause (a Lambda error's cause, `{"errorType","errorMessage"}`,
//!   is read as its errorMessage). Were StartExecution itself refused, the service's error code and message
//!   would stand for the error and the cause.
//!
//! Strings in `input` and `message` may hold placeholders: `${FUNCTION}` (the target's function),
//! `${REPOSITORY}` (its repository), `${DIGEST}` (the image deployed to it, really in the repository),
//! `${TAG}` (its one tag in ECR), `${OTHER_TAG}` (a tag the target allows that the image does not carry),
//! `${ACCOUNT}`, `${REGION}` (local AWS's), and `${PAD:N}` (N times "x", for oversized inputs).
//!
//! One target is registered and its first image deployed (version 1 behind the alias). After each case the
//! alias must still be on version 1 with the same RevisionId, `$LATEST` and the version list unchanged, and
//! no new `deploy-<function>-...` execution may exist; once a batch has ended, no execution may hold the
//! function's deployment lock. Cases run concurrently in batches of 6, so a change is reported by the case
//! that first sees it, and the batch is named. A case marked `known_bug` is counted, and fails the test while
//! it fails, but is printed as a known failure; if it passes, it says so.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use deployer_aws::{DynamoLedger, DynamoTargetStore};
use deployer_core::model::LockOutcome;
use deployer_core::ports::{DeploymentLedger, TargetStore};
use deployer_core::spec::{self, TargetSpec};
use deployer_tests::fixture::{self, workspace_root};
use deployer_tests::stack::{self, Stack, STACK};
use deployer_tests::{sdk, unique};
use serde::Deserialize;
use serde_json::{json, Value};

const REPOSITORY: &str = "e2e-bad-input";
const BATCH: usize = 6;
const TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Event,
    Execution,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    #[serde(skip)]
    name: String,
    kind: Kind,
    input: Value,
    error: Option<String>,
    message: String,
    why: String,
    #[serde(default)]
    known_bug: Option<String>,
}

fn load_corpus(dir: &Path) -> Vec<Case> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let mut case: Case = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            case.name = p.file_stem().unwrap_or_default().to_string_lossy().into_owned();
            case
        })
        .collect()
}

/// What the placeholders of the corpus stand for in this run.
struct Vars {
    function: String,
    repository: String,
    digest: String,
    /// The image's one tag in ECR, and an allowed tag it does not carry.
    tag: String,
    other_tag: String,
}

impl Vars {
    fn text(&self, s: &str) -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end =
                rest[start..].find('}').map(|e| start + e).unwrap_or_else(|| panic!("unclosed placeholder in {s:?}"));
            let name = &rest[start + 2..end];
            match name {
                "FUNCTION" => out.push_str(&self.function),
                "REPOSITORY" => out.push_str(&self.repository),
                "DIGEST" => out.push_str(&self.digest),
                "TAG" => out.push_str(&self.tag),
                "OTHER_TAG" => out.push_str(&self.other_tag),
                "ACCOUNT" => out.push_str(sdk::ACCOUNT),
                "REGION" => out.push_str(sdk::REGION),
                _ => match name.strip_prefix("PAD:").and_then(|n| n.parse::<usize>().ok()) {
                    Some(n) => out.push_str(&"x".repeat(n)),
                    None => panic!("unknown placeholder ${{{name}}} in {s:?}"),
                },
            }
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        out
    }

    fn json(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.text(s)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.json(x)).collect()),
            Value::Object(o) => Value::Object(o.iter().map(|(k, x)| (self.text(k), self.json(x))).collect()),
            other => other.clone(),
        }
    }
}

struct Env {
    lambda: aws_sdk_lambda::Client,
    sfn: aws_sdk_sfn::Client,
    ledger: DynamoLedger,
    stack: &'static Stack,
    target: TargetSpec,
}

/// What one case did: what is wrong with it (empty when it passed), what it said, the execution it started.
struct Outcome {
    problems: Vec<String>,
    said: String,
    execution: Option<String>,
}

/// Everything a bad input must leave as it was.
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    alias_version: String,
    alias_revision: String,
    latest_revision: String,
    latest_code: String,
    versions: Vec<String>,
    deployments: BTreeSet<String>,
}

impl Snapshot {
    fn differences(&self, now: &Snapshot) -> Vec<String> {
        let mut out = Vec::new();
        let mut differ = |what: &str, before: String, after: String| {
            if before != after {
                out.push(format!("{what} changed from {before} to {after}"));
            }
        };
        differ("the alias's version", self.alias_version.clone(), now.alias_version.clone());
        differ("the alias's RevisionId", self.alias_revision.clone(), now.alias_revision.clone());
        differ("$LATEST's RevisionId", self.latest_revision.clone(), now.latest_revision.clone());
        differ("$LATEST's CodeSha256", self.latest_code.clone(), now.latest_code.clone());
        differ("the versions", format!("{:?}", self.versions), format!("{:?}", now.versions));
        let new: Vec<_> = now.deployments.difference(&self.deployments).collect();
        if !new.is_empty() {
            out.push(format!("new deployment execution(s) {new:?}"));
        }
        out
    }
}

impl Env {
    async fn snapshot(&self) -> Snapshot {
        let f = self.target.function.as_str();
        let alias = self.lambda.get_alias().function_name(f).name(self.target.alias.as_str()).send().await;
        let alias = alias.expect("the alias exists");
        let latest = self.lambda.get_function_configuration().function_name(f).send().await.expect("the function");
        let versions = self.lambda.list_versions_by_function().function_name(f).send().await.expect("versions");
        let prefix = format!("deploy-{f}-");
        let mut deployments = BTreeSet::new();
        let mut token = None;
        loop {
            let page = self
                .sfn
                .list_executions()
                .state_machine_arn(&self.stack.state_machine_arn)
                .max_results(1000)
                .set_next_token(token)
                .send()
                .await
                .expect("executions");
            deployments.extend(
                page.executions().iter().map(|e| e.name()).filter(|n| n.starts_with(&prefix)).map(String::from),
            );
            token = page.next_token().map(String::from);
            if token.is_none() {
                break;
            }
        }
        Snapshot {
            alias_version: alias.function_version().unwrap_or_default().to_string(),
            alias_revision: alias.revision_id().unwrap_or_default().to_string(),
            latest_revision: latest.revision_id().unwrap_or_default().to_string(),
            latest_code: latest.code_sha256().unwrap_or_default().to_string(),
            versions: versions.versions().iter().filter_map(|v| v.version().map(String::from)).collect(),
            deployments,
        }
    }

    /// (error name or None, message or ignored reason, problems beyond the expectation)
    async fn send_event(&self, event: &Value) -> (Option<String>, String, Vec<String>) {
        let (function_error, body) = stack::invoke_trigger(&self.lambda, event).await;
        if function_error.is_some() {
            let name = body["errorType"].as_str().unwrap_or("(no errorType)").to_string();
            return (Some(name), body["errorMessage"].as_str().unwrap_or_default().to_string(), vec![]);
        }
        let mut problems = Vec::new();
        for list in ["started", "duplicates"] {
            if body[list] != json!([]) {
                problems.push(format!("the trigger acted on it: {list} is {}", body[list]));
            }
        }
        let reason = body["ignored"][0]["reason"].as_str().map(String::from);
        if reason.is_none() {
            problems.push(format!("the trigger ignored nothing: {body}"));
        }
        (None, reason.unwrap_or_default(), problems)
    }

    async fn start_execution(&self, name: &str, input: &Value) -> (Option<String>, String, Vec<String>) {
        let started = self
            .sfn
            .start_execution()
            .state_machine_arn(&self.stack.state_machine_arn)
            .name(name)
            .input(input.to_string())
            .send()
            .await;
        let arn = match started {
            Ok(out) => out.execution_arn().to_string(),
            Err(e) => {
                let e = e.into_service_error();
                return (Some(e.meta().code().unwrap_or("(no code)").to_string()), e.to_string(), vec![]);
            }
        };
        let exec = stack::finished(&self.sfn, &arn, TIMEOUT).await;
        let problems = if exec.status == "FAILED" {
            vec![]
        } else {
            vec![format!("the execution ended {} (output {})", exec.status, exec.output)]
        };
        (Some(exec.error).filter(|e| !e.is_empty()), readable(&exec.cause), problems)
    }

    /// Who holds the function's deployment lock, if anyone. Asks by taking it (for a moment) as a probe.
    async fn lock_holder(&self) -> Option<String> {
        let (f, probe, now) = (&self.target.function, "bad-input-probe", deployer_core::steps::now_ms() as i64);
        match self.ledger.acquire(f, probe, now, now + 10_000).await.expect("the ledger answers") {
            LockOutcome::Acquired => {
                self.ledger.release(f, probe, None).await.expect("the probe releases the lock");
                None
            }
            LockOutcome::Held { owner, .. } => Some(owner),
        }
    }

    /// Run one case against `before`, the state it must leave as it is.
    async fn run(&self, case: &Case, vars: &Vars, before: &Snapshot) -> Outcome {
        let input = vars.json(&case.input);
        let execution = (case.kind == Kind::Execution).then(|| unique(&format!("bad-input-{}", clip(&case.name, 30))));
        let (error, message, mut problems) = match &execution {
            None => self.send_event(&input).await,
            Some(name) => self.start_execution(name, &input).await,
        };
        if error != case.error {
            problems.push(format!("error is {error:?}, expected {:?}", case.error));
        }
        let want = vars.text(&case.message);
        if !message.contains(&want) {
            problems.push(format!("message does not contain {:?}", clip(&want, 200)));
        }
        problems.extend(before.differences(&self.snapshot().await));
        // Only targets' executions are recorded: a request naming another function leaves no record of it.
        for name in ["target", "function"].iter().filter_map(|k| input.get(k).and_then(Value::as_str)) {
            let Ok(other) = deployer_core::ids::FunctionName::parse(name) else { continue };
            if other == self.target.function {
                continue;
            }
            let records = self.ledger.history(&other, 5).await.expect("the ledger answers");
            if !records.is_empty() {
                let execs: Vec<&str> = records.iter().map(|r| r.execution.as_str()).collect();
                problems.push(format!("{name}, which is no target, has records: {execs:?}"));
            }
        }
        let label = match (&error, case.kind) {
            (Some(name), _) => name.as_str(),
            (None, Kind::Event) => "ignored",
            (None, Kind::Execution) => "no error",
        };
        let said = format!("{label}: {}", clip(&message, 300));
        Outcome { problems, said, execution }
    }
}

/// A Lambda error as Step Functions records it (`{"errorType","errorMessage"}`) reads as its message.
fn readable(cause: &str) -> String {
    serde_json::from_str::<Value>(cause)
        .ok()
        .and_then(|v| v.get("errorMessage").and_then(Value::as_str).map(String::from))
        .unwrap_or_else(|| cause.to_string())
}

fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}... ({} bytes)", &s[..i], s.len()),
        None => s.to_string(),
    }
}

async fn setup() -> (Env, Vars) {
    let cfg = sdk::config().await;
    let stack = tokio::task::spawn_blocking(stack::ensure).await.expect("the stack");
    let ecr = aws_sdk_ecr::Client::new(&cfg);
    let _ = ecr.create_repository().repository_name(REPOSITORY).send().await;
    let role = sdk::role(&aws_sdk_iam::Client::new(&cfg), "e2e-service-role").await;
    let target = spec::parse(
        &json!({
            "function": unique("e2e-bad"),
            "repository": REPOSITORY,
            "tagPattern": "^sha-[0-9a-f]{7}$",
            "configuration": {"role": role, "memoryMb": 256, "timeoutSeconds": 5, "environment": {"MODE": "e2e"}},
            "smokeTest": {"cases": [{"name": "echo", "payload": {"echo": "smoke"}, "expect": {"echo": "smoke"}}]},
            "readyTimeoutSeconds": 60
        })
        .to_string(),
    )
    .expect("a valid spec");
    DynamoTargetStore::from_sdk(&cfg, &stack.targets_table).put(&target).await.expect("target stored");
    let sfn = aws_sdk_sfn::Client::new(&cfg);

    // A tag of its own per run: the push is an event even where an earlier run pushed the same image.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos());
    let tag = format!("sha-{:07x}", nanos.unwrap_or(0) & 0x0fff_ffff);
    let push_tag = tag.clone();
    let digest = tokio::task::spawn_blocking(move || fixture::push_image(REPOSITORY, &push_tag, "good"))
        .await
        .expect("the image is pushed");
    let name = format!("deploy-{}-{}", target.function, &digest["sha256:".len().."sha256:".len() + 12]);
    let exec = stack::finished(&sfn, &stack.execution_arn(&name), TIMEOUT).await;
    assert_eq!(exec.status, "SUCCEEDED", "the first deployment: {exec:?}");
    assert_eq!(exec.output["version"], "1", "{exec:?}");
    // The same pattern, another tag: the last hex digit moved on by one.
    let other_tag = {
        let last = u8::from_str_radix(&tag[tag.len() - 1..], 16).expect("a hex tag");
        format!("{}{:x}", &tag[..tag.len() - 1], (last + 1) % 16)
    };
    let vars =
        Vars { function: target.function.to_string(), repository: REPOSITORY.to_string(), digest, tag, other_tag };
    // The stack's deployments table (template.yaml: `${AWS::StackName}-deployments`).
    let ledger = DynamoLedger::from_sdk(&cfg, &format!("{STACK}-deployments"));
    (Env { lambda: aws_sdk_lambda::Client::new(&cfg), sfn, ledger, stack, target }, vars)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_precisely_and_changes_nothing() {
    let cases = load_corpus(&workspace_root().join("tests/fixtures/bad-input"));
    assert!(!cases.is_empty(), "the corpus is empty");
    let (env, vars) = setup().await;
    let initial = env.snapshot().await;
    assert_eq!((initial.alias_version.as_str(), initial.versions.len()), ("1", 2), "{initial:?}");
    let (env, vars) = (Arc::new(env), Arc::new(vars));

    let (mut passed, mut failed) = (0, 0);
    let mut baseline = initial.clone();
    for batch in cases.chunks(BATCH) {
        let names: Vec<&str> = batch.iter().map(|c| c.name.as_str()).collect();
        let mut tasks = Vec::new();
        for case in batch {
            let (env, vars, case, before) = (env.clone(), vars.clone(), case.clone(), baseline.clone());
            tasks.push(tokio::spawn(async move { env.run(&case, &vars, &before).await }));
        }
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.unwrap_or_else(|e| Outcome {
                problems: vec![format!("the case panicked: {e}")],
                said: String::new(),
                execution: None,
            }));
        }
        // Every execution of the batch has ended, so nobody may hold the function's lock: a holder is
        // the case whose execution took it and never gave it back (released here for the next batch).
        if let Some(owner) = env.lock_holder().await {
            let problem = format!("its execution {owner} still holds the deployment lock of {}", vars.function);
            match outcomes.iter_mut().find(|o| o.execution.as_deref() == Some(owner.as_str())) {
                Some(o) => o.problems.push(problem),
                None => {
                    println!("FAILED     batch {names:?}: {owner} holds the deployment lock of {}", vars.function);
                    failed += 1;
                }
            }
            let _ = env.ledger.release(&env.target.function, &owner, None).await;
        }
        for (case, Outcome { problems, said, .. }) in batch.iter().zip(outcomes) {
            let changed = problems.iter().any(|p| p.contains("changed") || p.contains("new deployment"));
            let alongside = if changed { format!(" [ran alongside {names:?}]") } else { String::new() };
            let problems = problems.join("; ");
            match (problems.is_empty(), &case.known_bug) {
                (true, None) => println!("ok         {}: {said}", case.name),
                (true, Some(bug)) => {
                    println!(
                        "ok         {}: {said} (marked known_bug {bug:?}: it passes now, remove the mark)",
                        case.name
                    )
                }
                (false, None) => {
                    println!("FAILED     {} ({}): {problems}{alongside}; it said {said}", case.name, case.why)
                }
                (false, Some(bug)) => {
                    println!("KNOWN BUG  {} ({}): {bug}: {problems}{alongside}; it said {said}", case.name, case.why)
                }
            }
            if problems.is_empty() {
                passed += 1;
            } else {
                failed += 1;
            }
        }
        // A change is reported once, by the batch that made it; later batches are judged from here.
        baseline = env.snapshot().await;
    }
    // Anything started in the background (an execution a bad event started) has had time to act.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let last = initial.differences(&env.snapshot().await);
    // Later runs against the same local AWS must not deploy this run's function.
    let _ =
        DynamoTargetStore::from_sdk(&sdk::config().await, &env.stack.targets_table).delete(&env.target.function).await;
    deployer_tests::report("bad-input", &format!("bad input: {passed} passed, {failed} failed"));
    assert!(failed == 0, "{failed} bad-input case(s) failed (see the lines above)");
    assert!(last.is_empty(), "the corpus as a whole changed something: {last:?}");
}
