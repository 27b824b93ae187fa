//! The fault matrix: for every AWS call a deployment makes and every fault local AWS can inject, one
//! deployment (v1 live, then v2 under the fault), and the invariants checked after it:
//! the alias is on a published, smoke-tested version (v2 when the fault was transient and retried, v1
//! otherwise), the function's lock is released, the execution's record is written, a failure's cause is
//! clear. The cells are generated from the tables below; the test prints each cell and a summary.

use std::time::Duration;

use deployer_aws::{DynamoLedger, DynamoTargetStore};
use deployer_core::ids::FunctionName;
use deployer_core::ports::{DeploymentLedger, LockOutcome, TargetStore};
use deployer_core::spec;
use deployer_tests::stack::{self, Stack, STACK};
use deployer_tests::{faults, fixture, sdk, unique};
use serde_json::{json, Value};

const REPO: &str = "e2e-fault-matrix";
/// A fault that clears after a few shots (the SDK's and the state machine's retries absorb it).
const TRANSIENT: u64 = 2;
/// A fault that outlasts every retry.
const PERSISTENT: u64 = 1000;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// The transient fault was retried: v2 serves.
    New,
    /// The deployment failed and rolled back (or was rejected): v1 serves.
    Old,
}

#[derive(Debug, Clone)]
struct Cell {
    name: String,
    /// Faults to arm for this cell's v2 deployment; `match` gets the cell's function (and digest) added.
    faults: Vec<Value>,
    /// Build the v2 image with these arguments (a broken or crashing build), else the shared good v2.
    v2_args: Option<Vec<(&'static str, &'static str)>>,
    /// Change the spec for v2 (configuration drift to reconcile, so UpdateFunctionConfiguration runs).
    drift: bool,
    expect: Expect,
}

/// The AWS calls a deployment makes on its target function, and which are writes.
const LAMBDA_CALLS: &[(&str, bool)] = &[
    ("GetFunction", false),
    ("GetAlias", false),
    ("UpdateFunctionConfiguration", true),
    ("UpdateFunctionCode", true),
    ("PublishVersion", true),
    ("UpdateAlias", true),
];
/// The deployer's own state (targets, locks, records) and the image registry.
const DYNAMODB_CALLS: &[&str] = &["GetItem", "PutItem", "Query"];
/// The step Lambdas every deployment runs, as Step Functions invokes them (a crashed or unavailable step).
/// Provision, Acceptance Test, Shift Traffic and Check Health run only when the spec asks for them: their
/// crashes are in tests/progressive.rs.
const STEPS: &[&str] = &["prepare", "update-code", "check-ready", "smoke-test", "publish-version", "shift-alias"];

