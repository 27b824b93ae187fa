//! Progressive delivery end to end on local AWS: canary and linear shifts through the alias's weighted
//! routing, with real traffic sent through the alias while they run, judged by the health gates (metrics
//! by ExecutedVersion, alarms), and steered by an operator with `deployctl` (promote, abort, rollback
//! --to). Time is compressed through the spec (bakes of seconds), not by special code paths.

use std::process::Command;
use std::time::{Duration, Instant};

use deployer_aws::{DynamoLedger, DynamoTargetStore};
use deployer_core::model::Outcome;
use deployer_core::ports::{DeploymentLedger, TargetStore};
use deployer_core::spec::{self, TargetSpec};
use deployer_tests::stack::{self, notifications, notifications_queue, Execution, Stack, STACK};
use deployer_tests::traffic::Traffic;
use deployer_tests::{fixture, readme, sdk, unique};
use serde_json::{json, Value};

const REPO: &str = "e2e-progressive";
const TIMEOUT: Duration = Duration::from_secs(240);

struct Env {
    lambda: aws_sdk_lambda::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    sfn: aws_sdk_sfn::Client,
    store: DynamoTargetStore,
    ledger: DynamoLedger,
    stack: &'static Stack,
    role: String,
}

async fn env() -> Env {
    let cfg = sdk::config().await;
    let stack = tokio::task::spawn_blocking(stack::ensure).await.unwrap();
    let _ = aws_sdk_ecr::Client::new(&cfg).create_repository().repository_name(REPO).send().await;
    Env {
        lambda: aws_sdk_lambda::Client::new(&cfg),
        cloudwatch: aws_sdk_cloudwatch::Client::new(&cfg),
        sfn: aws_sdk_sfn::Client::new(&cfg),
        store: DynamoTargetStore::from_sdk(&cfg, &stack.targets_table),
        ledger: DynamoLedger::from_sdk(&cfg, &format!("{STACK}-deployments")),
        role: sdk::role(&aws_sdk_iam::Client::new(&cfg), "e2e-service-role").await,
        stack,
    }
}

use deployer_tests::stack::{deployctl_in as run_deployctl_in, run_deployctl};

#[tokio::test]
async fn the_readmes_target_commands_manage_a_target_as_written() {
    let env = env().await;
    // The README's commands, with `<function>` filled in, run in a folder holding `spec.json`.
    let commands = readme::target_commands();
    let verbs: Vec<&str> = commands.iter().map(|c| c[1].as_str()).collect();
    assert_eq!(verbs, ["validate", "apply", "list", "show", "delete"], "{commands:?}");
    let function = unique("e2e-pd-target");
    let command = |verb: &str| {
        let c = commands.iter().find(|c| c[1] == verb).unwrap();
        c.iter().map(|w| w.replace("<function>", &function)).collect::<Vec<_>>()
    };
    let dir = std::env::temp_dir().join(unique("readme-target"));
    std::fs::create_dir_all(&dir).unwrap();
    let spec = json!({"function": function, "repository": REPO, "tagPattern": "^v[0-9]+$",
                      "configuration": {"role": env.role, "memoryMb": 256, "timeoutSeconds": 5},
                      "smokeTest": {"cases": [{"name": "echo", "payload": {"echo": "x"}, "expect": {"echo": "x"}}]}});
    let stored =
        || async { env.store.get(&deployer_core::ids::FunctionName::parse(&function).unwrap()).await.unwrap() };

    // GIVEN a spec with a wrong field, THEN validate and apply name it, and nothing is stored
    let mut bad = spec.clone();
    bad["configuration"]["memoryMb"] = json!(64);
    std::fs::write(dir.join("spec.json"), bad.to_string()).unwrap();
    for verb in ["validate", "apply"] {
        let (ok, out) = run_deployctl_in(&dir, command(verb)).await;
        assert!(!ok && out.contains("memoryMb"), "{verb}: {out}");
    }
    assert!(stored().await.is_none(), "a refused spec was stored");

    // GIVEN a good spec: validate, apply, list, show, delete, as the README writes them
    std::fs::write(dir.join("spec.json"), spec.to_string()).unwrap();
    let (ok, out) = run_deployctl_in(&dir, command("validate")).await;
    assert!(ok && out.contains(&format!("valid target for {function}")), "{out}");
    let (ok, out) = run_deployctl_in(&dir, command("apply")).await;
    assert!(ok, "{out}");
    assert_eq!(stored().await.map(|t| t.repository.to_string()).as_deref(), Some(REPO));
    let (ok, out) = run_deployctl_in(&dir, command("list")).await;
    assert!(ok && out.contains(&function), "{out}");
    let (ok, out) = run_deployctl_in(&dir, command("show")).await;
    let shown: Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("show prints the spec as JSON ({e}): {out}"));
    assert!(ok && shown["function"] == function.as_str(), "{out}");
    let (ok, out) = run_deployctl_in(&dir, command("delete")).await;
    assert!(ok && out.contains("deleted"), "{out}");
    assert!(stored().await.is_none());
    // AND a second delete, or a show, says there is no such target
    for verb in ["show", "delete"] {
        let (ok, out) = run_deployctl_in(&dir, command(verb)).await;
        assert!(!ok && out.contains(&format!("no target named {function}")), "{verb}: {out}");
    }
}

#[tokio::test]
async fn a_stack_name_that_is_not_deployed_is_one_line_that_says_to_name_it_and_changes_nothing() {
    let env = env().await;
    let t = env.target(json!({"type": "all-at-once"}), gates(json!({}))).await;
    let f = t.function.to_string();
    let dir = std::env::temp_dir();
    let wrong = "no-such-deployer";
    // WHEN each verb names a stack that is not deployed in this account and region
    for args in [
        vec!["history", f.as_str()],
        vec!["status", f.as_str()],
        vec!["deploy", f.as_str(), "--tag", "v1"],
        vec!["promote", f.as_str()],
        vec!["rollback", f.as_str()],
        vec!["target", "list"],
        vec!["target", "show", f.as_str()],
    ] {
        let mut line = vec!["--stack".to_string(), wrong.to_string()];
        line.extend(args.iter().map(|a| a.to_string()));
        let (code, out) = stack::deployctl_code(&dir, line).await;
        // THEN it fails (exit 1) with one line naming the stack and how to name another, not AWS's raw answer
        assert_eq!(code, 1, "{args:?}: {out}");
        assert_eq!(out.lines().count(), 1, "{args:?}: not one line: {out}");
        assert!(out.contains(&format!("no deployer stack {wrong}")) && out.contains("--stack"), "{args:?}: {out}");
    }
    // AND the real stack's target and records are as they were: nothing was started or written
    assert_eq!(env.store.get(&t.function).await.unwrap(), Some(t.clone()));
    assert!(env.ledger.history(&t.function, 10).await.unwrap().is_empty());
    assert!(env.ledger.holder(&t.function).await.unwrap().is_none());
    env.store.delete(&t.function).await.unwrap();
}

