//! The fault matrix: for every AWS call a deployment makes and every fault local AWS can inject, one
//! deployment (v1 live, then v2 under the fault), and the invariants checked after it: the alias is on a
//! published, smoke-tested version (v2 when the fault was transient and retried, v1 otherwise), the function's
//! lock is released, the execution's record is written and says what happened, a failure's error is the one
//! expected and its cause is clear. The cells are generated from the tables below; the test prints each cell
//! and a summary.
//!
//! Which calls a deployment makes comes from local AWS's usage log, not from these tables: every call a stack
//! role made during the run (a step Lambda's, the trigger's, the state machine's) must have a cell aimed at it,
//! so a call the deployer starts making fails this test until it has cells.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use deployer_aws::{DynamoLedger, DynamoTargetStore};
use deployer_core::decisions::execution_name;
use deployer_core::ids::{FunctionName, ImageDigest};
use deployer_core::model::{DeploymentRecord, LockOutcome};
use deployer_core::ports::{DeploymentLedger, TargetStore};
use deployer_core::spec;
use deployer_tests::stack::{self, Stack, STACK};
use deployer_tests::{faults, fixture, sdk, unique};
use serde_json::{json, Value};

const REPO: &str = "e2e-fault-matrix";
/// An allowed repository of the stack: a push to it reaches the trigger.
const TRIGGER_REPO: &str = "e2e-fault-trigger";
/// A fault that clears after a few shots (the SDK's own retries absorb it).
const TRANSIENT: u64 = 2;
/// One shot more than the SDK's own attempts (3 in its standard retry mode): the step fails once, and it is
/// the state machine's Retry (or Lambda's retry of an asynchronous invocation) that recovers.
const PAST_SDK: u64 = 4;
/// A fault that outlasts every retry.
const PERSISTENT: u64 = 1000;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Retried: v2 serves, the execution SUCCEEDED and is recorded `deployed`.
    New,
    /// Failed: v1 serves, the execution FAILED with this error and is recorded with this outcome.
    Old { error: &'static str, outcome: &'static str },
    /// v2 went live but Finish could not record it or free the lock: the execution FAILED in Finish with this
    /// error (a redrive reruns it), and the status-change handler recorded it `abandoned`, serving v2, and
    /// freed the lock.
    NotRecorded { error: &'static str },
    /// The push's trigger failed every attempt: no execution, v1 serves, the trigger's log names the error.
    NotStarted { error: &'static str },
}

#[derive(Debug, Clone)]
struct Cell {
    name: String,
    /// Faults to arm for this cell's v2 deployment. Besides local AWS's own fields: `target` aims at the
    /// candidate's invocations, `step` at Step Functions' invocation of that step, `digest` at v2's digest,
    /// `by` at the calls of that stack function's role, `record` at the PutItem of a `deployed` record;
    /// otherwise at the cell's function.
    faults: Vec<Value>,
    /// Build the v2 image with these arguments (a broken or crashing build), else the shared good v2.
    v2_args: Option<Vec<(&'static str, &'static str)>>,
    /// Change the spec for v2 (configuration drift to reconcile, so UpdateFunctionConfiguration runs).
    drift: bool,
    /// v2 is pushed to the trigger's repository and deployed by the push (not by a start-execution).
    pushed: bool,
    /// The state machine's Retry must have run (a Task failed before the execution got through).
    retried_by_sfn: bool,
    /// Finish's tag of the deployed image is expected to fail (it is logged; the deployment stands).
    untagged: bool,
    /// The faults are on the function's first deployment (CreateFunction, CreateAlias): that one is the
    /// cell's "v2", over nothing; "v1 serves" then means no alias exists.
    first: bool,
    /// v2 is pushed while another deployment holds the function's lock: it waits in the queue, and when that
    /// deployment ends (its status-change event, sent to Finish as EventBridge does) the lock is handed to
    /// v2's next attempt, which deploys it. The faults hit the queue's writes.
    queued: bool,
    expect: Expect,
}

impl Cell {
    fn new(name: String, faults: Vec<Value>, expect: Expect) -> Cell {
        Cell {
            name,
            faults,
            v2_args: None,
            drift: true,
            pushed: false,
            retried_by_sfn: false,
            untagged: false,
            first: false,
            queued: false,
            expect,
        }
    }
}

/// The Lambda calls a deployment makes on its target function, and which are writes.
const LAMBDA_CALLS: &[(&str, bool)] = &[
    ("GetFunction", false),
    ("GetAlias", false),
    ("UpdateFunctionConfiguration", true),
    ("UpdateFunctionCode", true),
    ("PublishVersion", true),
    ("UpdateAlias", true),
];
/// The deployer's own state (targets, locks, records).
const DYNAMODB_CALLS: &[&str] = &["GetItem", "PutItem", "UpdateItem", "Query", "DeleteItem"];
/// The step Lambdas every deployment runs, as Step Functions invokes them (a crashed or unavailable step).
/// Provision, Acceptance Test, Shift Traffic and Check Health run only when the spec asks for them: their
/// crashes are in tests/progressive.rs. Roll Back and Finish have cells of their own below.
const STEPS: &[&str] = &["prepare", "update-code", "check-ready", "smoke-test", "publish-version", "shift-alias"];

/// What a persistent failure of a call is recorded as: throttling and unavailability keep their names.
fn persistent_error(error: &str) -> &'static str {
    match error {
        "TooManyRequestsException" | "ThrottlingException" => "Throttled",
        _ => "AwsUnavailable",
    }
}

/// A failed deployment's record: Prepare's failures reject it (nothing changed), later ones roll it back.
fn failed_outcome(op: &str) -> &'static str {
    match op {
        "GetFunction" | "GetAlias" | "GetItem" | "DescribeImages" => "rejected",
        _ => "rolled-back",
    }
}