fn cells() -> Vec<Cell> {
    let mut out = Vec::new();
    let cell =
        |name: String, faults: Vec<Value>, expect: Expect| Cell { name, faults, v2_args: None, drift: true, expect };
    for (op, write) in LAMBDA_CALLS {
        let mut kinds: Vec<(&str, Option<u16>)> = vec![("TooManyRequestsException", None), ("ServiceException", None)];
        if *write {
            kinds.push(("ResourceConflictException", None));
            kinds.push(("PreconditionFailedException", None));
        }
        for (error, status) in &kinds {
            let f = json!({"service": "lambda", "operation": op, "error": error, "status": status});
            out.push(cell(format!("lambda {op} {error} x{TRANSIENT}"), vec![with_count(&f, TRANSIENT)], Expect::New));
        }
        for error in ["TooManyRequestsException", "ServiceException"] {
            let f = json!({"service": "lambda", "operation": op, "error": error});
            out.push(cell(format!("lambda {op} {error} x{PERSISTENT}"), vec![with_count(&f, PERSISTENT)], Expect::Old));
        }
        let f = json!({"service": "lambda", "operation": op, "error": "timeout", "delaySeconds": 1});
        out.push(cell(format!("lambda {op} timeout x1"), vec![with_count(&f, 1)], Expect::New));
    }
    // The candidate's own invocations (the smoke test): throttled a little, or for good.
    let invoke =
        json!({"service": "lambda", "operation": "Invoke", "error": "TooManyRequestsException", "target": true});
    out.push(cell(
        format!("lambda Invoke(candidate) TooManyRequests x{TRANSIENT}"),
        vec![with_count(&invoke, TRANSIENT)],
        Expect::New,
    ));
    out.push(cell(
        format!("lambda Invoke(candidate) TooManyRequests x{PERSISTENT}"),
        vec![with_count(&invoke, PERSISTENT)],
        Expect::Old,
    ));
    for op in DYNAMODB_CALLS {
        for error in ["ThrottlingException", "InternalServerError"] {
            let f = json!({"service": "dynamodb", "operation": op, "error": error, "status": if error == "InternalServerError" { 500 } else { 400 }});
            out.push(cell(format!("dynamodb {op} {error} x{TRANSIENT}"), vec![with_count(&f, TRANSIENT)], Expect::New));
        }
    }
    let f = json!({"service": "dynamodb", "operation": "GetItem", "error": "ThrottlingException", "status": 400});
    out.push(cell(
        format!("dynamodb GetItem ThrottlingException x{PERSISTENT}"),
        vec![with_count(&f, PERSISTENT)],
        Expect::Old,
    ));
    for (error, status) in [("ThrottlingException", 400), ("ServerException", 500)] {
        let f =
            json!({"service": "ecr", "operation": "DescribeImages", "error": error, "status": status, "digest": true});
        out.push(cell(
            format!("ecr DescribeImages {error} x{TRANSIENT}"),
            vec![with_count(&f, TRANSIENT)],
            Expect::New,
        ));
        out.push(cell(
            format!("ecr DescribeImages {error} x{PERSISTENT}"),
            vec![with_count(&f, PERSISTENT)],
            Expect::Old,
        ));
    }
    for step in STEPS {
        let f = json!({"service": "lambda", "operation": "Invoke", "error": "ServiceException", "step": step});
        out.push(cell(format!("step {step} crashes x1"), vec![with_count(&f, 1)], Expect::New));
        out.push(cell(format!("step {step} crashes x{PERSISTENT}"), vec![with_count(&f, PERSISTENT)], Expect::Old));
    }
    out.push(Cell {
        name: "update ends LastUpdateStatus=Failed".into(),
        faults: vec![],
        v2_args: Some(vec![("INIT", "exit")]),
        drift: false,
        expect: Expect::Old,
    });
    out.push(Cell {
        name: "candidate answers with a function error".into(),
        faults: vec![],
        v2_args: Some(vec![("BROKEN", "1")]),
        drift: false,
        expect: Expect::Old,
    });
    out
}

fn with_count(f: &Value, n: u64) -> Value {
    let mut f = f.clone();
    f["count"] = json!(n);
    if f["status"].is_null() {
        f.as_object_mut().unwrap().remove("status");
    }
    f
}

struct Env {
    sfn: aws_sdk_sfn::Client,
    lambda: aws_sdk_lambda::Client,
    store: DynamoTargetStore,
    ledger: DynamoLedger,
    stack: &'static Stack,
    role: String,
}

fn spec_for(env: &Env, function: &str, drift: bool) -> spec::TargetSpec {
    spec::parse(
        &json!({
            "function": function, "repository": REPO, "tagPattern": "^[a-z0-9-]+$",
            "configuration": {"role": env.role, "timeoutSeconds": 5, "memoryMb": if drift { 192 } else { 128 },
                              "environment": {"RELEASE": if drift { "2" } else { "1" }}},
            "smokeTest": {"cases": [{"name": "echo", "payload": {"echo": "ok"}, "expect": {"echo": "ok"}}]},
            "readyTimeoutSeconds": 60
        })
        .to_string(),
    )
    .unwrap()
}