#[tokio::test]
async fn validate_and_apply_refuse_alike_what_the_stack_its_storage_or_aws_would_refuse() {
    let env = env().await;
    let function = unique("e2e-pd-policy");
    let dir = std::env::temp_dir().join(unique("spec-checks"));
    std::fs::create_dir_all(&dir).unwrap();
    let spec = json!({"function": function, "repository": REPO, "tagPattern": "^v[0-9]+$",
                      "configuration": {"role": env.role, "memoryMb": 256, "timeoutSeconds": 5},
                      "smokeTest": {"cases": [{"name": "echo", "payload": {"echo": "x"}, "expect": {"echo": "x"}}]}});
    let with = |pointer: &str, value: Value| {
        let mut doc = spec.clone();
        *doc.pointer_mut(pointer).unwrap_or_else(|| panic!("{pointer}")) = value;
        doc
    };
    let strategy = |s: Value| {
        let mut doc = spec.clone();
        doc["strategy"] = s;
        doc.to_string()
    };
    let outside = format!("payments-{}", unique("api"));
    let cases: Vec<(&str, String, String)> = vec![
        ("text after the document", format!("{spec}\n{{\"function\": \"e2e-other\"}}"), "trailing characters at line 2".into()),
        ("a key given twice", spec.to_string().replacen('{', "{\"function\": \"e2e-other\", ", 1), "duplicate field `function`".into()),
        (
            "a wrong field inside the strategy",
            strategy(json!({"type": "canary", "percent": "ten", "bakeSeconds": 60})),
            "strategy.percent: invalid type: string \"ten\"".into(),
        ),
        (
            "a field the strategy's type does not have",
            strategy(json!({"type": "all-at-once", "bakeSeconds": 600})),
            "strategy.bakeSeconds: unknown field `bakeSeconds`".into(),
        ),
        (
            "a function outside TargetFunctionPrefix",
            with("/function", json!(outside)).to_string(),
            format!("function: \"{outside}\" does not start with the stack's TargetFunctionPrefix \"e2e-\""),
        ),
        (
            "a role outside TargetRolePrefix",
            with("/configuration/role", json!(format!("arn:aws:iam::{}:role/admin", sdk::ACCOUNT))).to_string(),
            "configuration.role: ".to_string() + "\"arn:aws:iam::123456789012:role/admin\": role \"admin\" does not start with the stack's TargetRolePrefix \"e2e-\"",
        ),
        (
            "a role of another account",
            with("/configuration/role", json!("arn:aws:iam::999999999999:role/e2e-service-role")).to_string(),
            "is a role of account 999999999999; the deployer passes only roles of its own account 123456789012".into(),
        ),
        (
            "a repository not among AllowedRepositories",
            with("/repository", json!("e2e-outside-policy")).to_string(),
            "repository: \"e2e-outside-policy\" is not among the stack's AllowedRepositories (e2e-deploy, ".into(),
        ),
        (
            "an alarm outside GateAlarmPrefix",
            { let mut d = spec.clone(); d["gates"] = json!({"alarms": ["billing-high"]}); d.to_string() },
            "gates.alarms[0]: \"billing-high\" does not start with the stack's GateAlarmPrefix \"e2e-\"".into(),
        ),
        (
            "a spec too large to carry through the state machine",
            with("/smokeTest/cases/0/payload", json!({"rows": "x".repeat(70_000)})).to_string(),
            "(spec): is 70".into(),
        ),
    ];
    let stored =
        || async { env.store.get(&deployer_core::ids::FunctionName::parse(&function).unwrap()).await.unwrap() };
    for (what, text, says) in &cases {
        std::fs::write(dir.join("spec.json"), text).unwrap();
        for verb in ["validate", "apply"] {
            let (ok, out) = run_deployctl_in(&dir, vec!["target".into(), verb.into(), "spec.json".into()]).await;
            assert!(!ok && out.contains(says.as_str()), "{what}: {verb}: {out}");
        }
        assert!(stored().await.is_none(), "{what}: a refused spec was stored");
    }
    // --offline checks the spec alone; a stack that is not there is named, with what to do
    std::fs::write(dir.join("spec.json"), with("/function", json!(outside)).to_string()).unwrap();
    let (ok, out) =
        run_deployctl_in(&dir, vec!["target".into(), "validate".into(), "--offline".into(), "spec.json".into()]).await;
    assert!(ok && out.contains("not checked (--offline)"), "{out}");
    let (ok, out) = stack::deployctl_with(&dir, &["--stack", "no-such-stack", "target", "validate", "spec.json"]).await;
    assert!(!ok && out.contains("no deployer stack no-such-stack in this account and region"), "{out}");

    // GIVEN the largest spec the deployer carries (exactly MAX_SPEC_BYTES as JSON), THEN validate and apply
    // both take it, and it reads back as it was stored (DynamoDB's 400 KB item limit is far above it)
    let size = |doc: &Value| serde_json::to_vec(&spec::parse(&doc.to_string()).unwrap()).unwrap().len();
    let base = with("/smokeTest/cases/0/payload", json!({"rows": ""}));
    let fill = spec::MAX_SPEC_BYTES - size(&base);
    let largest = with("/smokeTest/cases/0/payload", json!({"rows": "x".repeat(fill)}));
    assert_eq!(size(&largest), spec::MAX_SPEC_BYTES);
    std::fs::write(dir.join("spec.json"), largest.to_string()).unwrap();
    for verb in ["validate", "apply"] {
        let (ok, out) = run_deployctl_in(&dir, vec!["target".into(), verb.into(), "spec.json".into()]).await;
        assert!(ok, "{verb} of the largest spec: {out}");
    }
    let back = stored().await.expect("the largest spec was stored");
    assert_eq!(back, spec::parse(&largest.to_string()).unwrap());
    // ... and one byte more is refused by both
    let over = with("/smokeTest/cases/0/payload", json!({"rows": "x".repeat(fill + 1)}));
    std::fs::write(dir.join("spec.json"), over.to_string()).unwrap();
    for verb in ["validate", "apply"] {
        let (ok, out) = run_deployctl_in(&dir, vec!["target".into(), verb.into(), "spec.json".into()]).await;
        assert!(!ok && out.contains(&format!("(spec): is {} bytes", spec::MAX_SPEC_BYTES + 1)), "{verb}: {out}");
    }
    env.store.delete(&back.function).await.unwrap();
}