fn cells() -> Vec<Cell> {
    let mut out = Vec::new();
    for (op, write) in LAMBDA_CALLS {
        let mut kinds: Vec<&str> = vec!["TooManyRequestsException", "ServiceException"];
        if *write {
            kinds.push("ResourceConflictException");
            kinds.push("PreconditionFailedException");
        }
        for error in &kinds {
            let f = json!({"service": "lambda", "operation": op, "error": error});
            out.push(Cell::new(
                format!("lambda {op} {error} x{TRANSIENT}"),
                vec![with_count(&f, TRANSIENT)],
                Expect::New,
            ));
        }
        for error in ["TooManyRequestsException", "ServiceException"] {
            let f = json!({"service": "lambda", "operation": op, "error": error});
            let expect = Expect::Old { error: persistent_error(error), outcome: failed_outcome(op) };
            out.push(Cell::new(format!("lambda {op} {error} x{PERSISTENT}"), vec![with_count(&f, PERSISTENT)], expect));
        }
        let f = json!({"service": "lambda", "operation": op, "error": "timeout", "delaySeconds": 1});
        out.push(Cell::new(format!("lambda {op} timeout x1"), vec![with_count(&f, 1)], Expect::New));
    }
    // Past the SDK's retries: the step fails, and the state machine's Retry runs it again.
    for op in ["UpdateAlias", "PublishVersion"] {
        let f = json!({"service": "lambda", "operation": op, "error": "TooManyRequestsException"});
        let mut c = Cell::new(
            format!("lambda {op} TooManyRequestsException x{PAST_SDK}"),
            vec![with_count(&f, PAST_SDK)],
            Expect::New,
        );
        c.retried_by_sfn = true;
        out.push(c);
    }
    // The candidate's own invocations (the smoke test): throttled a little, or for good.
    let invoke =
        json!({"service": "lambda", "operation": "Invoke", "error": "TooManyRequestsException", "target": true});
    out.push(Cell::new(
        format!("lambda Invoke(candidate) TooManyRequests x{TRANSIENT}"),
        vec![with_count(&invoke, TRANSIENT)],
        Expect::New,
    ));
    out.push(Cell::new(
        format!("lambda Invoke(candidate) TooManyRequests x{PERSISTENT}"),
        vec![with_count(&invoke, PERSISTENT)],
        // Roll Back verifies the alias through invocations too, and they are throttled as well: it cannot
        // vouch for the version it left (v1, never moved), so a human must look.
        Expect::Old { error: "Throttled", outcome: "rollback-failed" },
    ));
    for op in DYNAMODB_CALLS {
        for (error, status) in [("ThrottlingException", 400), ("InternalServerError", 500)] {
            let f = json!({"service": "dynamodb", "operation": op, "error": error, "status": status});
            out.push(Cell::new(
                format!("dynamodb {op} {error} x{TRANSIENT}"),
                vec![with_count(&f, TRANSIENT)],
                Expect::New,
            ));
        }
    }
    let f = json!({"service": "dynamodb", "operation": "GetItem", "error": "ThrottlingException", "status": 400});
    out.push(Cell::new(
        format!("dynamodb GetItem ThrottlingException x{PERSISTENT}"),
        vec![with_count(&f, PERSISTENT)],
        Expect::Old { error: "Throttled", outcome: "rejected" },
    ));
    // The ledger's writes: the lock (Prepare's UpdateItem), the record (Finish's PutItem), the release
    // (Finish's DeleteItem); the queue's are below.
    let lock = json!({"service": "dynamodb", "operation": "UpdateItem", "error": "ThrottlingException", "status": 400, "by": "prepare"});
    let mut c = Cell::new(
        format!("dynamodb UpdateItem(lock) Throttling x{PAST_SDK}"),
        vec![with_count(&lock, PAST_SDK)],
        Expect::New,
    );
    c.retried_by_sfn = true;
    out.push(c);
    out.push(Cell::new(
        format!("dynamodb UpdateItem(lock) Throttling x{PERSISTENT}"),
        vec![with_count(&lock, PERSISTENT)],
        Expect::Old { error: "Throttled", outcome: "rejected" },
    ));
    let record = json!({"service": "dynamodb", "operation": "PutItem", "error": "InternalServerError", "status": 500, "by": "finish", "record": true});
    let mut c = Cell::new(
        format!("dynamodb PutItem(record) InternalServerError x{PAST_SDK}"),
        vec![with_count(&record, PAST_SDK)],
        Expect::New,
    );
    c.retried_by_sfn = true;
    out.push(c);
    out.push(Cell::new(
        format!("dynamodb PutItem(record) InternalServerError x{PERSISTENT}"),
        vec![with_count(&record, PERSISTENT)],
        Expect::NotRecorded { error: "AwsUnavailable" },
    ));
    let release = json!({"service": "dynamodb", "operation": "DeleteItem", "error": "ThrottlingException", "status": 400, "by": "finish"});
    let mut c = Cell::new(
        format!("dynamodb DeleteItem(lock) Throttling x{PAST_SDK}"),
        vec![with_count(&release, PAST_SDK)],
        Expect::New,
    );
    c.retried_by_sfn = true;
    out.push(c);
    for (error, status) in [("ThrottlingException", 400), ("ServerException", 500)] {
        let f =
            json!({"service": "ecr", "operation": "DescribeImages", "error": error, "status": status, "digest": true});
        out.push(Cell::new(
            format!("ecr DescribeImages {error} x{TRANSIENT}"),
            vec![with_count(&f, TRANSIENT)],
            Expect::New,
        ));
        out.push(Cell::new(
            format!("ecr DescribeImages {error} x{PERSISTENT}"),
            vec![with_count(&f, PERSISTENT)],
            Expect::Old { error: persistent_error(error), outcome: "rejected" },
        ));
    }
    // Finish tags the image that went live (BatchGetImage its manifest, PutImage it under the new tag). A
    // failed tag costs neither the record nor the lock: it is logged, and the deployment stands.
    for op in ["BatchGetImage", "PutImage"] {
        let mut f =
            json!({"service": "ecr", "operation": op, "error": "ServerException", "status": 500, "by": "finish"});
        if op == "BatchGetImage" {
            // It names the repository and the digest only: the cell gets a v2 of its own to aim at.
            f["digest"] = json!(true);
        }
        out.push(Cell::new(
            format!("ecr {op} ServerException x{TRANSIENT}"),
            vec![with_count(&f, TRANSIENT)],
            Expect::New,
        ));
        let mut c =
            Cell::new(format!("ecr {op} ServerException x{PERSISTENT}"), vec![with_count(&f, PERSISTENT)], Expect::New);
        c.untagged = true;
        out.push(c);
    }
    for step in STEPS {
        let f = json!({"service": "lambda", "operation": "Invoke", "error": "ServiceException", "step": step});
        out.push(Cell::new(format!("step {step} crashes x1"), vec![with_count(&f, 1)], Expect::New));
        let expect = Expect::Old {
            error: "Lambda.ServiceException",
            outcome: if *step == "prepare" { "rejected" } else { "rolled-back" },
        };
        out.push(Cell::new(format!("step {step} crashes x{PERSISTENT}"), vec![with_count(&f, PERSISTENT)], expect));
    }
    // Roll Back runs after a failure (here a candidate that answers with a function error); Finish after all.
    let rollback = json!({"service": "lambda", "operation": "Invoke", "error": "ServiceException", "step": "rollback"});
    for (count, expect) in [
        (1, Expect::Old { error: "SmokeTestFailed", outcome: "rolled-back" }),
        (PERSISTENT, Expect::Old { error: "Lambda.ServiceException", outcome: "rollback-failed" }),
    ] {
        let mut c = Cell::new(
            format!("step rollback crashes x{count} (after a failed smoke test)"),
            vec![with_count(&rollback, count)],
            expect,
        );
        (c.v2_args, c.drift) = (Some(vec![("BROKEN", "1")]), false);
        out.push(c);
    }
    let finish = json!({"service": "lambda", "operation": "Invoke", "error": "ServiceException", "step": "finish"});
    out.push(Cell::new("step finish crashes x1".into(), vec![with_count(&finish, 1)], Expect::New));
    out.push(Cell::new(
        format!("step finish crashes x{PERSISTENT}"),
        vec![with_count(&finish, PERSISTENT)],
        Expect::NotRecorded { error: "Lambda.ServiceException" },
    ));
    // The queue's writes: Prepare queues v2 behind the running deployment (UpdateItem on the lock item, after
    // the acquire's UpdateItem failed its condition); Finish hands the lock over (UpdateItem) and starts v2's
    // next attempt (StartExecution).
    let queue = json!({"service": "dynamodb", "operation": "UpdateItem", "error": "ThrottlingException", "status": 400, "by": "prepare", "queue": ":pending"});
    for (count, expect) in [
        (TRANSIENT, Expect::New),
        (PAST_SDK, Expect::New),
        (PERSISTENT, Expect::Old { error: "Throttled", outcome: "rejected" }),
    ] {
        let mut c = Cell::new(
            format!("queue: dynamodb UpdateItem(queue) Throttling x{count}"),
            vec![with_count(&queue, count)],
            expect,
        );
        (c.queued, c.retried_by_sfn) = (true, count == PAST_SDK);
        out.push(c);
    }
    for (service, op, error) in
        [("dynamodb", "UpdateItem", "ThrottlingException"), ("states", "StartExecution", "ThrottlingException")]
    {
        let mut f = json!({"service": service, "operation": op, "error": error, "status": 400, "by": "finish"});
        if op == "UpdateItem" {
            f["queue"] = json!(":image");
        }
        let mut c = Cell::new(
            format!("queue: hand-over {service} {op} {error} x{TRANSIENT}"),
            vec![with_count(&f, TRANSIENT)],
            Expect::New,
        );
        c.queued = true;
        out.push(c);
    }
    // The first deployment of a function creates it and its alias.
    for op in ["CreateFunction", "CreateAlias"] {
        for (error, count, expect) in [
            ("TooManyRequestsException", TRANSIENT, Expect::New),
            ("ServiceException", PERSISTENT, Expect::Old { error: "AwsUnavailable", outcome: "rolled-back" }),
        ] {
            let f = json!({"service": "lambda", "operation": op, "error": error});
            let mut c = Cell::new(
                format!("lambda {op} {error} x{count} (first deployment)"),
                vec![with_count(&f, count)],
                expect,
            );
            (c.first, c.drift) = (true, false);
            out.push(c);
        }
    }
    let mut c = Cell::new(
        "update ends LastUpdateStatus=Failed".into(),
        vec![],
        Expect::Old { error: "UpdateFailed", outcome: "rolled-back" },
    );
    (c.v2_args, c.drift) = (Some(vec![("INIT", "exit")]), false);
    out.push(c);
    let mut c = Cell::new(
        "candidate answers with a function error".into(),
        vec![],
        Expect::Old { error: "SmokeTestFailed", outcome: "rolled-back" },
    );
    (c.v2_args, c.drift) = (Some(vec![("BROKEN", "1")]), false);
    out.push(c);
    out
}