async fn deploy(env: &Env, function: &str, digest: &str, name: &str) -> stack::Execution {
    let input = json!({"action": "deploy", "target": function, "repository": REPO, "imageDigest": digest, "imageTag": "matrix"});
    let out = env
        .sfn
        .start_execution()
        .state_machine_arn(&env.stack.state_machine_arn)
        .name(name)
        .input(input.to_string())
        .send()
        .await
        .unwrap();
    stack::finished(&env.sfn, out.execution_arn(), Duration::from_secs(300)).await
}

/// Run one cell; Ok(summary) or Err(what broke).
async fn run(env: &Env, cell: &Cell, v1: &str, v2_shared: &str) -> Result<String, String> {
    let function = unique("e2e-fm");
    env.store.put(&spec_for(env, &function, false)).await.map_err(|e| e.to_string())?;
    let first = deploy(env, &function, v1, &unique("fm-v1")).await;
    if first.status != "SUCCEEDED" {
        return Err(format!("baseline v1 did not deploy: {first:?}"));
    }
    let v2 = match &cell.v2_args {
        Some(args) => {
            let mut args = args.clone();
            let variant = function.clone();
            tokio::task::spawn_blocking(move || {
                args.push(("VARIANT", Box::leak(variant.into_boxed_str())));
                fixture::push_image_with(REPO, &unique("v2"), &args)
            })
            .await
            .unwrap()
        }
        None if cell.faults.iter().any(|f| f["digest"] == true) => {
            let variant = function.clone();
            tokio::task::spawn_blocking(move || fixture::push_image(REPO, &unique("v2"), &variant)).await.unwrap()
        }
        None => v2_shared.to_string(),
    };
    if cell.drift {
        env.store.put(&spec_for(env, &function, true)).await.map_err(|e| e.to_string())?;
    }
    let mut armed = Vec::new();
    for f in &cell.faults {
        let mut f = f.clone();
        let mut matches = vec![json!(function)];
        if f["target"] == true {
            matches = vec![json!(format!("functions/{function}/invocations"))];
        }
        if let Some(step) = f["step"].as_str() {
            matches.push(json!(format!("{STACK}-{step}/invocations")));
        }
        if f["digest"] == true {
            matches = vec![json!(v2.trim_start_matches("sha256:"))];
        }
        for k in ["target", "step", "digest"] {
            f.as_object_mut().unwrap().remove(k);
        }
        f["match"] = json!(matches);
        armed.push(faults::inject(f).await["faults"][0]["id"].as_u64().unwrap());
    }
    let execution = unique("fm-v2");
    let exec = deploy(env, &function, &v2, &execution).await;
    let mut fired = 0;
    for id in &armed {
        fired += faults::fired(*id).await;
        faults::disarm(*id).await;
    }
    let mut problems = Vec::new();
    if !armed.is_empty() && fired == 0 {
        problems.push("the fault never fired (the matrix would test nothing)".to_string());
    }
    // Invariant 1: the alias serves a published version that passed its smoke test.
    let alias =
        env.lambda.get_alias().function_name(&function).name("live").send().await.map_err(|e| format!("{e:?}"))?;
    let version = alias.function_version().unwrap_or_default().to_string();
    let want_digest = if cell.expect == Expect::New { &v2 } else { v1 };
    let cfg = env.lambda.get_function_configuration().function_name(&function).qualifier(&version).send().await;
    let served = cfg.as_ref().ok().and_then(|c| c.code_sha256()).unwrap_or_default().to_string();
    if alias.routing_config().is_some_and(|r| r.additional_version_weights().is_some_and(|w| !w.is_empty())) {
        problems.push("the alias is split between two versions".into());
    }
    if format!("sha256:{served}") != *want_digest {
        problems.push(format!("alias on version {version} serving {served:.12}, expected the {:?} image", cell.expect));
    }
    let expected_status = if cell.expect == Expect::New { "SUCCEEDED" } else { "FAILED" };
    if exec.status != expected_status {
        problems.push(format!(
            "execution {} ({}: {:.200}), expected {expected_status}",
            exec.status, exec.error, exec.cause
        ));
    }
    // Invariant 2: the execution fails with a cause a human can act on.
    if exec.status == "FAILED" && (exec.error.is_empty() || exec.cause.len() < 20) {
        problems.push(format!("unclear failure: error {:?} cause {:?}", exec.error, exec.cause));
    }
    // Invariant 3: the lock is released.
    let fname = FunctionName::parse(&function).unwrap();
    match env.ledger.acquire(&fname, "matrix-probe", deployer_core::steps::now_ms() as i64, 1).await {
        Ok(LockOutcome::Acquired) => {
            let _ = env.ledger.release(&fname, "matrix-probe").await;
        }
        other => problems.push(format!("the lock is still held: {other:?}")),
    }
    // Invariant 4: the execution's record is written.
    let history = env.ledger.history(&fname, 5).await.map_err(|e| e.to_string())?;
    if !history.iter().any(|r| r.execution == execution) {
        problems.push(format!(
            "no record of {execution} (records: {:?})",
            history.iter().map(|r| &r.execution).collect::<Vec<_>>()
        ));
    }
    if problems.is_empty() {
        Ok(format!("{} -> {} (fired {fired})", exec.status, if cell.expect == Expect::New { "v2" } else { "v1" }))
    } else {
        Err(problems.join("; "))
    }
}