/// Gates sized for tests: a step is judged on at least 8 candidate invocations, checked every second; p99
/// differences under 500 ms are noise here (two cores run the functions, the steps and the tests). Their
/// metricLagSeconds is local AWS's ingest lag (set in `target`).
fn gates(extra: Value) -> Value {
    let mut g = json!({"minInvocations": 8, "checkIntervalSeconds": 1,
                       "maxWaitSeconds": 30, "maxErrorRate": 0.05, "p99Margin": 0.5,
                       "p99ToleranceMs": 500});
    g.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    g
}

impl Env {
    async fn target(&self, strategy: Value, mut gates: Value) -> TargetSpec {
        let function = unique("e2e-pd");
        // What a team sets where metrics arrive late: the lag of this CloudWatch (local AWS's, configured).
        if gates.get("metricLagSeconds").is_none() {
            gates["metricLagSeconds"] = json!(sdk::metric_lag_seconds().await.ceil() as u32);
        }
        let spec = spec::parse(
            &json!({
                "function": function,
                "repository": REPO,
                "tagPattern": format!("^{function}-v[0-9]+$"),
                "configuration": {"role": self.role, "memoryMb": 256, "timeoutSeconds": 5,
                                  "logging": {"format": "JSON", "applicationLevel": "INFO"}},
                "smokeTest": {"latencyBudgetMs": 3000, "cases": [
                    {"name": "echo", "payload": {"echo": "smoke"}, "expect": {"echo": "smoke"}}
                ]},
                "strategy": strategy,
                "gates": gates,
                "readyTimeoutSeconds": 60
            })
            .to_string(),
        )
        .expect("a valid spec");
        self.store.put(&spec).await.expect("target stored");
        spec
    }

    /// Push `<function>-<label>` built with `args`; its push starts a deployment. The digest and that
    /// execution's name.
    async fn push(&self, t: &TargetSpec, label: &str, args: &[(&str, &str)]) -> (String, String) {
        let tag = format!("{}-{label}", t.function);
        let mut args: Vec<(String, String)> = args.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        args.push(("VARIANT".into(), tag.clone()));
        let digest = tokio::task::spawn_blocking(move || {
            let args: Vec<(&str, &str)> = args.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            fixture::push_image_with(REPO, &tag, &args)
        })
        .await
        .unwrap();
        let name = format!("deploy-{}-{}", t.function, &digest["sha256:".len().."sha256:".len() + 12]);
        (digest, name)
    }

    /// Start an execution with `input` as the README says to (the `aws` CLI, no `--name`); how it ended.
    async fn start_as_the_readme_says(&self, input: &Value) -> Execution {
        let template =
            readme::command("aws stepfunctions start-execution --state-machine-arn <StateMachineArn> --input '...'");
        let command = template
            .replace("<StateMachineArn>", &self.stack.state_machine_arn)
            .replace("'...'", &format!("'{input}'"));
        let out = tokio::task::spawn_blocking(move || {
            Command::new("bash").args(["-c", &command]).output().expect("bash runs")
        })
        .await
        .unwrap();
        assert!(out.status.success(), "{template}\n{}", String::from_utf8_lossy(&out.stderr));
        let started: Value = serde_json::from_slice(&out.stdout).expect("start-execution prints JSON");
        let arn = started["executionArn"].as_str().expect("an execution ARN").to_string();
        stack::finished(&self.sfn, &arn, TIMEOUT).await
    }

    async fn wait(&self, name: &str) -> Execution {
        stack::finished(&self.sfn, &self.stack.execution_arn(name), TIMEOUT).await
    }

    /// The alias: (version, additional version and weight).
    async fn alias(&self, t: &TargetSpec) -> (String, Option<(String, f64)>) {
        let a = self.lambda.get_alias().function_name(t.function.as_str()).name("live").send().await.unwrap();
        let extra = a
            .routing_config()
            .and_then(|r| r.additional_version_weights())
            .and_then(|w| w.iter().next().map(|(v, w)| (v.clone(), *w)));
        (a.function_version().unwrap().to_string(), extra)
    }

    /// Wait until the alias sends some traffic to another version (a shift has begun).
    async fn until_weighted(&self, t: &TargetSpec) -> (String, f64) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let (_, Some(extra)) = self.alias(t).await {
                return extra;
            }
            assert!(Instant::now() < deadline, "the alias of {} never became weighted", t.function);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A deployed first version (a function's first deployment goes all at once: nothing to compare with).
    async fn first_version(&self, t: &TargetSpec) -> String {
        let (_, name) = self.push(t, "v1", &[]).await;
        let exec = self.wait(&name).await;
        assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
        assert_eq!(self.alias(t).await.1, None);
        self.alias(t).await.0
    }

    fn traffic(&self, t: &TargetSpec) -> Traffic {
        Traffic::start(self.lambda.clone(), t.function.to_string())
    }

    /// The states an execution entered, in order.
    async fn states(&self, name: &str) -> Vec<String> {
        let arn = self.stack.execution_arn(name);
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self.sfn.get_execution_history().execution_arn(&arn).set_next_token(token).send().await.unwrap();
            out.extend(
                page.events().iter().filter_map(|e| e.state_entered_event_details().map(|d| d.name().to_string())),
            );
            token = page.next_token().map(str::to_string);
            if token.is_none() {
                return out;
            }
        }
    }
}

#[tokio::test]
async fn a_healthy_linear_shift_moves_traffic_stepwise_to_the_new_version() {
    let env = env().await;
    let t = env.target(json!({"type": "linear", "stepPercent": 40, "intervalSeconds": 3}), gates(json!({}))).await;
    let v1 = env.first_version(&t).await;
    let traffic = env.traffic(&t);

    let (_, name) = env.push(&t, "v2", &[]).await;
    let (extra, weight) = env.until_weighted(&t).await;
    assert_eq!(weight, 0.4, "the first step sends 40%");
    let exec = env.wait(&name).await;
    let seen = traffic.stop().await;

    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
    assert_eq!(env.alias(&t).await, (extra.clone(), None), "all traffic on the new version, no weights left");
    assert_ne!(extra, v1);
    let states = env.states(&name).await;
    assert_eq!(states.iter().filter(|s| *s == "Shift Traffic").count(), 2, "40% then 80%: {states:?}");
    assert!(states.iter().filter(|s| *s == "Check Health").count() >= 6, "{states:?}");
    assert!(seen.get(&v1).is_some_and(|(n, _)| *n > 0) && seen.get(&extra).is_some_and(|(n, _)| *n > 0), "{seen:?}");
    assert!(seen.values().all(|(_, errors)| *errors == 0), "{seen:?}");
    let r = env.ledger.history(&t.function, 5).await.unwrap();
    assert_eq!((r[0].outcome, r[0].version_after.as_deref()), (Outcome::Deployed, Some(extra.as_str())));
    println!("linear 40/80/100 served {seen:?}");
}