/// The trigger's calls on a push: list the targets, start an execution per target. Run one at a time (a
/// fault on the trigger's Scan would hit every push in flight).
fn trigger_cells() -> Vec<Cell> {
    let mut out = Vec::new();
    for (op, error) in [("Scan", "ThrottlingException"), ("StartExecution", "ThrottlingException")] {
        let service = if op == "Scan" { "dynamodb" } else { "states" };
        let f = json!({"service": service, "operation": op, "error": error, "status": 400, "by": "trigger"});
        for (count, expect) in [
            (TRANSIENT, Expect::New),
            // The trigger fails; Lambda's retry of the asynchronous invocation gets through.
            (PAST_SDK, Expect::New),
            (PERSISTENT, Expect::NotStarted { error }),
        ] {
            let mut c = Cell::new(format!("trigger {op} {error} x{count}"), vec![with_count(&f, count)], expect);
            (c.pushed, c.drift) = (true, false);
            out.push(c);
        }
    }
    out
}

fn with_count(f: &Value, n: u64) -> Value {
    let mut f = f.clone();
    f["count"] = json!(n);
    f
}

struct Env {
    sfn: aws_sdk_sfn::Client,
    lambda: aws_sdk_lambda::Client,
    ecr: aws_sdk_ecr::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    store: DynamoTargetStore,
    ledger: DynamoLedger,
    stack: &'static Stack,
    role: String,
    /// The stack's roles: role name -> the function it runs (`prepare`, ..., `trigger`) or "state machine".
    roles: BTreeMap<String, String>,
    images: Images,
}