#[tokio::test]
async fn every_fault_on_every_call_leaves_production_no_worse() {
    let cfg = sdk::config().await;
    let stack = tokio::task::spawn_blocking(stack::ensure).await.unwrap();
    let iam = aws_sdk_iam::Client::new(&cfg);
    let ecr = aws_sdk_ecr::Client::new(&cfg);
    let _ = ecr.create_repository().repository_name(REPO).send().await;
    // No rule listens to this repository, so it is not among the stack's AllowedRepositories: its policy lets
    // Lambda pull, as a service repository's does.
    sdk::let_lambda_pull(&ecr, REPO).await;
    let env = Env {
        sfn: aws_sdk_sfn::Client::new(&cfg),
        lambda: aws_sdk_lambda::Client::new(&cfg),
        store: DynamoTargetStore::from_sdk(&cfg, &stack.targets_table),
        ledger: DynamoLedger::from_sdk(&cfg, &format!("{STACK}-deployments")),
        stack,
        role: sdk::role(&iam, "e2e-matrix-role").await,
    };
    let (v1, v2) = tokio::task::spawn_blocking(|| {
        (fixture::push_image(REPO, &unique("v1"), "one"), fixture::push_image(REPO, &unique("v2"), "two"))
    })
    .await
    .unwrap();

    let cells = cells();
    let total = cells.len();
    let mut failed = Vec::new();
    // Six cells at a time: enough to finish in minutes, few enough for a 2-core machine.
    for batch in cells.chunks(6) {
        let results = futures_join(batch.iter().map(|c| run(&env, c, &v1, &v2))).await;
        for (cell, result) in batch.iter().zip(results) {
            match result {
                Ok(summary) => println!("ok     {:<60} {summary}", cell.name),
                Err(why) => {
                    println!("FAILED {:<60} {why}", cell.name);
                    failed.push(cell.name.clone());
                }
            }
        }
    }
    deployer_tests::report(
        "fault-matrix",
        &format!("fault-matrix: {} passed, {} failed ({} cells)", total - failed.len(), failed.len(), total),
    );
    assert!(failed.is_empty(), "fault matrix cells failed: {failed:?}");
}

/// Run futures concurrently on this task (no extra dependency).
async fn futures_join<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|o| o.expect("every future finished")).collect()
}