#[tokio::test]
async fn a_canary_that_fails_on_real_traffic_is_rolled_back_with_the_gates_numbers() {
    let env = env().await;
    let (sqs, queue) = notifications_queue().await;
    let t = env.target(json!({"type": "canary", "percent": 25, "bakeSeconds": 20}), gates(json!({}))).await;
    let v1 = env.first_version(&t).await;
    let traffic = env.traffic(&t);

    // The new build passes its smoke test but fails every real request.
    let (_, name) = env.push(&t, "v2", &[("TRAFFIC", "fail")]).await;
    let (candidate, _) = env.until_weighted(&t).await;
    let exec = env.wait(&name).await;
    let seen = traffic.stop().await;

    assert_eq!((exec.status.as_str(), exec.error.as_str()), ("FAILED", "GateFailed"), "{exec:?}");
    assert!(exec.cause.contains("error rate 100.0%") && exec.cause.contains("over the limit 5.0%"), "{}", exec.cause);
    assert!(exec.cause.contains(&format!("25% on version {candidate}")), "{}", exec.cause);
    assert!(exec.cause.contains(&format!("sent 25% of its traffic to version {candidate}; all of it is back")));
    assert_eq!(env.alias(&t).await, (v1.clone(), None), "all traffic back on the old version at once");
    assert!(seen.get(&candidate).is_some_and(|(n, e)| n == e && *n > 0), "the canary failed what it got: {seen:?}");
    assert_eq!(seen.get(&v1).map(|(_, e)| *e), Some(0), "{seen:?}");

    // The notification topic had one line for each start and end: v1 started and succeeded, v2 started and
    // failed, rolled back, with the gate's numbers.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut lines = Vec::new();
    while lines.len() < 4 && Instant::now() < deadline {
        lines.extend(notifications(&sqs, &queue, t.function.as_str()).await);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let has = |status: &str, what: &str| lines.iter().any(|l| l.contains(&format!("is {status}.")) && l.contains(what));
    assert!(has("RUNNING", &name) && has("SUCCEEDED", &t.function.to_string()), "{lines:#?}");
    assert!(has("FAILED", "GateFailed: ") && has("FAILED", "error rate 100.0%"), "{lines:#?}");
    assert!(has("FAILED", "all of it is back on version"), "{lines:#?}");
    assert_eq!(lines.len(), 4, "one line per start and end: {lines:#?}");
}

#[tokio::test]
async fn a_canary_slower_than_the_version_it_replaces_is_rolled_back() {
    let env = env().await;
    let t = env.target(json!({"type": "canary", "percent": 25, "bakeSeconds": 6}), gates(json!({}))).await;
    let v1 = env.first_version(&t).await;
    let traffic = env.traffic(&t);

    let (_, name) = env.push(&t, "v2", &[("TRAFFIC", "slow:1500")]).await;
    let exec = env.wait(&name).await;
    let seen = traffic.stop().await;

    assert_eq!((exec.status.as_str(), exec.error.as_str()), ("FAILED", "GateFailed"), "{exec:?}");
    assert!(exec.cause.contains("p99 duration") && exec.cause.contains("over the baseline's"), "{}", exec.cause);
    assert_eq!(env.alias(&t).await, (v1, None));
    println!("slow canary: {} ({seen:?})", exec.cause);
}

#[tokio::test]
async fn an_alarm_in_alarm_stops_the_shift() {
    let env = env().await;
    let alarm = unique("e2e-pd-alarm");
    let t = env
        .target(json!({"type": "canary", "percent": 25, "bakeSeconds": 30}), gates(json!({"alarms": [alarm]})))
        .await;
    env.cloudwatch
        .put_metric_alarm()
        .alarm_name(&alarm)
        .namespace("AWS/Lambda")
        .metric_name("Errors")
        .statistic(aws_sdk_cloudwatch::types::Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanOrEqualToThreshold)
        .send()
        .await
        .unwrap();
    let v1 = env.first_version(&t).await;
    let traffic = env.traffic(&t);

    let (_, name) = env.push(&t, "v2", &[]).await;
    env.until_weighted(&t).await;
    env.cloudwatch
        .set_alarm_state()
        .alarm_name(&alarm)
        .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
        .state_reason("downstream latency SLO breached")
        .send()
        .await
        .unwrap();
    let exec = env.wait(&name).await;
    traffic.stop().await;

    assert_eq!((exec.status.as_str(), exec.error.as_str()), ("FAILED", "GateFailed"), "{exec:?}");
    assert!(
        exec.cause.contains(&format!("alarm {alarm} is in ALARM: downstream latency SLO breached")),
        "{}",
        exec.cause
    );
    assert_eq!(env.alias(&t).await, (v1, None));
}

#[tokio::test]
async fn an_operator_promotes_aborts_and_rolls_back_mid_flight() {
    let env = env().await;
    // A bake far longer than the test: only the operator ends it.
    let t = env.target(json!({"type": "canary", "percent": 20, "bakeSeconds": 600}), gates(json!({}))).await;
    let f = t.function.to_string();
    let v1 = env.first_version(&t).await;
    let traffic = env.traffic(&t);

    // promote: all traffic moves at the next check, long before the bake would end
    let (_, name) = env.push(&t, "v2", &[]).await;
    let (v2, _) = env.until_weighted(&t).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (ok, status) = run_deployctl(&readme::deployctl_args("status", &f, &[])).await;
    assert!(ok && status.contains(&name) && status.contains(&format!("version {v2} 20%")), "{status}");
    assert!(status.contains("last health check: step 1 of 1 (20% on version"), "{status}");
    let started = Instant::now();
    let (ok, out) =
        run_deployctl(&readme::deployctl_args("promote", &f, &[("--reason", "dashboards look fine")])).await;
    assert!(ok, "{out}");
    let exec = env.wait(&name).await;
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(env.alias(&t).await, (v2.clone(), None));

    // abort: rolled back to the version it replaced, with the operator's reason
    let (_, name) = env.push(&t, "v3", &[]).await;
    env.until_weighted(&t).await;
    let (ok, out) = run_deployctl(&readme::deployctl_args("abort", &f, &[("--reason", "wrong model uploaded")])).await;
    assert!(ok, "{out}");
    let exec = env.wait(&name).await;
    assert_eq!((exec.status.as_str(), exec.error.as_str()), ("FAILED", "Aborted"), "{exec:?}");
    assert!(exec.cause.contains("wrong model uploaded"), "{}", exec.cause);
    assert_eq!(env.alias(&t).await, (v2.clone(), None));

    // rollback mid-flight: the running canary is told to roll back, and the alias returns once to the version
    // that served before it (v2), not one further back
    let (_, name) = env.push(&t, "v4", &[]).await;
    env.until_weighted(&t).await;
    // ... a version named meanwhile would race the canary's own rollback: refused, nothing moves
    let (ok, out) = run_deployctl(&readme::deployctl_args(
        "rollback",
        &f,
        &[("--to", &v1), ("--reason", "back to the first model")],
    ))
    .await;
    assert!(!ok && out.contains("Roll back without a version"), "{out}");
    assert!(env.alias(&t).await.1.is_some(), "the canary is still weighted");
    let (ok, out) = run_deployctl(&readme::deployctl_args("rollback", &f, &[("--reason", "v4 looks wrong")])).await;
    assert!(ok && out.contains("told to roll back"), "{out}");
    let exec = env.wait(&name).await;
    assert_eq!(exec.error, "Aborted", "{exec:?}");
    assert!(exec.cause.contains("v4 looks wrong"), "{}", exec.cause);
    assert_eq!(env.alias(&t).await, (v2.clone(), None));
    // ... and the same as raw input (`{"action": "rollback", ...}`, as the README writes it) during a bake
    let (_, name) = env.push(&t, "v5", &[]).await;
    env.until_weighted(&t).await;
    let sent = env.start_as_the_readme_says(&readme::execution_input("rollback", &f, "from the console")).await;
    assert_eq!(sent.status, "SUCCEEDED", "{sent:?}");
    let exec = env.wait(&name).await;
    assert_eq!(exec.error, "Aborted", "{exec:?}");
    assert_eq!(env.alias(&t).await, (v2.clone(), None));
    assert!(env.ledger.holder(&t.function).await.unwrap().is_none());

    // the same by hand, as the README writes it: `aws stepfunctions start-execution ... --input '{"action":"promote",...}'`
    let (_, name) = env.push(&t, "v6", &[]).await;
    let (v6, _) = env.until_weighted(&t).await;
    let sent = env.start_as_the_readme_says(&readme::execution_input("promote", &f, "from the console")).await;
    assert_eq!((sent.status.as_str(), sent.output["execution"].as_str()), ("SUCCEEDED", Some(name.as_str())));
    assert_eq!(env.wait(&name).await.status, "SUCCEEDED");
    assert_eq!(env.alias(&t).await, (v6.clone(), None));
    let seen = traffic.stop().await;
    assert!(seen.values().all(|(_, errors)| *errors == 0), "{seen:?}");
    // with nothing running, the command is refused and nothing is recorded
    let refused = env.start_as_the_readme_says(&readme::execution_input("abort", &f, "nothing to abort")).await;
    assert_eq!((refused.status.as_str(), refused.error.as_str()), ("FAILED", "InvalidInput"), "{refused:?}");
    assert!(refused.cause.contains("no deployment of"), "{refused:?}");

    // the README's `deployctl history <fn>`: each execution on record, with its outcome and who started it
    let (ok, out) = run_deployctl(&readme::deployctl_args("history", &f, &[])).await;
    assert!(ok && out.contains(&name) && out.contains("deployed") && out.contains("operator"), "{out}");
    // the README's `deployctl deploy <fn> --tag T`, for the image already live: nothing to do (exit 3),
    // said in one line, not the plan; nothing moves
    let tag = format!("{f}-v6");
    let mut args = vec!["--stack".to_string(), stack::STACK.to_string()];
    args.extend(readme::deployctl_args("deploy", &f, &[("--tag", &tag)]));
    let (code, out) = stack::deployctl_code(&std::env::temp_dir(), args).await;
    assert_eq!(code, 3, "{out}");
    let last = out.lines().last().unwrap_or_default();
    assert!(last.starts_with("nothing to do: alias") && last.contains(&tag), "{out}");
    assert!(!out.contains("\"imageUri\""), "the plan is not dumped: {out}");
    assert_eq!(env.alias(&t).await, (v6, None));

    // unknown functions get a clear error
    let (ok, out) = run_deployctl(&readme::deployctl_args("promote", "e2e-no-such-function", &[])).await;
    assert!(!ok && out.contains("no deployment of e2e-no-such-function is running"), "{out}");
}

/// The record of `execution` for `t`, once it is there.
async fn record_of(env: &Env, t: &TargetSpec, execution: &str) -> deployer_core::model::DeploymentRecord {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let records = env.ledger.history(&t.function, 50).await.unwrap();
        if let Some(r) = records.into_iter().find(|r| r.execution == execution) {
            return r;
        }
        assert!(Instant::now() < deadline, "no record of {execution}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn three_pushes_during_a_canary_bake_end_with_the_newest_live_and_the_others_superseded() {
    // GIVEN a canary of v2 baking (a bake longer than the test: an operator's promote ends it)
    let env = env().await;
    let (sqs, notes) = notifications_queue().await;
    let t = env.target(json!({"type": "canary", "percent": 20, "bakeSeconds": 600}), gates(json!({}))).await;
    let f = t.function.to_string();
    env.first_version(&t).await;
    let traffic = env.traffic(&t);
    let (_, running) = env.push(&t, "v2", &[]).await;
    let (v2, _) = env.until_weighted(&t).await;

    // WHEN three more images are pushed while it bakes (in three different seconds)
    let mut pushes = Vec::new();
    for label in ["v3", "v4", "v5"] {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        pushes.push(env.push(&t, label, &[]).await);
    }
    let [(_, name3), (d4, name4), (d5, name5)] = <[_; 3]>::try_from(pushes).unwrap();

    // THEN each push's execution ends at once, queued behind the canary, which keeps baking
    for name in [&name3, &name4, &name5] {
        let exec = env.wait(name).await;
        assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
        assert_eq!(exec.output["queued"]["behind"], running.as_str(), "{exec:?}");
    }
    assert_eq!(env.alias(&t).await.1.as_ref().map(|(v, _)| v.as_str()), Some(v2.as_str()));
    // ... v3 and v4, each replaced by the next push, are recorded superseded naming their replacement
    let r3 = record_of(&env, &t, &name3).await;
    assert_eq!(r3.outcome, Outcome::Superseded, "{r3:?}");
    assert!(r3.cause.as_deref().unwrap_or_default().contains(&d4), "{r3:?}");
    let r4 = record_of(&env, &t, &name4).await;
    assert_eq!(r4.outcome, Outcome::Superseded, "{r4:?}");
    assert!(r4.cause.as_deref().unwrap_or_default().contains(&d5), "{r4:?}");
    assert_eq!(record_of(&env, &t, &name5).await.outcome, Outcome::Queued);
    // ... and the operator sees the running deployment and the image waiting
    let (ok, status) = run_deployctl(&readme::deployctl_args("status", &f, &[])).await;
    assert!(ok && status.contains(&format!("running: {running}")), "{status}");
    assert!(status.contains(&format!("pending: {d5}")) && status.contains(&name5), "{status}");

    // WHEN the canary completes (promoted)
    let (ok, out) = run_deployctl(&readme::deployctl_args("promote", &f, &[("--reason", "looks fine")])).await;
    assert!(ok, "{out}");
    assert_eq!(env.wait(&running).await.status, "SUCCEEDED");

    // THEN the newest push, v5, deploys straight away from the queue (its own canary, promoted too)
    let next = format!("{name5}_2");
    let (v5, _) = env.until_weighted(&t).await;
    assert_ne!(v5, v2);
    let (ok, out) = run_deployctl(&readme::deployctl_args("promote", &f, &[("--reason", "v5 fine too")])).await;
    assert!(ok && out.contains(&next), "{out}");
    let exec = env.wait(&next).await;
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
    assert_eq!(env.alias(&t).await, (v5.clone(), None));
    assert_eq!(sdk::invoke_alias(&env.lambda, &f).await["variant"], format!("{f}-v5"));
    let r5 = record_of(&env, &t, &next).await;
    assert_eq!((r5.outcome, r5.image_digest.map(|d| d.to_string())), (Outcome::Deployed, Some(d5.clone())));
    assert_eq!(r5.version_before.as_deref(), Some(v2.as_str()));
    assert!(env.ledger.lock_state(&t.function).await.unwrap().is_none(), "the lock is free, nothing waits");
    // ... v3 and v4 never ran a step of their own
    for name in [&name3, &name4] {
        assert!(!env.states(name).await.iter().any(|s| s == "Update Function"), "{name} updated the function");
    }
    // ... the history shows it all, and a line went out when v5's deployment started from the queue
    let (ok, history) = run_deployctl(&readme::deployctl_args("history", &f, &[])).await;
    assert!(ok && history.contains("queued") && history.contains("superseded"), "{history}");
    let lines = notifications(&sqs, &notes, &next).await;
    assert!(lines.iter().any(|l| l.contains("started from the queue")), "{lines:?}");
    let seen = traffic.stop().await;
    assert!(seen.values().all(|(_, errors)| *errors == 0), "{seen:?}");
}

#[tokio::test]
async fn deployctl_deploy_follows_a_queued_image_into_its_own_deployment_and_says_how_it_ended() {
    // GIVEN a canary of v2 baking, and an image whose tag no push deploys (the target allows `-v` tags)
    let env = env().await;
    let mut t = env.target(json!({"type": "canary", "percent": 20, "bakeSeconds": 600}), gates(json!({}))).await;
    let f = t.function.to_string();
    env.first_version(&t).await;
    let (_, running) = env.push(&t, "v2", &[]).await;
    let (v2, _) = env.until_weighted(&t).await;
    let (rc3, never_started) = env.push(&t, "rc3", &[]).await;
    // ... which the team then allows, to deploy it by hand
    t.tag_pattern = format!("^{f}-(v|rc)[0-9]+$");
    env.store.put(&t).await.unwrap();

    // WHEN an operator deploys it with deployctl while the canary bakes
    let mut args = vec!["--stack".to_string(), STACK.to_string()];
    args.extend(readme::deployctl_args("deploy", &f, &[("--tag", &format!("{f}-rc3"))]));
    let deploy = tokio::spawn(async move { stack::deployctl_code(&std::env::temp_dir(), args).await });
    // THEN it is queued behind the canary (deployctl keeps following it)
    let deadline = Instant::now() + Duration::from_secs(120);
    while env.ledger.lock_state(&t.function).await.unwrap().and_then(|l| l.pending).is_none() {
        assert!(Instant::now() < deadline && !deploy.is_finished(), "the deployment never queued");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // WHEN the canary is promoted, the queued image's own canary starts; promoted too
    let (ok, out) = run_deployctl(&readme::deployctl_args("promote", &f, &[("--reason", "v2 fine")])).await;
    assert!(ok, "{out}");
    assert_eq!(env.wait(&running).await.status, "SUCCEEDED");
    let deadline = Instant::now() + Duration::from_secs(120);
    let v3 = loop {
        match env.alias(&t).await {
            (v, Some((c, _))) if v == v2 => break c,
            _ => assert!(Instant::now() < deadline && !deploy.is_finished(), "the queued image never shifted"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (ok, out) = run_deployctl(&readme::deployctl_args("promote", &f, &[("--reason", "rc3 fine")])).await;
    assert!(ok, "{out}");

    // THEN deployctl ends 0, having said it was queued, that the queued deployment started, and how it ended
    let (code, out) = deploy.await.unwrap();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("queued: ") && out.contains(&running), "{out}");
    assert!(out.contains("(the queued deployment)"), "{out}");
    let last = out.lines().last().unwrap_or_default();
    assert!(last.starts_with(&format!("deployed: alias {} of {f} serves version {v3}", t.alias)), "{out}");
    assert_eq!(env.alias(&t).await, (v3, None));
    let pushed = env.sfn.describe_execution().execution_arn(env.stack.execution_arn(&never_started)).send().await;
    let missing =
        pushed.as_ref().err().and_then(|e| e.as_service_error()).is_some_and(|e| e.is_execution_does_not_exist());
    assert!(missing, "the push of {rc3} started a deployment (or the check failed): {pushed:?}");
}

#[tokio::test]
async fn a_canary_stopped_from_the_console_goes_back_to_one_version_and_frees_the_lock() {
    // GIVEN a canary baking (20% of the traffic on v2), with traffic flowing through the alias
    let env = env().await;
    let t = env.target(json!({"type": "canary", "percent": 20, "bakeSeconds": 600}), gates(json!({}))).await;
    let v1 = env.first_version(&t).await;
    let traffic = env.traffic(&t);
    let (_, name) = env.push(&t, "v2", &[]).await;
    let (v2, _) = env.until_weighted(&t).await;
    // ... and v3, pushed meanwhile, waiting behind it
    let (d3, name3) = env.push(&t, "v3", &[]).await;
    assert_eq!(env.wait(&name3).await.output["queued"]["behind"], name.as_str());

    // WHEN an operator stops the execution (the console's "Stop execution": StopExecution, no deployctl)
    let arn = env.stack.execution_arn(&name);
    env.sfn.stop_execution().execution_arn(&arn).cause("stopped from the console").send().await.unwrap();
    assert_eq!(stack::finished(&env.sfn, &arn, TIMEOUT).await.status, "ABORTED");

    // THEN its status-change event puts all traffic back on v1, records the execution, and frees the lock
    let deadline = Instant::now() + Duration::from_secs(60);
    let record = loop {
        let records = env.ledger.history(&t.function, 10).await.unwrap();
        if let Some(r) = records.into_iter().find(|r| r.execution == name) {
            break r;
        }
        assert!(Instant::now() < deadline, "no record of the stopped execution {name}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(env.alias(&t).await, (v1.clone(), None));
    assert_eq!(record.outcome, Outcome::Abandoned);
    let cause = record.cause.clone().unwrap_or_default();
    assert!(
        cause.contains(&format!("20% of alias live's traffic to version {v2}; all of it is back on version {v1}")),
        "{cause}"
    );
    // AND the lock went straight to v3's deployment, which starts its own canary from v1
    let next = format!("{name3}_2");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let lock = env.ledger.lock_state(&t.function).await.unwrap();
        if lock.as_ref().is_some_and(|l| l.owner == next) {
            break;
        }
        assert!(Instant::now() < deadline, "the lock never reached {next}: {lock:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (v3, _) = env.until_weighted(&t).await;
    assert_eq!(env.alias(&t).await.0, v1);
    let (ok, out) = run_deployctl(&readme::deployctl_args("promote", t.function.as_str(), &[])).await;
    assert!(ok, "{out}");
    assert_eq!(env.wait(&next).await.status, "SUCCEEDED");
    assert_eq!(env.alias(&t).await, (v3, None));
    let r3 = record_of(&env, &t, &next).await;
    assert_eq!(r3.image_digest.map(|d| d.to_string()), Some(d3));
    assert_eq!(env.ledger.holder(&t.function).await.unwrap(), None);
    let seen = traffic.stop().await;
    assert!(seen.values().all(|(_, errors)| *errors == 0), "{seen:?}");
}

#[tokio::test]
async fn provisioned_concurrency_is_ready_on_the_new_version_before_traffic_moves() {
    let env = env().await;
    let mut t = env.target(json!({"type": "canary", "percent": 25, "bakeSeconds": 3}), gates(json!({}))).await;
    t.provisioned_concurrency = Some(2);
    env.store.put(&t).await.unwrap();
    let v1 = env.first_version(&t).await;
    let traffic = env.traffic(&t);

    let (_, name) = env.push(&t, "v2", &[]).await;
    let exec = env.wait(&name).await;
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
    let (v2, _) = env.alias(&t).await;
    let states = env.states(&name).await;
    let ready_at = states.iter().rposition(|s| s == "Provision").expect("Provision ran");
    let shifted_at = states.iter().position(|s| s == "Shift Traffic").expect("a canary step");
    assert!(ready_at < shifted_at, "provisioned before the first weight: {states:?}");
    let provisioned =
        |q: String| {
            let lambda = env.lambda.clone();
            let f = t.function.to_string();
            async move {
                lambda.get_provisioned_concurrency_config().function_name(f).qualifier(q).send().await.ok().map(|c| {
                    (c.status().map(|s| s.as_str().to_string()), c.allocated_provisioned_concurrent_executions())
                })
            }
        };
    assert_eq!(provisioned(v2.clone()).await, Some((Some("READY".into()), Some(2))), "the new version keeps it");
    assert_eq!(provisioned(v1.clone()).await, None, "the replaced version's is released");

    // An allocation Lambda cannot make fails the deployment before any traffic moves.
    t.provisioned_concurrency = Some(500);
    env.store.put(&t).await.unwrap();
    let (_, name) = env.push(&t, "v3", &[]).await;
    let exec = env.wait(&name).await;
    traffic.stop().await;
    assert_eq!((exec.status.as_str(), exec.error.as_str()), ("FAILED", "UpdateFailed"), "{exec:?}");
    assert!(exec.cause.contains("provisioned concurrency (500)") && exec.cause.contains("no traffic was moved"));
    assert!(!env.states(&name).await.iter().any(|s| s == "Shift Traffic"));
    assert_eq!(env.alias(&t).await, (v2.clone(), None));
    assert_eq!(provisioned(v2).await.map(|p| p.0), Some(Some("READY".into())), "the serving version keeps its own");
}

#[tokio::test]
async fn the_acceptance_suite_runs_in_codebuild_against_the_candidate_and_gates_the_deployment() {
    let env = env().await;
    let codebuild = aws_sdk_codebuild::Client::new(&sdk::config().await);
    let project = unique("e2e-it");
    // The team's suite: one real request to the candidate version, which must not fail.
    let buildspec = r#"version: 0.2
phases:
  build:
    commands:
      - echo "testing $DEPLOY_FUNCTION version $DEPLOY_QUALIFIER ($SUITE)"
      - test -n "$DEPLOY_QUALIFIER" && test "$DEPLOY_QUALIFIER" != "$DEPLOY_PREVIOUS_VERSION"
      - aws lambda invoke --function-name "$DEPLOY_FUNCTION" --qualifier "$DEPLOY_QUALIFIER" --payload '{"traffic":true,"echo":"it"}' out.json --query FunctionError --output text > error.txt
      - cat out.json; test "$(cat error.txt)" = None
"#;
    let source = aws_sdk_codebuild::types::ProjectSource::builder()
        .r#type(aws_sdk_codebuild::types::SourceType::NoSource)
        .buildspec(buildspec)
        .build()
        .unwrap();
    codebuild
        .create_project()
        .name(&project)
        .source(source)
        .artifacts(
            aws_sdk_codebuild::types::ProjectArtifacts::builder()
                .r#type(aws_sdk_codebuild::types::ArtifactsType::NoArtifacts)
                .build()
                .unwrap(),
        )
        .environment(
            aws_sdk_codebuild::types::ProjectEnvironment::builder()
                .r#type(aws_sdk_codebuild::types::EnvironmentType::LinuxContainer)
                .image("aws/codebuild/standard:7.0")
                .compute_type(aws_sdk_codebuild::types::ComputeType::BuildGeneral1Small)
                .build()
                .unwrap(),
        )
        .service_role(&env.role)
        .send()
        .await
        .unwrap();
    let mut t = env.target(json!({"type": "all-at-once"}), gates(json!({}))).await;
    t.acceptance = Some(spec::Acceptance {
        project: project.clone(),
        environment: [("SUITE".to_string(), "e2e".to_string())].into(),
        timeout_seconds: 120,
    });
    env.store.put(&t).await.unwrap();
    let v1 = env.first_version(&t).await;

    // A build that passes the suite is deployed after it.
    let (_, name) = env.push(&t, "v2", &[]).await;
    let exec = env.wait(&name).await;
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
    let states = env.states(&name).await;
    let accepted = states.iter().rposition(|s| s == "Acceptance Test").expect("the stage ran");
    assert!(accepted < states.iter().position(|s| s == "Shift Alias").unwrap(), "{states:?}");
    let (v2, _) = env.alias(&t).await;
    assert_ne!(v2, v1);

    // A build that passes its smoke test but fails the suite never gets traffic.
    let (_, name) = env.push(&t, "v3", &[("TRAFFIC", "fail")]).await;
    let exec = env.wait(&name).await;
    assert_eq!((exec.status.as_str(), exec.error.as_str()), ("FAILED", "AcceptanceFailed"), "{exec:?}");
    assert!(exec.cause.contains("ended FAILED in phase BUILD: COMMAND_EXECUTION_ERROR"), "{}", exec.cause);
    assert!(exec.cause.contains(&format!("/aws/codebuild/{project}/")), "{}", exec.cause);
    assert_eq!(env.alias(&t).await, (v2, None), "the alias never moved");
}

#[tokio::test]
async fn a_crash_in_any_progressive_step_rolls_back_to_one_version() {
    let env = env().await;
    let mut t = env.target(json!({"type": "canary", "percent": 25, "bakeSeconds": 30}), gates(json!({}))).await;
    let v1 = env.first_version(&t).await;
    let traffic = env.traffic(&t);
    for (step, label) in [("shift-traffic", "v2"), ("check-health", "v3"), ("provision", "v4"), ("acceptance", "v5")] {
        // Provision and Acceptance Test run only when the spec asks for them.
        t.provisioned_concurrency = (step == "provision").then_some(1);
        t.acceptance = (step == "acceptance").then(|| spec::Acceptance {
            project: "e2e-suite".into(),
            environment: Default::default(),
            timeout_seconds: 120,
        });
        env.store.put(&t).await.unwrap();
        // The step's Lambda fails every time it is invoked for this function (a bad deploy of the deployer).
        let armed = deployer_tests::faults::inject(json!({
            "service": "lambda", "operation": "Invoke", "error": "ServiceException", "count": 1000,
            "match": [t.function.as_str(), format!("{STACK}-{step}/invocations")]
        }))
        .await;
        let (_, name) = env.push(&t, label, &[]).await;
        let exec = env.wait(&name).await;
        let id = armed["faults"][0]["id"].as_u64().unwrap();
        let fired = deployer_tests::faults::fired(id).await;
        deployer_tests::faults::disarm(id).await;
        assert!(fired > 0, "{step} was never invoked");
        assert_eq!(exec.status, "FAILED", "{step}: {exec:?}");
        assert!(exec.cause.contains("Rolled back"), "{step}: {}", exec.cause);
        assert_eq!(env.alias(&t).await, (v1.clone(), None), "{step}: all traffic on the old version, no weights");
    }
    traffic.stop().await;
}

#[tokio::test]
async fn a_canary_to_a_version_with_another_role_moves_all_at_once_and_says_why() {
    let env = env().await;
    let t = env.target(json!({"type": "canary", "percent": 25, "bakeSeconds": 2}), gates(json!({}))).await;
    let (_, name) = env.push(&t, "v1", &[]).await;
    assert_eq!(env.wait(&name).await.status, "SUCCEEDED");
    // GIVEN the spec now runs the function with another execution role
    let iam = aws_sdk_iam::Client::new(&sdk::config().await);
    let other = sdk::role(&iam, "e2e-service-role-2").await;
    let mut doc = serde_json::to_value(&t).unwrap();
    doc["configuration"]["role"] = json!(other);
    let t = spec::parse(&doc.to_string()).unwrap();
    env.store.put(&t).await.unwrap();
    // WHEN v2 is pushed
    let (_, name) = env.push(&t, "v2", &[]).await;
    let exec = env.wait(&name).await;
    // THEN it is deployed all at once (Lambda would refuse to weight an alias across two roles) ...
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
    let alias = env.lambda.get_alias().function_name(t.function.as_str()).name("live").send().await.unwrap();
    assert_eq!(alias.function_version(), Some("2"));
    assert!(alias.routing_config().is_none_or(|r| r.additional_version_weights().is_none_or(|w| w.is_empty())));
    // ... no weight ever moved, and the plan says why
    let history = env
        .sfn
        .get_execution_history()
        .execution_arn(env.stack.execution_arn(&name))
        .max_results(1000)
        .send()
        .await
        .unwrap();
    let entered: Vec<&str> =
        history.events().iter().filter_map(|e| e.state_entered_event_details()).map(|d| d.name()).collect();
    assert!(!entered.contains(&"Shift Traffic") && entered.contains(&"Shift Alias"), "{entered:?}");
    let why = history
        .events()
        .iter()
        .filter_map(|e| e.task_succeeded_event_details().and_then(|d| d.output()))
        .find(|o| o.contains("allAtOnceWhy"))
        .expect("Prepare's plan has allAtOnceWhy");
    assert!(why.contains("same execution role") && why.contains(&other), "{why}");
}

#[tokio::test]
async fn a_canary_redriven_after_it_was_stopped_refuses_to_act_and_changes_nothing() {
    // GIVEN a canary of v2 stopped from the console mid-bake: its status-change event put all traffic back on
    // v1 and freed the lock
    let env = env().await;
    let t = env.target(json!({"type": "canary", "percent": 20, "bakeSeconds": 600}), gates(json!({}))).await;
    let v1 = env.first_version(&t).await;
    let (_, name) = env.push(&t, "v2", &[]).await;
    env.until_weighted(&t).await;
    let arn = env.stack.execution_arn(&name);
    env.sfn.stop_execution().execution_arn(&arn).cause("stopped from the console").send().await.unwrap();
    assert_eq!(stack::finished(&env.sfn, &arn, TIMEOUT).await.status, "ABORTED");
    let deadline = Instant::now() + Duration::from_secs(60);
    while env.ledger.holder(&t.function).await.unwrap().is_some() || env.alias(&t).await.1.is_some() {
        assert!(Instant::now() < deadline, "the stopped canary was not settled");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let before = env.lambda.get_alias().function_name(t.function.as_str()).name("live").send().await.unwrap();
    let versions = env.lambda.list_versions_by_function().function_name(t.function.as_str()).send().await.unwrap();

    // WHEN an operator redrives it
    env.sfn.redrive_execution().execution_arn(&arn).send().await.expect("an aborted execution is redrivable");
    let exec = stack::finished(&env.sfn, &arn, TIMEOUT).await;

    // THEN the deployment itself refuses to continue: it no longer holds the lock, so it shifts nothing and
    // its Roll Back leaves the alias alone, saying why
    assert_eq!(exec.status, "FAILED", "{exec:?}");
    assert!(exec.cause.contains("no longer holds"), "{}", exec.cause);
    let after = env.lambda.get_alias().function_name(t.function.as_str()).name("live").send().await.unwrap();
    assert_eq!((after.function_version(), after.revision_id()), (Some(v1.as_str()), before.revision_id()));
    assert!(after.routing_config().is_none_or(|r| r.additional_version_weights().is_none_or(|w| w.is_empty())));
    let now = env.lambda.list_versions_by_function().function_name(t.function.as_str()).send().await.unwrap();
    assert_eq!(now.versions().len(), versions.versions().len(), "no version published");
    assert_eq!(env.ledger.holder(&t.function).await.unwrap(), None, "and it took no lock");
    let r = record_of(&env, &t, &name).await;
    assert_eq!(r.outcome, Outcome::RolledBack, "its redrive is on record: {r:?}");
    assert!(r.cause.unwrap_or_default().contains("Not rolled back"));
}