struct Images {
    v1: String,
    v2: String,
    /// v1 and v2 in the trigger's repository; v1 is tagged `base_tag`, which no target's pattern but the
    /// trigger cells' own matches, and v2 carries no tag until a cell pushes it under its own.
    trigger_v1: String,
    trigger_v2: String,
    base_tag: String,
    /// v1's and v2's tags in REPO, which every cell's target allows.
    v1_tag: String,
    v2_tag: String,
}

fn spec_for(env: &Env, function: &str, repository: &str, drift: bool) -> spec::TargetSpec {
    spec::parse(
        &json!({
            "function": function, "repository": repository,
            "tagPattern": format!(
                "^({}|{function}-v2|{function}-own|{}|{})$",
                env.images.base_tag, env.images.v1_tag, env.images.v2_tag
            ),
            "configuration": {"role": env.role, "timeoutSeconds": 5, "memoryMb": if drift { 192 } else { 128 },
                              "environment": {"RELEASE": if drift { "2" } else { "1" }}},
            "smokeTest": {"cases": [{"name": "echo", "payload": {"echo": "ok"}, "expect": {"echo": "ok"}}]},
            "readyTimeoutSeconds": 60
        })
        .to_string(),
    )
    .unwrap()
}

/// Deploy `digest` by hand, naming no tag: Prepare goes by the tag the image carries in ECR.
async fn deploy(env: &Env, function: &str, repository: &str, digest: &str, name: &str) -> stack::Execution {
    let input = json!({"action": "deploy", "target": function, "repository": repository, "imageDigest": digest});
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

/// The faults a cell arms, aimed as its helper fields say.
fn aimed(env: &Env, cell: &Cell, function: &str, v2: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
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
        if f["record"] == true {
            matches.push(json!(r#"{"S":"deployed"}"#));
        }
        // The queue's own UpdateItems: queueing an image (its `:pending` value) and handing the lock over
        // (its `:image` value); the lock's acquire has neither.
        if let Some(part) = f["queue"].as_str() {
            matches.push(json!(part));
        }
        if let Some(by) = f["by"].as_str() {
            let role = env.roles.iter().find(|(_, f)| f.as_str() == by).map(|(r, _)| r.clone());
            f["caller"] = json!(role.ok_or_else(|| format!("no stack role runs {by}: {:?}", env.roles))?);
        }
        if f["operation"] == "Scan" {
            // A Scan names only the table.
            matches = vec![json!(env.stack.targets_table)];
        }
        for k in ["target", "step", "digest", "record", "by", "queue"] {
            f.as_object_mut().unwrap().remove(k);
        }
        f["match"] = json!(matches);
        out.push(f);
    }
    Ok(out)
}

/// Run one cell; Ok(summary) or Err(what broke).
async fn run(env: &Env, cell: &Cell) -> Result<String, String> {
    let started_ms = deployer_core::steps::now_ms() as i64;
    let function = unique("e2e-fm");
    let (repository, v1) =
        if cell.pushed { (TRIGGER_REPO, env.images.trigger_v1.as_str()) } else { (REPO, env.images.v1.as_str()) };
    // An image of the cell's own is pushed (tagged `<function>-own`, which only this cell's target allows)
    // before its target exists, and the trigger has seen that push: it is deployed by hand, never by the push.
    let own_tag = format!("{function}-own");
    let own = match &cell.v2_args {
        Some(args) => Some(args.clone()),
        None if cell.faults.iter().any(|f| f["digest"] == true) => Some(vec![]),
        None => None,
    };
    let own = match own {
        Some(mut args) => {
            let (variant, tag) = (function.clone(), own_tag.clone());
            let pushed = deployer_core::steps::now_ms() as i64;
            let digest = tokio::task::spawn_blocking(move || {
                args.push(("VARIANT", Box::leak(variant.into_boxed_str())));
                fixture::push_image_with(REPO, &tag, &args)
            })
            .await
            .unwrap();
            trigger_saw(env, &[&digest, &own_tag], pushed).await?;
            Some(digest)
        }
        None => None,
    };
    env.store.put(&spec_for(env, &function, repository, false)).await.map_err(|e| e.to_string())?;
    if !cell.first {
        let first = deploy(env, &function, repository, v1, &unique("fm-v1")).await;
        if first.status != "SUCCEEDED" {
            return Err(format!("baseline v1 did not deploy: {first:?}"));
        }
    }
    let v2 = match own {
        Some(digest) => digest,
        None if cell.pushed => env.images.trigger_v2.clone(),
        None if cell.first => v1.to_string(),
        None => env.images.v2.clone(),
    };
    if cell.drift {
        env.store.put(&spec_for(env, &function, repository, true)).await.map_err(|e| e.to_string())?;
    }
    let mut armed = Vec::new();
    for f in aimed(env, cell, &function, &v2)? {
        armed.push(faults::inject(f).await["faults"][0]["id"].as_u64().unwrap());
    }
    let fname = FunctionName::parse(&function).unwrap();
    let execution = if cell.pushed {
        push_tag(env, &v2, &format!("{function}-v2")).await?;
        execution_name(&fname, &ImageDigest::parse(&v2).unwrap())
    } else {
        unique("fm-v2")
    };
    // A queued cell: a stand-in deployment holds the lock while v2's execution runs (and queues v2).
    let holder = format!("{execution}-holder");
    if cell.queued {
        let now = deployer_core::steps::now_ms() as i64;
        match env.ledger.acquire(&fname, &holder, now, now + 600_000).await {
            Ok(LockOutcome::Acquired) => {}
            other => return Err(format!("the stand-in holder could not take the lock: {other:?}")),
        }
    }
    let mut exec = match cell.expect {
        Expect::NotStarted { .. } => {
            settle(&armed).await;
            None
        }
        _ if cell.pushed => Some(started_by_push(env, &execution).await?),
        _ => Some(deploy(env, &function, repository, &v2, &execution).await),
    };
    let first_execution = execution.clone();
    let mut execution = execution;
    if cell.queued {
        let queued = exec.as_ref().is_some_and(|e| !e.output["queued"].is_null());
        // The stand-in deployment ends (stopped): its status-change event reaches Finish, which hands the lock
        // to v2's next attempt if v2 waits, else frees it.
        holder_ended(env, &holder, &function).await?;
        if queued {
            let next = format!("{execution}_2");
            exec = Some(started_by_push(env, &next).await?);
            // What follows checks the attempt that deployed; the queued one's record says `queued`.
            match env
                .ledger
                .history(&fname, 10)
                .await
                .map_err(|e| e.to_string())?
                .iter()
                .find(|r| r.execution == execution)
            {
                Some(r) if r.outcome == deployer_core::model::Outcome::Queued => {}
                other => return Err(format!("the queued execution {execution} is recorded {other:?}")),
            }
            execution = next;
        }
    }
    let mut fired = 0;
    for id in &armed {
        fired += faults::fired(*id).await;
        faults::disarm(*id).await;
    }
    let mut problems = Vec::new();
    if !armed.is_empty() && fired == 0 {
        problems.push("the fault never fired (the matrix would test nothing)".to_string());
    }
    if cell.retried_by_sfn && fired < PAST_SDK {
        problems.push(format!("fired {fired} times: the SDK's retries were not exhausted"));
    }

    // Invariant 1: the alias serves a published version that passed its smoke test, the one expected (after a
    // failed first deployment: no alias, so nothing serves a version no test passed).
    let serves_new = matches!(cell.expect, Expect::New | Expect::NotRecorded { .. });
    let alias = env.lambda.get_alias().function_name(&function).name("live").send().await;
    let mut version = String::new();
    match alias {
        Err(e)
            if cell.first
                && !serves_new
                && e.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => {}
        Err(e) => problems.push(format!("reading the alias: {e:?}")),
        Ok(_) if cell.first && !serves_new => problems.push("a failed first deployment left an alias".into()),
        Ok(alias) => {
            version = alias.function_version().unwrap_or_default().to_string();
            let want_digest = if serves_new { &v2 } else { v1 };
            let cfg = env.lambda.get_function_configuration().function_name(&function).qualifier(&version).send().await;
            let served = cfg.as_ref().ok().and_then(|c| c.code_sha256()).unwrap_or_default().to_string();
            if alias.routing_config().is_some_and(|r| r.additional_version_weights().is_some_and(|w| !w.is_empty())) {
                problems.push("the alias is split between two versions".into());
            }
            if format!("sha256:{served}") != *want_digest {
                let which = if serves_new { "v2" } else { "v1" };
                problems.push(format!("alias on version {version} serving {served:.12}, expected the {which} image"));
            }
        }
    }

    // Invariant 2: the execution ends as expected, with the error expected and a cause a human can act on.
    let (want_status, want_error) = match cell.expect {
        Expect::New => ("SUCCEEDED", ""),
        Expect::Old { error, .. } => ("FAILED", error),
        Expect::NotRecorded { error } => ("FAILED", error),
        Expect::NotStarted { .. } => ("", ""),
    };
    match &exec {
        Some(exec) => {
            if exec.status != want_status || exec.error != want_error {
                problems.push(format!(
                    "execution {} {:?} ({:.300}), expected {want_status} {want_error:?}",
                    exec.status, exec.error, exec.cause
                ));
            }
            if exec.status == "FAILED" && exec.cause.len() < 20 {
                problems.push(format!("unclear failure: error {:?} cause {:?}", exec.error, exec.cause));
            }
        }
        None => {
            let described =
                env.sfn.describe_execution().execution_arn(env.stack.execution_arn(&execution)).send().await;
            if described.is_ok() {
                problems.push(format!("execution {execution} started although every trigger attempt failed"));
            }
        }
    }
    if cell.retried_by_sfn {
        let arn = env.stack.execution_arn(&first_execution);
        let history = env.sfn.get_execution_history().execution_arn(&arn).max_results(1000).send().await;
        let failed_tasks = history
            .map(|h| h.events().iter().filter(|e| e.r#type().as_str() == "TaskFailed").count())
            .unwrap_or_default();
        if failed_tasks == 0 {
            problems.push("no Task failed: the state machine's Retry was not what recovered".into());
        }
    }

    // Invariant 3: the lock is released (for NotRecorded, by the status-change handler: give it time).
    let patience =
        if matches!(cell.expect, Expect::NotRecorded { .. }) { Duration::from_secs(60) } else { Duration::ZERO };
    let deadline = Instant::now() + patience;
    loop {
        match env.ledger.acquire(&fname, "matrix-probe", deployer_core::steps::now_ms() as i64, 1).await {
            Ok(LockOutcome::Acquired) => {
                let _ = env.ledger.release(&fname, "matrix-probe", None).await;
                break;
            }
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_secs(1)).await,
            other => {
                problems.push(format!("the lock is still held: {other:?}"));
                break;
            }
        }
    }

    // Invariant 4: the execution's record is written, and says what happened.
    let records = env.ledger.history(&fname, 10).await.map_err(|e| e.to_string())?;
    let record = records.iter().find(|r| r.execution == execution);
    let copies = records.iter().filter(|r| r.execution == execution).count();
    if copies > 1 {
        problems.push(format!("{execution} is recorded {copies} times"));
    }
    match (cell.expect, record) {
        (Expect::NotStarted { error }, None) => {
            if let Err(why) = trigger_logged(env, error, started_ms).await {
                problems.push(why);
            }
        }
        (Expect::NotStarted { .. }, Some(r)) => problems.push(format!("a record for a push never deployed: {r:?}")),
        (_, None) => problems.push(format!(
            "no record of {execution} (records: {:?})",
            records.iter().map(|r| &r.execution).collect::<Vec<_>>()
        )),
        (expect, Some(r)) => problems.extend(record_problems(expect, r, &v2, &version, exec.as_ref(), cell.pushed)),
    }

    // Invariant 5: an image that went live is tagged, so the lifecycle policy keeps it for a rollback.
    if cell.expect == Expect::New {
        let tag = format!("deployed-{function}-v{version}");
        let tags = image_tags(env, if cell.pushed { TRIGGER_REPO } else { REPO }, &v2).await?;
        if tags.contains(&tag) == cell.untagged {
            problems.push(format!(
                "tag {tag} {}: image tags {tags:?}",
                if cell.untagged { "present although every tag call failed" } else { "missing" }
            ));
        }
    }
    if problems.is_empty() {
        let status = exec.map(|e| e.status).unwrap_or_else(|| "not started".into());
        Ok(format!("{status} -> {} (fired {fired})", if serves_new { "v2" } else { "v1" }))
    } else {
        Err(problems.join("; "))
    }
}

fn record_problems(
    expect: Expect,
    r: &DeploymentRecord,
    v2: &str,
    version: &str,
    exec: Option<&stack::Execution>,
    pushed: bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    let outcome = serde_json::to_value(r.outcome).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    let want_outcome = match expect {
        Expect::New => "deployed",
        Expect::Old { outcome, .. } => outcome,
        Expect::NotRecorded { .. } => "abandoned",
        Expect::NotStarted { .. } => "",
    };
    if outcome != want_outcome {
        problems.push(format!("recorded {outcome:?}, expected {want_outcome:?}"));
    }
    if r.image_digest.as_ref().map(|d| d.to_string()).as_deref() != Some(v2) {
        problems.push(format!("record names image {:?}, not v2", r.image_digest));
    }
    let live = matches!(expect, Expect::New | Expect::NotRecorded { .. });
    if live && r.version_after.as_deref() != Some(version) {
        problems.push(format!("record says version {:?} serves, the alias is on {version}", r.version_after));
    }
    if let Some(exec) = exec.filter(|e| e.status == "FAILED") {
        if r.error.as_deref() != Some(exec.error.as_str()) {
            problems.push(format!("record's error {:?} is not the execution's {:?}", r.error, exec.error));
        }
        if r.cause.as_deref().is_none_or(|c| c.len() < 20) {
            problems.push(format!("record's cause is unclear: {:?}", r.cause));
        }
    }
    let want_trigger = if pushed { "ecr-push" } else { "manual" };
    if r.trigger != want_trigger {
        problems.push(format!("recorded as started by {:?}, expected {want_trigger:?}", r.trigger));
    }
    problems
}

/// Give v2 (already in the trigger's repository) the tag `tag`: ECR's PutImage, which pushes it again and
/// sends the push event the trigger gets.
async fn push_tag(env: &Env, digest: &str, tag: &str) -> Result<(), String> {
    sdk::tag_image(&env.ecr, TRIGGER_REPO, digest, tag).await
}

/// The execution the trigger starts for the push, once it has ended.
async fn started_by_push(env: &Env, name: &str) -> Result<stack::Execution, String> {
    let arn = env.stack.execution_arn(name);
    let deadline = Instant::now() + Duration::from_secs(120);
    while env.sfn.describe_execution().execution_arn(&arn).send().await.is_err() {
        if Instant::now() > deadline {
            return Err(format!("the push started no execution {name} within 120 s"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(stack::finished(&env.sfn, &arn, Duration::from_secs(300)).await)
}

/// The stand-in deployment `holder` of `function` ended: its status-change event, sent to Finish as the
/// stack's ExecutionEnded rule sends it (an asynchronous invocation, which Lambda retries on failure); then
/// wait until the lock is no longer the holder's.
async fn holder_ended(env: &Env, holder: &str, function: &str) -> Result<(), String> {
    let input = json!({"action": "deploy", "target": function, "repository": REPO, "imageDigest": env.images.v1});
    let event = json!({
        "version": "0", "source": "aws.states", "detail-type": "Step Functions Execution Status Change",
        "detail": {"executionArn": env.stack.execution_arn(holder), "stateMachineArn": env.stack.state_machine_arn,
                   "name": holder, "status": "ABORTED", "input": input.to_string(),
                   "startDate": deployer_core::steps::now_ms() as i64 - 60_000,
                   "stopDate": deployer_core::steps::now_ms() as i64, "error": null, "cause": "stopped"}
    });
    env.lambda
        .invoke()
        .function_name(format!("{STACK}-finish"))
        .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
        .payload(aws_sdk_lambda::primitives::Blob::new(event.to_string()))
        .send()
        .await
        .map_err(|e| format!("sending the holder's status-change event: {e:?}"))?;
    let fname = FunctionName::parse(function).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let lock = env.ledger.lock_state(&fname).await.map_err(|e| e.to_string())?;
        if lock.as_ref().is_none_or(|l| l.owner != holder) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("the lock is still the stand-in holder's 120 s after it ended: {lock:?}"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Wait until the armed faults stop firing: the trigger and Lambda's retries of it have given up.
async fn settle(armed: &[u64]) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut last, mut since) = (0, Instant::now());
    while Instant::now() < deadline {
        let mut fired = 0;
        for id in armed {
            fired += faults::fired(*id).await;
        }
        if fired != last {
            (last, since) = (fired, Instant::now());
        } else if fired > 0 && since.elapsed() > Duration::from_secs(10) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn trigger_saw(env: &Env, needles: &[&str], since_ms: i64) -> Result<(), String> {
    stack::trigger_saw(&env.logs, needles, since_ms).await
}

/// The trigger's log since `since_ms` names `error`: the failure is there to be read.
async fn trigger_logged(env: &Env, error: &str, since_ms: i64) -> Result<(), String> {
    let cfg = env.lambda.get_function_configuration().function_name(format!("{STACK}-trigger")).send().await;
    let group = cfg
        .ok()
        .and_then(|c| c.logging_config().and_then(|l| l.log_group()).map(str::to_string))
        .ok_or("the trigger has no log group")?;
    let out = env.logs.filter_log_events().log_group_name(&group).start_time(since_ms).send().await;
    let messages: Vec<String> = out
        .map_err(|e| format!("reading {group}: {e:?}"))?
        .events()
        .iter()
        .filter_map(|e| e.message().map(str::to_string))
        .collect();
    if messages.iter().any(|m| m.contains(error)) {
        Ok(())
    } else {
        Err(format!("the trigger's log ({} lines since the push) never names {error}", messages.len()))
    }
}

async fn image_tags(env: &Env, repository: &str, digest: &str) -> Result<Vec<String>, String> {
    let id = aws_sdk_ecr::types::ImageIdentifier::builder().image_digest(digest).build();
    let out = env.ecr.describe_images().repository_name(repository).image_ids(id).send().await;
    let out = out.map_err(|e| format!("describing {digest}: {e:?}"))?;
    Ok(out.image_details().iter().flat_map(|d| d.image_tags().iter().cloned()).collect())
}

/// Local AWS's usage log: calls by (role, service, operation).
async fn usage() -> BTreeMap<(String, String, String), u64> {
    let body: Value = reqwest::get(format!("{}/_local/usage", sdk::endpoint()))
        .await
        .expect("local AWS answers /_local/usage")
        .json()
        .await
        .expect("a JSON answer");
    let mut out = BTreeMap::new();
    for c in body["calls"].as_array().expect("usage lists calls") {
        let (Some(role), Some(service), Some(op)) =
            (c["role"].as_str(), c["service"].as_str(), c["operation"].as_str())
        else {
            continue;
        };
        *out.entry((role.to_string(), service.to_string(), op.to_string())).or_default() +=
            c["count"].as_u64().unwrap_or(0);
    }
    out
}

/// The stack's roles: each step function's execution role, the trigger's and the state machine's.
async fn stack_roles(
    lambda: &aws_sdk_lambda::Client,
    sfn: &aws_sdk_sfn::Client,
    stack: &Stack,
) -> BTreeMap<String, String> {
    let mut roles = BTreeMap::new();
    for f in [
        "trigger",
        "prepare",
        "update-code",
        "check-ready",
        "smoke-test",
        "publish-version",
        "provision",
        "acceptance",
        "shift-traffic",
        "check-health",
        "shift-alias",
        "rollback",
        "finish",
    ] {
        let cfg = lambda.get_function_configuration().function_name(format!("{STACK}-{f}")).send().await.unwrap();
        let role = cfg.role().unwrap_or_default();
        roles.insert(role.rsplit('/').next().unwrap_or(role).to_string(), f.to_string());
    }
    let sm = sfn.describe_state_machine().state_machine_arn(&stack.state_machine_arn).send().await.unwrap();
    roles.insert(sm.role_arn().rsplit('/').next().unwrap_or_default().to_string(), "state machine".into());
    roles
}

/// The calls the stack's roles made that no cell aims a fault at: (function, service, operation, count).
fn uncovered(
    calls: &BTreeMap<(String, String, String), u64>,
    roles: &BTreeMap<String, String>,
    cells: &[Cell],
) -> Vec<String> {
    let aimed: BTreeSet<(String, String, Option<String>)> = cells
        .iter()
        .flat_map(|c| c.faults.iter())
        .map(|f| {
            (
                f["service"].as_str().unwrap_or_default().to_string(),
                f["operation"].as_str().unwrap_or_default().to_string(),
                f["by"].as_str().map(str::to_string),
            )
        })
        .collect();
    let mut out = Vec::new();
    for ((role, service, op), n) in calls {
        let Some(by) = roles.get(role) else { continue };
        let covered = aimed.iter().any(|(s, o, b)| s == service && o == op && b.as_ref().is_none_or(|b| b == by));
        if !covered {
            out.push(format!("{by}: {service} {op} ({n} calls)"));
        }
    }
    out
}

#[tokio::test]
async fn every_fault_on_every_call_leaves_production_no_worse() {
    let cfg = sdk::config().await;
    let stack = tokio::task::spawn_blocking(stack::ensure).await.unwrap();
    let iam = aws_sdk_iam::Client::new(&cfg);
    let ecr = aws_sdk_ecr::Client::new(&cfg);
    for repo in [REPO, TRIGGER_REPO] {
        let _ = ecr.create_repository().repository_name(repo).send().await;
    }
    // REPO is among the stack's AllowedRepositories (the deployer deploys only from those), so its pushes reach
    // the trigger: v1 and v2 are pushed before any cell's target exists, and the trigger has seen both before
    // the cells start, so no push deploys them.
    let base_tag = unique("base");
    let (v1_tag, v2_tag) = (unique("matrix-v1"), unique("matrix-v2"));
    let since = deployer_core::steps::now_ms() as i64;
    let tags = (v1_tag.clone(), v2_tag.clone());
    let images = tokio::task::spawn_blocking(move || {
        let v1 = fixture::push_image(REPO, &tags.0, "one");
        let trigger_v1 = fixture::push_image(TRIGGER_REPO, &base_tag, "trigger-one");
        // ECR's push times are whole seconds, and an image pushed in the same second as the live one is never
        // deployed over it: each v2 is pushed in a later second than the v1s.
        std::thread::sleep(Duration::from_millis(1100));
        Images {
            v1,
            v2: fixture::push_image(REPO, &tags.1, "two"),
            trigger_v1,
            trigger_v2: fixture::push_image(TRIGGER_REPO, &unique("untargeted"), "trigger-two"),
            base_tag,
            v1_tag: tags.0,
            v2_tag: tags.1,
        }
    })
    .await
    .unwrap();
    let (lambda, sfn) = (aws_sdk_lambda::Client::new(&cfg), aws_sdk_sfn::Client::new(&cfg));
    let env = Env {
        roles: stack_roles(&lambda, &sfn, stack).await,
        sfn,
        lambda,
        ecr,
        logs: aws_sdk_cloudwatchlogs::Client::new(&cfg),
        store: DynamoTargetStore::from_sdk(&cfg, &stack.targets_table),
        ledger: DynamoLedger::from_sdk(&cfg, &format!("{STACK}-deployments")),
        stack,
        role: sdk::role(&iam, "e2e-matrix-role").await,
        images,
    };
    for (image, tag) in [(&env.images.v1, &env.images.v1_tag), (&env.images.v2, &env.images.v2_tag)] {
        trigger_saw(&env, &[image, tag], since).await.expect("the trigger saw the push");
    }
    let before = usage().await;

    let (cells, trigger_cells) = (cells(), trigger_cells());
    let total = cells.len() + trigger_cells.len();
    let mut failed = Vec::new();
    let mut report = |cell: &Cell, result: Result<String, String>| match result {
        Ok(summary) => println!("ok     {:<64} {summary}", cell.name),
        Err(why) => {
            println!("FAILED {:<64} {why}", cell.name);
            failed.push(cell.name.clone());
        }
    };
    // Six cells in flight at a time (the next starts as soon as one ends): enough to finish in minutes, few
    // enough for a 2-core machine.
    for (cell, result) in cells.iter().zip(in_flight(cells.iter().map(|c| run(&env, c)), 6).await) {
        report(cell, result);
    }
    for cell in &trigger_cells {
        report(cell, run(&env, cell).await);
    }

    // Every call the stack's roles made while the matrix ran has cells aimed at it.
    let after = usage().await;
    let made: BTreeMap<_, _> = after
        .into_iter()
        .map(|(k, n)| {
            let was = before.get(&k).copied().unwrap_or(0);
            (k, n - was)
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    let all: Vec<Cell> = cells.iter().chain(&trigger_cells).cloned().collect();
    let missing = uncovered(&made, &env.roles, &all);
    let steps_seen: BTreeSet<&String> = made.keys().filter_map(|(r, _, _)| env.roles.get(r)).collect();
    println!("calls made by the stack's roles during the matrix: {} kinds, by {steps_seen:?}", made.len());
    deployer_tests::report(
        "fault-matrix",
        &format!(
            "fault-matrix: {} passed, {} failed ({total} cells); {} kinds of call made, {} without cells",
            total - failed.len(),
            failed.len(),
            made.len(),
            missing.len()
        ),
    );
    if !missing.is_empty() {
        println!("calls without cells: {missing:?}");
    }
    assert!(failed.is_empty(), "fault matrix cells failed: {failed:?}");
    assert!(missing.is_empty(), "calls the deployment made that no cell aims a fault at: {missing:?}");
    assert!(steps_seen.len() >= 9, "the usage log saw too few of the stack's roles: {steps_seen:?}");
}

/// Run `futures` on this task, at most `width` at a time, each started as soon as another ends; their
/// outputs in order (no extra dependency).
async fn in_flight<F: std::future::Future>(futures: impl Iterator<Item = F>, width: usize) -> Vec<F::Output> {
    let mut waiting = futures.enumerate();
    let mut running: Vec<(usize, std::pin::Pin<Box<F>>)> = Vec::new();
    let mut out: Vec<(usize, F::Output)> = Vec::new();
    std::future::poll_fn(|cx| loop {
        while running.len() < width {
            match waiting.next() {
                Some((i, f)) => running.push((i, Box::pin(f))),
                None => break,
            }
        }
        let before = out.len();
        running.retain_mut(|(i, f)| match f.as_mut().poll(cx) {
            std::task::Poll::Ready(v) => {
                out.push((*i, v));
                false
            }
            std::task::Poll::Pending => true,
        });
        if running.is_empty() {
            return std::task::Poll::Ready(());
        }
        if out.len() == before {
            return std::task::Poll::Pending;
        }
        // One ended: start the next ones at once (they are polled on the next turn of the loop).
    })
    .await;
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, v)| v).collect()
}
