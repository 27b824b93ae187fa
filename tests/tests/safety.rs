//! End to end on local AWS: the deployer's safety guarantees. One deployment per function at a time; an
//! older image never replaces a newer one that went live; every execution is on record and frees the
//! function's lock; a rollback only goes to a version that served and whose image still exists; drift is
//! repaired and reported.
//!
//! Every test owns a fresh function deploying repository `e2e-safety`. The trigger starts a deployment for
//! every target of that repository whose tag pattern matches the push, so each target allows only tags that
//! start with its own function's name (`<function>-v<n>`): the tests run in parallel and never deploy each
//! other's pushes. Each target is deleted from the targets table when its test ends, passed or not.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_ecr::error::ProvideErrorMetadata;
use deployer_aws::{DynamoLedger, DynamoTargetStore};
use deployer_core::model::{DeploymentRecord, LockOutcome};
use deployer_core::ports::{DeploymentLedger, TargetStore};
use deployer_core::spec::{self, TargetSpec};
use deployer_tests::stack::{self, Execution, Stack, STACK};
use deployer_tests::{faults, fixture, sdk, unique, wait};
use serde_json::{json, Value};

const REPO: &str = "e2e-safety";
/// Images a test must push at a moment of its choosing are built and pushed here first (no rule listens
/// to it, no target deploys it), then pushed from buildah's storage to `REPO` in well under a second.
const STAGING: &str = "e2e-safety-staging";
/// Long enough for an execution that waits for another one's lock.
const TIMEOUT: Duration = Duration::from_secs(180);

struct Env {
    lambda: aws_sdk_lambda::Client,
    ecr: aws_sdk_ecr::Client,
    sfn: aws_sdk_sfn::Client,
    store: DynamoTargetStore,
    ledger: DynamoLedger,
    stack: &'static Stack,
    role: String,
}

async fn env() -> Env {
    let cfg = sdk::config().await;
    let stack = tokio::task::spawn_blocking(stack::ensure).await.unwrap();
    let ecr = aws_sdk_ecr::Client::new(&cfg);
    for repo in [REPO, STAGING] {
        let _ = ecr.create_repository().repository_name(repo).send().await;
    }
    Env {
        lambda: aws_sdk_lambda::Client::new(&cfg),
        ecr,
        sfn: aws_sdk_sfn::Client::new(&cfg),
        store: DynamoTargetStore::from_sdk(&cfg, &stack.targets_table),
        ledger: DynamoLedger::from_sdk(&cfg, &format!("{STACK}-deployments")),
        role: sdk::role(&aws_sdk_iam::Client::new(&cfg), "e2e-service-role").await,
        stack,
    }
}

/// A fresh function's target, registered in the stack's table; deleted from it when dropped, so that a
/// failed test leaves no target behind either.
struct Target {
    spec: TargetSpec,
    table: String,
}

impl std::ops::Deref for Target {
    type Target = TargetSpec;
    fn deref(&self) -> &TargetSpec {
        &self.spec
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let (table, function) = (self.table.clone(), self.spec.function.clone());
        // Its own thread and runtime: Drop runs inside the test's runtime, maybe while it unwinds.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            rt.block_on(async {
                let store = DynamoTargetStore::from_sdk(&sdk::config().await, &table);
                store.delete(&function).await
            })
        })
        .join();
    }
}

/// One state of an execution, from its history: when it was entered and left, and the errors its task
/// attempts failed with (each retried attempt's error, in order).
#[derive(Debug, Clone)]
struct Step {
    state: String,
    entered_ms: i64,
    exited_ms: Option<i64>,
    errors: Vec<String>,
}

/// The fields of a record a test checks: execution, outcome, trigger, digest, version before, version after.
type Summary = (String, String, String, Option<String>, Option<String>, Option<String>);

fn summary(r: &DeploymentRecord) -> Summary {
    (
        r.execution.clone(),
        serde_json::to_value(r.outcome).unwrap().as_str().unwrap().to_string(),
        r.trigger.clone(),
        r.image_digest.as_ref().map(|d| d.to_string()),
        r.version_before.clone(),
        r.version_after.clone(),
    )
}

fn record(
    execution: &str,
    outcome: &str,
    trigger: &str,
    digest: Option<&str>,
    before: Option<&str>,
    after: Option<&str>,
) -> Summary {
    let s = |v: Option<&str>| v.map(str::to_string);
    (execution.to_string(), outcome.to_string(), trigger.to_string(), s(digest), s(before), s(after))
}

/// The name the trigger gives the deployment of `digest` to `function`.
fn push_execution(function: &str, digest: &str) -> String {
    format!("deploy-{function}-{}", &digest["sha256:".len().."sha256:".len() + 12])
}

/// Two images pushed one right after the other.
struct Pair {
    tag2: String,
    tag3: String,
    digest2: String,
    digest3: String,
    /// From the end of v2's push to the end of v3's.
    gap: Duration,
}

/// Push `STAGING:tag` (built earlier by [`Env::stage`]) to `REPO:tag`; the pushed digest.
fn push_staged(tag: &str) -> String {
    let digest_file = std::env::temp_dir().join(unique("safety-digest"));
    let out = fixture::buildah(&fixture::buildah_root())
        .args(["push", "--tls-verify=false", "--digestfile"])
        .arg(&digest_file)
        .arg(format!("{STAGING}:{tag}"))
        .arg(format!("docker://{}/{REPO}:{tag}", sdk::registry()))
        .output()
        .expect("buildah runs");
    assert!(out.status.success(), "buildah push of {tag} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let digest = std::fs::read_to_string(&digest_file).expect("buildah wrote the digest").trim().to_string();
    let _ = std::fs::remove_file(&digest_file);
    digest
}

impl Env {
    /// A target for a fresh function deploying `REPO`, registered in the stack's table.
    async fn target(&self) -> Target {
        let function = unique("e2e-safety");
        let spec = spec::parse(
            &json!({
                "function": function,
                "repository": REPO,
                "tagPattern": format!("^{function}-v[0-9]+$"),
                "configuration": {
                    "role": self.role, "memoryMb": 256, "timeoutSeconds": 5,
                    "environment": {"MODE": "safety"},
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
        Target { spec, table: self.stack.targets_table.clone() }
    }

    /// A fresh target whose v1 is live; with v1's digest.
    async fn live_target(&self) -> (Target, String) {
        let t = self.target().await;
        let (digest, exec) = self.push(&t, "v1", &[]).await;
        assert_eq!(exec.status, "SUCCEEDED", "v1 of {}: {exec:?}", t.function);
        (t, digest)
    }

    /// Push the fixture image `<function>-<label>` (its variant is the same name) and wait for the
    /// deployment the push starts.
    async fn push(&self, t: &TargetSpec, label: &str, args: &[(&str, &str)]) -> (String, Execution) {
        let tag = format!("{}-{label}", t.function);
        let mut args: Vec<(String, String)> = args.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        args.push(("VARIANT".into(), tag.clone()));
        let digest = tokio::task::spawn_blocking(move || {
            let args: Vec<(&str, &str)> = args.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            fixture::push_image_with(REPO, &tag, &args)
        })
        .await
        .unwrap();
        let exec = self.wait(&push_execution(t.function.as_str(), &digest)).await;
        (digest, exec)
    }

    /// Build the fixture image `<function>-<label>` and park it in `STAGING`; [`push_staged`] pushes it.
    async fn stage(&self, t: &TargetSpec, label: &str) -> String {
        let tag = format!("{}-{label}", t.function);
        let staged = tag.clone();
        tokio::task::spawn_blocking(move || fixture::stage_image(STAGING, &staged, &staged)).await.unwrap();
        tag
    }

    /// Build `<function>-v2` and `<function>-v3`, then push v2 right after a clock second begins, and v3
    /// right after it: in the same second (`next_second` false; ECR's push times, and local AWS's, are
    /// whole seconds, so these are the closest two pushes can be), or in the next one (`next_second`
    /// true: still close enough for the two deployments to overlap, far enough for their push times to
    /// order them).
    async fn push_two(&self, t: &TargetSpec, next_second: bool) -> Pair {
        let (tag2, tag3) = tokio::join!(self.stage(t, "v2"), self.stage(t, "v3"));
        sleep_into_next_second().await;
        let tags = (tag2.clone(), tag3.clone());
        let (digest2, digest3, gap) = tokio::task::spawn_blocking(move || {
            let d2 = push_staged(&tags.0);
            let pushed2 = Instant::now();
            if next_second {
                std::thread::sleep(until_next_second());
            }
            let d3 = push_staged(&tags.1);
            (d2, d3, pushed2.elapsed())
        })
        .await
        .unwrap();
        let limit = if next_second { Duration::from_secs(3) } else { Duration::from_secs(1) };
        assert!(gap < limit, "v3 was pushed {gap:?} after v2 (the test needs them within {limit:?})");
        Pair { tag2, tag3, digest2, digest3, gap }
    }

    async fn wait(&self, name: &str) -> Execution {
        stack::finished(&self.sfn, &self.stack.execution_arn(name), TIMEOUT).await
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

    /// An operator's deploy request, as typed into the console (not from a push).
    async fn deploy_by_hand(&self, name: &str, t: &TargetSpec, digest: &str, tag: &str) -> Execution {
        let input = json!({"action": "deploy", "target": t.function, "repository": REPO,
                           "imageDigest": digest, "imageTag": tag});
        self.start(name, input).await
    }

    async fn rollback(&self, name: &str, t: &TargetSpec, to: Option<&str>) -> Execution {
        let mut input = json!({"action": "rollback", "function": t.function});
        if let Some(v) = to {
            input["toVersion"] = json!(v);
        }
        self.start(name, input).await
    }

    /// (version, RevisionId) of the alias.
    async fn alias(&self, t: &TargetSpec) -> (String, String) {
        let a = self.lambda.get_alias().function_name(t.function.as_str()).name("live").send().await.unwrap();
        (a.function_version().unwrap().to_string(), a.revision_id().unwrap().to_string())
    }

    async fn versions(&self, t: &TargetSpec) -> Vec<String> {
        let out = self.lambda.list_versions_by_function().function_name(t.function.as_str()).send().await.unwrap();
        out.versions().iter().filter_map(|v| v.version().map(str::to_string)).collect()
    }

    /// The image digest a version (or $LATEST) runs.
    async fn digest_of(&self, t: &TargetSpec, version: &str) -> String {
        let f = self.lambda.get_function().function_name(t.function.as_str()).qualifier(version).send().await.unwrap();
        format!("sha256:{}", f.configuration().unwrap().code_sha256().unwrap())
    }

    async fn environment_of(&self, t: &TargetSpec, version: &str) -> Value {
        let f = self.lambda.get_function().function_name(t.function.as_str()).qualifier(version).send().await.unwrap();
        json!(f.configuration().unwrap().environment().and_then(|e| e.variables()).cloned().unwrap_or_default())
    }

    async fn invoke_alias(&self, t: &TargetSpec) -> Value {
        sdk::invoke_alias(&self.lambda, t.function.as_str()).await
    }

    /// The function's deployment lock is free: a probe takes it, then gives it back.
    async fn assert_lock_free(&self, t: &TargetSpec, after: &str) {
        let (probe, now) = ("safety-probe", deployer_core::steps::now_ms() as i64);
        match self.ledger.acquire(&t.function, probe, now, now + 10_000).await.expect("the ledger answers") {
            LockOutcome::Acquired => {
                assert!(self.ledger.release(&t.function, probe, None).await.expect("the ledger answers"));
            }
            LockOutcome::Held { owner, .. } => panic!("after {after}, the lock of {} is held by {owner}", t.function),
        }
    }

    /// When ECR says the image was pushed (as the deployer reads it).
    async fn pushed_at(&self, digest: &str) -> Option<aws_smithy_types::DateTime> {
        let id = aws_sdk_ecr::types::ImageIdentifier::builder().image_digest(digest).build();
        let out = self.ecr.describe_images().repository_name(REPO).image_ids(id).send().await.ok()?;
        out.image_details().first().and_then(|d| d.image_pushed_at()).copied()
    }

    async fn records(&self, t: &TargetSpec) -> Vec<DeploymentRecord> {
        self.ledger.history(&t.function, 20).await.expect("the ledger answers")
    }

    async fn record_of(&self, t: &TargetSpec, execution: &str) -> DeploymentRecord {
        let all = self.records(t).await;
        all.iter().find(|r| r.execution == execution).cloned().unwrap_or_else(|| {
            panic!("no record of {execution}; recorded: {:?}", all.iter().map(|r| &r.execution).collect::<Vec<_>>())
        })
    }

    /// The execution's states in the order they were entered, from GetExecutionHistory.
    async fn steps(&self, name: &str) -> Vec<Step> {
        let (arn, mut token, mut steps) = (self.stack.execution_arn(name), None::<String>, Vec::<Step>::new());
        loop {
            let out = self
                .sfn
                .get_execution_history()
                .execution_arn(&arn)
                .max_results(1000)
                .set_next_token(token.take())
                .send()
                .await
                .unwrap();
            for e in out.events() {
                let at = e.timestamp().to_millis().unwrap();
                if let Some(d) = e.state_entered_event_details() {
                    steps.push(Step { state: d.name().to_string(), entered_ms: at, exited_ms: None, errors: vec![] });
                } else if let Some(d) = e.state_exited_event_details() {
                    if let Some(s) = steps.iter_mut().rev().find(|s| s.state == d.name()) {
                        s.exited_ms = Some(at);
                    }
                } else if let Some(error) = e
                    .task_failed_event_details()
                    .and_then(|d| d.error())
                    .or_else(|| e.lambda_function_failed_event_details().and_then(|d| d.error()))
                {
                    if let Some(s) = steps.last_mut() {
                        s.errors.push(error.to_string());
                    }
                }
            }
            match out.next_token() {
                Some(t) => token = Some(t.to_string()),
                None => return steps,
            }
        }
    }

    /// Poll the alias every 100 ms until `stop` is set: the versions it served, in order, each once per run.
    fn watch_alias(&self, t: &TargetSpec, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Vec<String>> {
        let (lambda, function) = (self.lambda.clone(), t.function.to_string());
        tokio::spawn(async move {
            let mut seen: Vec<String> = Vec::new();
            loop {
                let done = stop.load(Ordering::SeqCst);
                if let Ok(a) = lambda.get_alias().function_name(&function).name("live").send().await {
                    let v = a.function_version().unwrap_or_default().to_string();
                    if seen.last() != Some(&v) {
                        seen.push(v);
                    }
                }
                if done {
                    return seen;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    }
}

fn step<'a>(steps: &'a [Step], state: &str, execution: &str) -> &'a Step {
    steps.iter().find(|s| s.state == state).unwrap_or_else(|| panic!("{execution} never entered {state}: {steps:?}"))
}

#[tokio::test]
async fn two_pushes_close_together_deploy_one_at_a_time_and_the_last_one_pushed_stays_live() {
    let env = env().await;
    let t = env.target().await;
    let f = t.function.to_string();
    let (_, exec) = env.push(&t, "v1", &[]).await;
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
    env.assert_lock_free(&t, "v1's deployment").await;

    // WHEN v2 then v3 are pushed close together (v3 in the next clock second)
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = env.watch_alias(&t, stop.clone());
    let started = Instant::now();
    let Pair { tag2: _, tag3, digest2, digest3, gap } = env.push_two(&t, true).await;
    let (name2, name3) = (push_execution(&f, &digest2), push_execution(&f, &digest3));
    let (exec2, exec3) = tokio::join!(env.wait(&name2), env.wait(&name3));

    // THEN two executions, both SUCCEEDED
    assert_eq!(exec2.status, "SUCCEEDED", "{exec2:?}");
    assert_eq!(exec3.status, "SUCCEEDED", "{exec3:?}");

    // ... that never held the function at the same time: the one that came second found the first holding
    // the lock and waited in its queue (it ended at once, recorded queued), and its image's deployment started
    // under its own attempt name only once the first had reached Finish, which handed it the lock.
    let (queued2, queued3) = (!exec2.output["queued"].is_null(), !exec3.output["queued"].is_null());
    assert!(!(queued2 && queued3), "both were queued: {exec2:?} {exec3:?}");
    let (first, second) = if queued2 { (&name3, &name2) } else { (&name2, &name3) };
    let behind = if queued2 { &exec2.output } else { &exec3.output };
    let first_finish = step(&env.steps(first).await, "Finish", first).clone();
    let deployed_by = |name: &String| {
        if (name == &name2 && queued2) || (name == &name3 && queued3) {
            format!("{name}_2")
        } else {
            name.clone()
        }
    };
    if queued2 || queued3 {
        assert_eq!(behind["queued"]["behind"], first.as_str(), "{behind}");
        let next = format!("{second}_2");
        let exec = env.wait(&next).await;
        assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
        let next_prepare = step(&env.steps(&next).await, "Prepare", &next).clone();
        assert!(
            next_prepare.entered_ms >= first_finish.entered_ms,
            "{next} entered Prepare at {}, before {first} reached Finish at {}",
            next_prepare.entered_ms,
            first_finish.entered_ms
        );
    } else {
        // Far enough apart that the first was done before the second's Prepare: it simply ran after it.
        let second_prepare = step(&env.steps(second).await, "Prepare", second).clone();
        assert!(first_finish.exited_ms.is_some_and(|done| second_prepare.entered_ms >= done), "{second_prepare:?}");
    }
    let elapsed = started.elapsed();
    println!(
        "v2 and v3 pushed {gap:?} apart; {first} went first; {second} was {}; all done {elapsed:?} after the first push",
        if queued2 || queued3 { "queued behind it" } else { "started after it" }
    );

    stop.store(true, Ordering::SeqCst);
    let served = watcher.await.unwrap();

    // ... and the alias ends on the image pushed last, v3, and never served v2 after v3.
    let (live, _) = env.alias(&t).await;
    assert_eq!(env.digest_of(&t, &live).await, digest3, "the alias must serve v3, pushed last");
    assert_eq!(env.invoke_alias(&t).await["variant"], tag3.as_str());
    let mut served_digests = Vec::new();
    for v in &served {
        served_digests.push(env.digest_of(&t, v).await);
    }
    let v3_from = served_digests.iter().position(|d| *d == digest3).expect("the alias served v3");
    assert!(
        served_digests[v3_from..].iter().all(|d| *d == digest3),
        "the alias served {served:?} (digests {served_digests:?}): it left v3 for an older image"
    );

    // The records agree: v3 deployed the live version; v2 deployed an earlier one, or was superseded.
    let (r2, r3) = (env.record_of(&t, &deployed_by(&name2)).await, env.record_of(&t, &deployed_by(&name3)).await);
    assert_eq!(summary(&r3).1, "deployed", "{r3:?}");
    assert_eq!(r3.version_after.as_deref(), Some(live.as_str()), "{r3:?}");
    match summary(&r2).1.as_str() {
        "deployed" => {
            let (v2, v3): (u64, u64) = (r2.version_after.as_ref().unwrap().parse().unwrap(), live.parse().unwrap());
            assert!(v2 < v3 && r2.finished_at_ms <= r3.finished_at_ms, "v2 went live after v3: {r2:?} {r3:?}");
        }
        "superseded" => {
            let exec = env.wait(&deployed_by(&name2)).await;
            assert_eq!(exec.output["supersededBy"], digest3.as_str(), "{exec:?}")
        }
        other => panic!("v2's deployment ended {other}: {r2:?}"),
    }
    env.assert_lock_free(&t, "v2's and v3's deployments").await;
}

#[tokio::test]
async fn an_older_image_deployed_by_hand_after_a_newer_one_went_live_changes_nothing() {
    let env = env().await;
    let t = env.target().await;
    let (digest2, exec) = env.push(&t, "v2", &[]).await;
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
    let (digest3, exec) = env.push(&t, "v3", &[]).await;
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
    let (live, revision) = env.alias(&t).await;
    assert_eq!(env.digest_of(&t, &live).await, digest3);
    let versions = env.versions(&t).await;
    let latest = env.digest_of(&t, "$LATEST").await;

    // WHEN an operator re-runs v2's deployment by hand (a new execution with v2's input)
    let tag2 = format!("{}-v2", t.function);
    let name = unique("rerun-v2");
    let exec = env.deploy_by_hand(&name, &t, &digest2, &tag2).await;

    // THEN it succeeds having changed nothing, and says which newer image is live.
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
    assert_eq!(exec.output["supersededBy"], digest3.as_str(), "{exec:?}");
    assert_eq!(env.alias(&t).await, (live.clone(), revision), "the alias did not move (same RevisionId)");
    assert_eq!(env.versions(&t).await, versions, "no new version");
    assert_eq!(env.digest_of(&t, "$LATEST").await, latest, "$LATEST was not touched");
    assert_eq!(env.invoke_alias(&t).await["variant"], format!("{}-v3", t.function));
    let r = env.record_of(&t, &name).await;
    assert_eq!(summary(&r), record(&name, "superseded", "manual", Some(&digest2), Some(&live), Some(&live)));
    env.assert_lock_free(&t, "the superseded deployment").await;
}

/// ECR's push times are whole seconds: two images pushed in the same second cannot be ordered. The one that
/// goes live first stays; the other push is refused (superseded, with the reason), never deployed over it;
/// an operator who deploys it by hand has chosen it, and it goes live.
#[tokio::test]
async fn an_image_pushed_in_the_same_second_as_the_live_one_is_not_deployed_over_it() {
    let env = env().await;
    let t = env.target().await;
    let f = t.function.to_string();
    // GIVEN v2 and v3 pushed within the same second (ECR gives them the same push time)
    let Pair { tag2, tag3, digest2, digest3, .. } = env.push_two(&t, false).await;
    let (at2, at3) = (env.pushed_at(&digest2).await, env.pushed_at(&digest3).await);
    assert!(at2.is_some() && at2 == at3, "the test needs one push time for both: v2 {at2:?}, v3 {at3:?}");
    let (name2, name3) = (push_execution(&f, &digest2), push_execution(&f, &digest3));
    let (exec2, exec3) = tokio::join!(env.wait(&name2), env.wait(&name3));
    assert_eq!((exec2.status.as_str(), exec3.status.as_str()), ("SUCCEEDED", "SUCCEEDED"), "{exec2:?} {exec3:?}");

    // THEN exactly one went live; the other was superseded by it, with the reason on record
    let (live, _) = env.alias(&t).await;
    let live_digest = env.digest_of(&t, &live).await;
    let ((won, won_exec), (lost, lost_name, lost_tag, lost_exec)) = if live_digest == digest2 {
        ((digest2.clone(), &exec2), (digest3.clone(), &name3, &tag3, &exec3))
    } else {
        assert_eq!(live_digest, digest3, "the alias serves one of the two");
        ((digest3.clone(), &exec3), (digest2.clone(), &name2, &tag2, &exec2))
    };
    assert_eq!(won_exec.output["imageDigest"], won.as_str(), "{won_exec:?}");
    // The other push either came after the winner's deployment ended and was refused at once, or found it
    // running and was queued behind it: then its next attempt, started as the winner ended, was refused.
    let (lost_name, lost_exec) = if lost_exec.output["queued"].is_object() {
        assert_eq!(lost_exec.output["queued"]["behind"], push_execution(&f, &won).as_str(), "{lost_exec:?}");
        let next = format!("{lost_name}_2");
        let exec = env.wait(&next).await;
        assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
        (next, exec)
    } else {
        (lost_name.clone(), lost_exec.clone())
    };
    assert_eq!(lost_exec.output["supersededBy"], won.as_str(), "{lost_exec:?}");
    let r = env.record_of(&t, &lost_name).await;
    assert_eq!(summary(&r).1, "superseded", "{r:?}");
    let cause = r.cause.clone().unwrap_or_default();
    assert!(cause.contains("same ECR push time") && cause.contains("deploy it by hand"), "{r:?}");

    // WHEN an operator deploys the held-back image by hand (their choice settles the tie)
    let name = unique("by-hand-same-second");
    let exec = env.deploy_by_hand(&name, &t, &lost, lost_tag).await;

    // THEN it goes live, recorded as the operator's
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
    assert_eq!(exec.output["imageDigest"], lost.as_str(), "{exec:?}");
    let (now_live, _) = env.alias(&t).await;
    assert_eq!(env.digest_of(&t, &now_live).await, lost);
    assert_ne!(now_live, live);
    let r = env.record_of(&t, &name).await;
    assert_eq!(summary(&r), record(&name, "deployed", "manual", Some(&lost), Some(&live), Some(&now_live)));
    env.assert_lock_free(&t, "the deployment by hand").await;
}

#[tokio::test]
async fn every_execution_is_recorded_with_its_outcome_and_frees_the_lock() {
    let env = env().await;
    let t = env.target().await;
    let f = t.function.to_string();

    let (digest1, exec) = env.push(&t, "v1", &[]).await;
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
    env.assert_lock_free(&t, "v1's deployment").await;
    let (digest2, exec) = env.push(&t, "v2", &[]).await;
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
    env.assert_lock_free(&t, "v2's deployment").await;
    let (digest3, exec) = env.push(&t, "v3", &[("BROKEN", "1")]).await;
    assert_eq!((exec.status.as_str(), exec.error.as_str()), ("FAILED", "SmokeTestFailed"), "{exec:?}");
    env.assert_lock_free(&t, "v3's failed deployment").await;
    let by_hand = unique("by-hand");
    let exec = env.deploy_by_hand(&by_hand, &t, &digest1, &format!("{f}-v1")).await;
    assert_eq!((exec.status.as_str(), exec.output["supersededBy"].as_str()), ("SUCCEEDED", Some(digest2.as_str())));
    env.assert_lock_free(&t, "the superseded deployment").await;
    let rollback = unique("rollback");
    let exec = env.rollback(&rollback, &t, None).await;
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
    env.assert_lock_free(&t, "the rollback").await;

    let history = env.records(&t).await;
    let got: Vec<Summary> = history.iter().map(summary).collect();
    assert_eq!(
        got,
        vec![
            record(&rollback, "manual-rollback", "operator", None, Some("2"), Some("1")),
            record(&by_hand, "superseded", "manual", Some(&digest1), Some("2"), Some("2")),
            record(&push_execution(&f, &digest3), "rolled-back", "ecr-push", Some(&digest3), Some("2"), Some("2")),
            record(&push_execution(&f, &digest2), "deployed", "ecr-push", Some(&digest2), Some("1"), Some("2")),
            record(&push_execution(&f, &digest1), "deployed", "ecr-push", Some(&digest1), None, Some("1")),
        ],
        "newest first"
    );
    let rolled_back = &history[2];
    assert_eq!(rolled_back.error.as_deref(), Some("SmokeTestFailed"), "{rolled_back:?}");
    assert!(rolled_back.cause.as_deref().unwrap_or("").contains("alias live stayed on version 2"), "{rolled_back:?}");
    assert_eq!(history[4].image_tag.as_deref(), Some(format!("{f}-v1").as_str()));
    assert!(history.iter().all(|r| r.function == t.function && !r.started_at.is_empty()), "{history:?}");
}

/// An execution stopped from outside (an operator's StopExecution) never reaches Finish: its status-change
/// event frees the lock at once (not when it expires) and records it.
#[tokio::test]
async fn an_execution_stopped_mid_flight_frees_the_lock_at_once_and_is_recorded() {
    let env = env().await;
    let t = env.target().await;
    let f = t.function.to_string();
    let (_, exec) = env.push(&t, "v1", &[]).await;
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
    let (live, revision) = env.alias(&t).await;

    // GIVEN v2's deployment hangs in Update Function (its UpdateFunctionCode call does not answer)
    let armed = faults::inject(json!({"service": "lambda", "operation": "UpdateFunctionCode", "error": "timeout",
                                      "delaySeconds": 20, "count": 1, "match": f}))
    .await;
    let fault = armed["faults"][0]["id"].as_u64().expect("the fault's id");
    let tag = format!("{f}-v2");
    let pushed = tag.clone();
    let digest2 = tokio::task::spawn_blocking(move || fixture::push_image_with(REPO, &pushed, &[("VARIANT", &pushed)]))
        .await
        .unwrap();
    let name = push_execution(&f, &digest2);
    let arn = env.stack.execution_arn(&name);
    let started = Instant::now();
    while faults::fired(fault).await == 0 {
        assert!(started.elapsed() < Duration::from_secs(60), "v2's deployment never reached UpdateFunctionCode");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        matches!(env.ledger.acquire(&t.function, "safety-probe", 0, 1).await.unwrap(), LockOutcome::Held { ref owner, .. } if *owner == name),
        "v2's deployment holds the lock while it updates"
    );

    // WHEN an operator stops it
    env.sfn.stop_execution().execution_arn(&arn).cause("operator: wrong image").send().await.unwrap();
    let stopped = stack::finished(&env.sfn, &arn, TIMEOUT).await;
    assert_eq!(stopped.status, "ABORTED", "{stopped:?}");

    // THEN the lock is freed and the execution recorded, well before the lock would expire
    let deadline = Instant::now() + Duration::from_secs(30);
    let r = loop {
        if let Some(r) = env.records(&t).await.into_iter().find(|r| r.execution == name) {
            break r;
        }
        assert!(Instant::now() < deadline, "no record of the stopped execution {name}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    // (the version the alias serves, as the handler found it: v1's)
    assert_eq!(summary(&r), record(&name, "abandoned", "ecr-push", Some(&digest2), None, Some(&live)));
    assert!(r.cause.as_deref().unwrap_or_default().contains("ended ABORTED"), "{r:?}");
    env.assert_lock_free(&t, "the stopped execution").await;
    // AND the alias never left v1, and the next push deploys without waiting for the lock
    assert_eq!(env.alias(&t).await, (live, revision));
    faults::disarm(fault).await;
    let (digest3, exec) = env.push(&t, "v3", &[]).await;
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
    assert_eq!(env.digest_of(&t, &env.alias(&t).await.0).await, digest3);
}

#[tokio::test]
async fn a_rollback_goes_only_to_a_recorded_good_version_whose_image_is_still_there() {
    let env = env().await;
    let t = env.target().await;
    let f = t.function.to_string();
    let mut digests = Vec::new();
    for label in ["v1", "v2", "v3"] {
        let (digest, exec) = env.push(&t, label, &[]).await;
        assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
        digests.push(digest);
    }
    assert_eq!(env.alias(&t).await.0, "3");

    // To version 1, named: moved and verified through the alias.
    let exec = env.rollback(&unique("rollback"), &t, Some("1")).await;
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
    assert_eq!((exec.output["fromVersion"].as_str(), exec.output["toVersion"].as_str()), (Some("3"), Some("1")));
    assert_eq!(exec.output["verifiedCases"], 1, "{exec:?}");
    assert_eq!(env.alias(&t).await.0, "1");
    assert_eq!(env.invoke_alias(&t).await["variant"], format!("{f}-v1"));
    env.assert_lock_free(&t, "the rollback to 1").await;
    let exec = env.rollback(&unique("rollback"), &t, Some("3")).await;
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
    let alias = env.alias(&t).await;
    assert_eq!(alias.0, "3");

    // GIVEN a version that exists but never served: code updated and published by hand, outside the deployer
    // (its tag is outside the target's pattern, so the push deploys nothing).
    let hand_tag = format!("{f}-by-hand");
    let tag = hand_tag.clone();
    let hand = tokio::task::spawn_blocking(move || fixture::push_image(REPO, &tag, &tag)).await.unwrap();
    env.lambda
        .update_function_code()
        .function_name(&f)
        .image_uri(sdk::image_uri(REPO, &hand))
        .send()
        .await
        .expect("UpdateFunctionCode by hand");
    wait::function_settled(&env.lambda, &f).await;
    let published = env.lambda.publish_version().function_name(&f).send().await.expect("PublishVersion by hand");
    assert_eq!(published.version(), Some("4"));
    assert_eq!(env.digest_of(&t, "4").await, hand);

    // WHEN an operator rolls back to it, THEN refused: it names the versions that did serve.
    let exec = env.rollback(&unique("rollback"), &t, Some("4")).await;
    assert_eq!((exec.status.as_str(), exec.error.as_str()), ("FAILED", "InvalidInput"), "{exec:?}");
    assert!(exec.cause.contains("version 4 of") && exec.cause.contains("never served"), "{}", exec.cause);
    assert!(exec.cause.contains("recorded good versions: 1, 2, 3"), "{}", exec.cause);
    assert_eq!(env.alias(&t).await, alias, "the alias did not move");
    env.assert_lock_free(&t, "the refused rollback to 4").await;

    // GIVEN version 1's image deleted from ECR (a lifecycle policy, say)
    let deleted = env
        .ecr
        .batch_delete_image()
        .repository_name(REPO)
        .image_ids(aws_sdk_ecr::types::ImageIdentifier::builder().image_digest(&digests[0]).build())
        .send()
        .await
        .expect("BatchDeleteImage");
    assert!(deleted.failures().is_empty(), "{:?}", deleted.failures());
    let ids = deleted.image_ids();
    assert!(!ids.is_empty() && ids.iter().all(|i| i.image_digest() == Some(digests[0].as_str())), "{ids:?}");

    // WHEN an operator rolls back to version 1, THEN refused, and the alias stays where it is.
    let exec = env.rollback(&unique("rollback"), &t, Some("1")).await;
    assert_eq!((exec.status.as_str(), exec.error.as_str()), ("FAILED", "InvalidInput"), "{exec:?}");
    assert!(exec.cause.contains("no longer in repository"), "{}", exec.cause);
    assert!(exec.cause.contains(&digests[0]), "{}", exec.cause);
    assert_eq!(env.alias(&t).await, alias, "the alias did not move (same RevisionId)");
    assert_eq!(env.invoke_alias(&t).await["variant"], format!("{f}-v3"));
    env.assert_lock_free(&t, "the refused rollback to 1").await;
}

#[tokio::test]
async fn drift_made_by_hand_is_repaired_by_the_next_deployment_and_recorded() {
    let env = env().await;
    let t = env.target().await;
    let f = t.function.to_string();
    let (_, exec) = env.push(&t, "v1", &[]).await;
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");

    // GIVEN an operator changed the environment in the console, and the change has settled
    let edited =
        aws_sdk_lambda::types::Environment::builder().variables("MODE", "hand-edited").variables("DEBUG", "1").build();
    env.lambda
        .update_function_configuration()
        .function_name(&f)
        .environment(edited)
        .send()
        .await
        .expect("UpdateFunctionConfiguration by hand");
    wait::function_settled(&env.lambda, &f).await;
    assert_eq!(env.environment_of(&t, "$LATEST").await, json!({"MODE": "hand-edited", "DEBUG": "1"}));

    // WHEN a new image is pushed
    let (digest2, exec) = env.push(&t, "v2", &[]).await;

    // THEN it is deployed with the spec's environment again
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
    assert_eq!(exec.output["version"], "2", "{exec:?}");
    assert_eq!(env.alias(&t).await.0, "2");
    assert_eq!(env.digest_of(&t, "2").await, digest2);
    assert_eq!(env.environment_of(&t, "2").await, json!({"MODE": "safety"}), "the new version has the spec's");
    assert_eq!(env.environment_of(&t, "$LATEST").await, json!({"MODE": "safety"}));
    assert_eq!(env.invoke_alias(&t).await["variant"], format!("{f}-v2"));

    // ... and the execution's record lists what had drifted (an environment variable by name, never its value).
    let r = env.record_of(&t, &push_execution(&f, &digest2)).await;
    assert_eq!(summary(&r).1, "deployed", "{r:?}");
    let drift: Vec<(&str, &str, &str)> =
        r.drift.iter().map(|d| (d.field.as_str(), d.expected.as_str(), d.actual.as_str())).collect();
    assert_eq!(
        drift,
        [("environment.DEBUG", "(unset)", "(set)"), ("environment.MODE", "(set)", "(set to another value, not shown)")],
        "{r:?}"
    );
    env.assert_lock_free(&t, "the deployment that repaired the drift").await;
}

/// How long until 20 ms into the next clock second.
fn until_next_second() -> Duration {
    let into = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_millis();
    Duration::from_millis(u64::from(1020 - into))
}

async fn sleep_into_next_second() {
    tokio::time::sleep(until_next_second()).await;
}

// The deployer's own policy, whoever asks: the tag is ECR's, the stack's prefixes and repositories hold at
// Prepare, no secret reaches any output, and only targets are recorded.

#[tokio::test]
async fn an_image_goes_live_only_by_a_tag_it_carries_in_ecr_whoever_names_another() {
    let env = env().await;
    let (t, _) = env.live_target().await;
    let f = t.function.to_string();
    let (alias, versions) = (env.alias(&t).await, env.versions(&t).await);

    // GIVEN an image pushed only as `<function>-experimental`, which the target's pattern does not allow
    let experimental = format!("{f}-experimental");
    let tag = experimental.clone();
    let digest = tokio::task::spawn_blocking(move || fixture::push_image(REPO, &tag, &tag)).await.unwrap();
    let invented = format!("{f}-v9");
    let refused = |exec: &Execution, what: &str, says: &str| {
        assert_eq!((exec.status.as_str(), exec.error.as_str()), ("FAILED", "InvalidInput"), "{what}: {exec:?}");
        assert!(exec.message().contains(says), "{what}: {}", exec.message());
        assert!(exec.message().contains(&format!("its tags in ECR: {experimental}")), "{what}: {}", exec.message());
    };
    let not_carried = format!("does not carry the tag \"{invented}\"");

    // WHEN a hand-made push event names an allowed tag with that image's digest
    let (error, report) = stack::invoke_trigger(&env.lambda, &stack::ecr_push_event(REPO, &digest, &invented)).await;
    assert_eq!(error, None, "{report}");
    let exec = env.wait(&push_execution(&f, &digest)).await;
    // THEN the deployment it starts is refused: the image does not carry the tag in ECR
    refused(&exec, "hand-made push event", &not_carried);

    // AND the same for an operator's input naming the tag, for `deployctl deploy --digest --tag`, and for a
    // request naming no tag (none of the image's tags is allowed)
    let exec = env.deploy_by_hand(&unique("by-hand-invented"), &t, &digest, &invented).await;
    refused(&exec, "start-execution with an invented imageTag", &not_carried);
    let (ok, out) = stack::run_deployctl(&["deploy", &f, "--digest", &digest, "--tag", &invented]).await;
    assert!(!ok && out.contains(&not_carried), "deployctl deploy --digest --tag: {out}");
    let untagged = json!({"action": "deploy", "target": f, "repository": REPO, "imageDigest": digest});
    let exec = env.start(&unique("by-hand-no-tag"), untagged).await;
    refused(&exec, "start-execution without imageTag", "carries no tag that");

    // ... and nothing moved: the alias is where it was, nothing was published, v1 answers
    assert_eq!(env.alias(&t).await, alias, "the alias did not move (same RevisionId)");
    assert_eq!(env.versions(&t).await, versions, "nothing was published");
    assert_eq!(env.invoke_alias(&t).await["variant"], format!("{f}-v1"));
    env.assert_lock_free(&t, "the refused requests").await;

    // WHEN the image is given an allowed tag in ECR (a push of the same image under `<function>-v2`), and
    // an operator deploys it naming no tag
    sdk::tag_image(&env.ecr, REPO, &digest, &format!("{f}-v2")).await.unwrap();
    let name = unique("by-hand-tagged");
    let tagged = json!({"action": "deploy", "target": f, "repository": REPO, "imageDigest": digest});
    let exec = env.start(&name, tagged).await;
    // THEN it goes live, and the tag recorded (and in the version's description) is the one ECR gives it
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
    let r = env.record_of(&t, &name).await;
    assert_eq!((summary(&r).1.as_str(), r.image_tag.as_deref()), ("deployed", Some(format!("{f}-v2").as_str())));
    let v = env.alias(&t).await.0;
    let described = env.lambda.get_function_configuration().function_name(&f).qualifier(&v).send().await.unwrap();
    assert!(described.description().unwrap_or_default().contains(&format!("{f}-v2")), "{described:?}");
    assert_eq!(env.invoke_alias(&t).await["variant"], experimental);
}

#[tokio::test]
async fn a_target_stored_around_deployctl_that_breaks_the_stacks_policy_is_refused_by_prepare() {
    let env = env().await;
    let (t, digest) = env.live_target().await;
    let f = t.function.to_string();
    let (alias, versions) = (env.alias(&t).await, env.versions(&t).await);
    let role_before = env.lambda.get_function_configuration().function_name(&f).send().await.unwrap();
    let admin = sdk::role(&aws_sdk_iam::Client::new(&sdk::config().await), "admin").await;

    // GIVEN targets written straight into the table (bypassing `deployctl target apply`): one naming a
    // function outside TargetFunctionPrefix, one handing the live function a role outside TargetRolePrefix,
    // one handing it another account's role
    let outside = format!("payments-{}", unique("api"));
    let with = |patch: Value| {
        let mut doc = serde_json::to_value(&t.spec).unwrap();
        for (k, v) in patch.as_object().unwrap() {
            match k.as_str() {
                "role" => doc["configuration"]["role"] = v.clone(),
                _ => doc[k] = v.clone(),
            }
        }
        spec::parse(&doc.to_string()).unwrap()
    };
    let cases = [
        (
            with(json!({"function": outside})),
            format!("\"{outside}\" does not start with the stack's TargetFunctionPrefix \"e2e-\""),
        ),
        (with(json!({"role": admin})), "does not start with the stack's TargetRolePrefix \"e2e-\"".to_string()),
        (
            with(json!({"role": "arn:aws:iam::999999999999:role/e2e-service-role"})),
            format!(
                "is a role of account 999999999999; the deployer passes only roles of its own account {}",
                sdk::ACCOUNT
            ),
        ),
    ];
    for (spec, says) in cases {
        env.store.put(&spec).await.expect("stored around deployctl");
        // WHEN a deployment of an image the target allows is asked for
        let input = json!({"action": "deploy", "target": spec.function, "repository": REPO, "imageDigest": digest});
        let exec = env.start(&unique("outside-policy"), input).await;
        if spec.function != t.function {
            env.store.delete(&spec.function).await.unwrap();
        }
        // THEN Prepare refuses it, naming the parameter and its value
        assert_eq!((exec.status.as_str(), exec.error.as_str()), ("FAILED", "InvalidInput"), "{exec:?}");
        assert!(exec.message().contains(&says), "{}", exec.message());
        assert!(exec.message().contains("outside the deployer stack's policy"), "{}", exec.message());
    }
    env.store.put(&t.spec).await.unwrap();

    // ... and nothing was created or changed: no function outside the prefix, the live one keeps its role
    let created = env.lambda.get_function().function_name(&outside).send().await;
    assert!(created.is_err(), "{outside} was created: {created:?}");
    let role_after = env.lambda.get_function_configuration().function_name(&f).send().await.unwrap();
    assert_eq!(role_after.role(), role_before.role());
    assert_eq!((env.alias(&t).await, env.versions(&t).await), (alias, versions));
    env.assert_lock_free(&t, "the refused deployments").await;
}

#[tokio::test]
async fn the_step_roles_may_read_pull_and_tag_only_the_allowed_repositories() {
    let cfg = sdk::config().await;
    let _ = tokio::task::spawn_blocking(stack::ensure).await.unwrap();
    let (lambda, iam, ecr) =
        (aws_sdk_lambda::Client::new(&cfg), aws_sdk_iam::Client::new(&cfg), aws_sdk_ecr::Client::new(&cfg));
    // GIVEN an image in an allowed repository and the same image in a repository the stack does not allow
    let outside = "e2e-outside-policy";
    let _ = ecr.create_repository().repository_name(outside).send().await;
    let _ = ecr.create_repository().repository_name(REPO).send().await;
    let tag = unique("iam");
    let digest = {
        let tag = tag.clone();
        tokio::task::spawn_blocking(move || fixture::push_image(outside, &tag, "iam")).await.unwrap()
    };
    let manifest = {
        let id = aws_sdk_ecr::types::ImageIdentifier::builder().image_digest(&digest).build();
        let got = ecr.batch_get_image().repository_name(outside).image_ids(id).send().await.unwrap();
        got.images()[0].image_manifest().unwrap().to_string()
    };
    // Each ECR call a step makes, by the step that makes it.
    let calls: [(&str, &str); 5] = [
        ("trigger", "DescribeImages"),
        ("prepare", "DescribeImages"),
        ("update-code", "BatchGetImage"),
        ("rollback", "DescribeImages"),
        ("finish", "PutImage"),
    ];
    for (step, call) in calls {
        // The step's own role, with a trust statement added so that the test may take a session of it (its
        // permissions are untouched; the statement is taken away again).
        let role = lambda.get_function_configuration().function_name(format!("{STACK}-{step}")).send().await.unwrap();
        let role_arn = role.role().unwrap().to_string();
        let role_name = role_arn.rsplit('/').next().unwrap().to_string();
        let got = iam.get_role().role_name(&role_name).send().await.unwrap();
        let original = got.role().unwrap().assume_role_policy_document().unwrap_or_default().to_string();
        let original = sdk::percent_decoded(&original);
        let mut trust: Value = serde_json::from_str(&original).unwrap();
        trust["Statement"].as_array_mut().unwrap().push(json!({"Effect": "Allow", "Action": "sts:AssumeRole",
            "Principal": {"AWS": format!("arn:aws:iam::{}:root", sdk::ACCOUNT)}}));
        iam.update_assume_role_policy().role_name(&role_name).policy_document(trust.to_string()).send().await.unwrap();
        let session = aws_sdk_ecr::Client::new(&sdk::as_role(&role_arn).await);
        let attempt = |repo: &'static str| {
            let (session, digest, manifest) = (session.clone(), digest.clone(), manifest.clone());
            async move {
                let id = aws_sdk_ecr::types::ImageIdentifier::builder().image_digest(&digest).build();
                let code = |e: &dyn ProvideErrorMetadata| e.code().unwrap_or_default().to_string();
                match call {
                    "DescribeImages" => session
                        .describe_images()
                        .repository_name(repo)
                        .image_ids(id)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| code(&e)),
                    "BatchGetImage" => session
                        .batch_get_image()
                        .repository_name(repo)
                        .image_ids(id)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| code(&e)),
                    _ => session
                        .put_image()
                        .repository_name(repo)
                        .image_manifest(manifest)
                        .image_tag(unique("deployed"))
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| code(&e)),
                }
            }
        };
        let denied = attempt(outside).await;
        // In the allowed repository the call is authorized (the image is not there: ECR's own answer).
        let allowed = attempt(REPO).await;
        iam.update_assume_role_policy().role_name(&role_name).policy_document(&original).send().await.unwrap();
        // THEN outside the allowed repositories IAM refuses it; inside, IAM lets it through to ECR
        assert_eq!(
            denied.as_ref().err().map(String::as_str),
            Some("AccessDeniedException"),
            "{step} {call} on {outside}"
        );
        assert!(
            !allowed.as_ref().err().is_some_and(|c| c.starts_with("AccessDenied")),
            "{step} {call} on {REPO}: {allowed:?}"
        );
    }
}

#[tokio::test]
async fn a_secret_set_out_of_band_reaches_no_output_record_log_or_notification() {
    let env = env().await;
    let (sqs, queue) = stack::notifications_queue().await;
    let started_ms = deployer_core::steps::now_ms() as i64;
    let (t, _) = env.live_target().await;
    let f = t.function.to_string();

    // GIVEN someone set a password on the function by hand, outside the spec
    let secret = format!("hunter2-{}", unique("s3cr3t"));
    let planted = aws_sdk_lambda::types::Environment::builder()
        .variables("MODE", "safety")
        .variables("DB_PASSWORD", &secret)
        .build();
    env.lambda.update_function_configuration().function_name(&f).environment(planted).send().await.unwrap();
    wait::function_settled(&env.lambda, &f).await;

    // WHEN the next image is deployed (which repairs the drift), and an operator looks at it every way
    let (digest2, exec) = env.push(&t, "v2", &[]).await;
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
    assert_eq!(env.environment_of(&t, "$LATEST").await, json!({"MODE": "safety"}), "the drift was repaired");
    let name = push_execution(&f, &digest2);
    let r = env.record_of(&t, &name).await;
    let drift: Vec<(&str, &str, &str)> =
        r.drift.iter().map(|d| (d.field.as_str(), d.expected.as_str(), d.actual.as_str())).collect();
    // THEN the drift names the key, never the value
    assert_eq!(drift, [("environment.DB_PASSWORD", "(unset)", "(set)")], "{r:?}");

    let mut outputs: Vec<(String, String)> = Vec::new();
    // ... the execution's output and every event of its history (each state's input and output)
    outputs.push(("execution output".into(), exec.output.to_string()));
    let arn = env.stack.execution_arn(&name);
    let history = env.sfn.get_execution_history().execution_arn(&arn).max_results(1000).send().await.unwrap();
    for e in history.events() {
        outputs.push((format!("history event {} {:?}", e.id(), e.r#type()), format!("{e:?}")));
    }
    // ... every item of the stack's tables
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk::config().await);
    for table in [format!("{STACK}-deployments"), env.stack.targets_table.clone()] {
        let items = dynamodb.scan().table_name(&table).send().await.unwrap();
        outputs.push((format!("table {table}"), format!("{:?}", items.items())));
    }
    // ... every log line the stack's steps wrote since the test began
    let logs = aws_sdk_cloudwatchlogs::Client::new(&sdk::config().await);
    let groups = logs.describe_log_groups().log_group_name_prefix(format!("/{STACK}/")).send().await.unwrap();
    assert!(groups.log_groups().len() >= 10, "the steps' log groups: {groups:?}");
    for g in groups.log_groups() {
        let group = g.log_group_name().unwrap_or_default();
        let mut token = None;
        loop {
            let page = logs
                .filter_log_events()
                .log_group_name(group)
                .start_time(started_ms)
                .set_next_token(token.take())
                .send()
                .await
                .unwrap();
            let lines: Vec<&str> = page.events().iter().filter_map(|e| e.message()).collect();
            outputs.push((format!("log group {group}"), lines.join("\n")));
            match page.next_token() {
                Some(t) => token = Some(t.to_string()),
                None => break,
            }
        }
    }
    // ... the notifications, and what deployctl prints
    outputs.push(("notifications".into(), stack::notifications(&sqs, &queue, &f).await.join("\n")));
    for args in [vec!["history", f.as_str()], vec!["status", f.as_str()], vec!["target", "show", f.as_str()]] {
        let (ok, out) = stack::run_deployctl(&args).await;
        assert!(ok, "deployctl {args:?}: {out}");
        outputs.push((format!("deployctl {}", args.join(" ")), out));
    }
    // THEN the secret is in none of them (and the search would have found it: the step logs name the drift)
    for (what, text) in &outputs {
        assert!(!text.contains(&secret), "the secret is in the {what}: {text}");
    }
    assert!(
        outputs.iter().any(|(what, text)| what.starts_with("log group") && text.contains("environment.DB_PASSWORD")),
        "no step logged the drift: the search did not look where it should"
    );
}

/// The stack function `function`'s role name (a fault aimed at its calls names it as the caller).
async fn role_of(lambda: &aws_sdk_lambda::Client, function: &str) -> String {
    let cfg = lambda.get_function_configuration().function_name(format!("{STACK}-{function}")).send().await.unwrap();
    cfg.role().unwrap_or_default().rsplit('/').next().unwrap_or_default().to_string()
}

#[tokio::test]
async fn a_deployment_whose_finish_failed_records_its_real_outcome_when_redriven_and_moves_nothing_twice() {
    // GIVEN v1 live, and the deployments table refusing Finish's write of a `deployed` record for longer than
    // every retry (an outage of the ledger only)
    let env = env().await;
    let (t, _) = env.live_target().await;
    let record = json!({"service": "dynamodb", "operation": "PutItem", "error": "InternalServerError",
                        "status": 500, "count": 1000, "caller": role_of(&env.lambda, "finish").await,
                        "match": [t.function.as_str(), r#"{"S":"deployed"}"#]});
    let fault = faults::inject(record).await["faults"][0]["id"].as_u64().unwrap();

    // WHEN v2 is pushed
    let (digest2, exec) = env.push(&t, "v2", &[]).await;

    // THEN v2 went live, but the execution failed in Finish itself (no Catch), naming the ledger's error;
    // the status-change handler recorded it abandoned (serving v2) and freed the lock
    let name = push_execution(t.function.as_str(), &digest2);
    assert_eq!((exec.status.as_str(), exec.error.as_str()), ("FAILED", "AwsUnavailable"), "{exec:?}");
    let (live, revision) = env.alias(&t).await;
    assert_eq!(env.digest_of(&t, &live).await, digest2);
    let deadline = Instant::now() + Duration::from_secs(60);
    while env.records(&t).await.iter().all(|r| r.execution != name) {
        assert!(Instant::now() < deadline, "the status-change handler never recorded {name}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(summary(&env.record_of(&t, &name).await).1, "abandoned");
    env.assert_lock_free(&t, "the failed Finish").await;
    let versions = env.versions(&t).await;

    // WHEN the outage is over and an operator redrives the execution
    faults::disarm(fault).await;
    let arn = env.stack.execution_arn(&name);
    env.sfn.redrive_execution().execution_arn(&arn).send().await.expect("the failed execution is redrivable");
    let exec = env.wait(&name).await;

    // THEN it converges: Finish alone ran again and recorded the real outcome; no second version, no second
    // alias move (same RevisionId), the lock free
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
    let described = env.sfn.describe_execution().execution_arn(&arn).send().await.unwrap();
    assert_eq!(described.redrive_count(), Some(1));
    assert_eq!(env.versions(&t).await, versions, "no second version");
    assert_eq!(env.alias(&t).await, (live.clone(), revision), "the alias did not move again");
    let records = env.records(&t).await;
    let mine: Vec<_> = records.iter().filter(|r| r.execution == name).map(|r| summary(r).1).collect();
    assert_eq!(mine, ["deployed", "abandoned"], "the real outcome is on record, newest first");
    let states = env.steps(&name).await;
    let runs = |state: &str| states.iter().filter(|s| s.state == state).count();
    assert_eq!((runs("Update Function"), runs("Publish Version"), runs("Shift Alias")), (1, 1, 1), "{states:?}");
    assert_eq!(runs("Finish"), 2, "{states:?}");
    env.assert_lock_free(&t, "the redrive").await;
}

#[tokio::test]
async fn the_ledgers_queue_writes_hold_only_for_the_lock_they_were_meant_for() {
    // The DynamoDB ledger on the stack's table, driven directly: each conditional write of the queue.
    let env = env().await;
    let f = deployer_core::ids::FunctionName::parse(&unique("e2e-ledger")).unwrap();
    let now = deployer_core::steps::now_ms() as i64;
    let image = |by: &str, c: char| deployer_core::model::PendingImage {
        repository: deployer_core::ids::RepositoryName::parse(REPO).unwrap(),
        image_digest: deployer_core::ids::ImageDigest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap(),
        image_tag: format!("v-{c}"),
        pushed_at_ms: Some(now),
        queued_by: by.to_string(),
        queued_at_ms: now,
    };
    let l = &env.ledger;
    assert_eq!(l.acquire(&f, "running", now, now + 60_000).await.unwrap(), LockOutcome::Acquired);
    // Queued only behind the holder it names, only over the image it saw waiting.
    assert!(!l.put_pending(&f, "someone-else", now, &image("q1", 'a'), None).await.unwrap());
    assert!(l.put_pending(&f, "running", now, &image("q1", 'a'), None).await.unwrap());
    assert!(!l.put_pending(&f, "running", now, &image("q2", 'b'), None).await.unwrap(), "something waits already");
    assert!(!l.put_pending(&f, "running", now, &image("q2", 'b'), Some("q0")).await.unwrap(), "not the one seen");
    assert!(l.put_pending(&f, "running", now, &image("q2", 'b'), Some("q1")).await.unwrap());
    // Never behind an expired lock.
    assert!(!l.put_pending(&f, "running", now + 120_000, &image("q3", 'c'), Some("q2")).await.unwrap());
    // The holder cannot just release with an image waiting; it hands over, once.
    assert!(!l.release(&f, "running", None).await.unwrap());
    assert!(!l.hand_over(&f, "running", &image("q1", 'a'), "next", now + 60_000).await.unwrap(), "q1 was replaced");
    assert!(l.hand_over(&f, "running", &image("q2", 'b'), "q2_2", now + 60_000).await.unwrap());
    assert!(!l.hand_over(&f, "running", &image("q2", 'b'), "q2_2", now + 60_000).await.unwrap(), "no second time");
    let state = l.lock_state(&f).await.unwrap().unwrap();
    assert_eq!((state.owner.as_str(), state.pending), ("q2_2", None));
    assert_eq!(state.handed_over, Some(("running".to_string(), image("q2", 'b'))));
    // The next owner takes it as its own; an image queued meanwhile stays across the acquire.
    assert!(l.put_pending(&f, "q2_2", now, &image("q4", 'd'), None).await.unwrap());
    assert_eq!(l.acquire(&f, "q2_2", now, now + 90_000).await.unwrap(), LockOutcome::Acquired);
    let state = l.lock_state(&f).await.unwrap().unwrap();
    assert_eq!((state.expires_at_ms, state.handed_over, state.pending), (now + 90_000, None, Some(image("q4", 'd'))));
    // Dropping the image waiting frees the lock; then it is simply free.
    assert!(!l.release(&f, "q2_2", Some("q1")).await.unwrap(), "not the image waiting");
    assert!(l.release(&f, "q2_2", Some("q4")).await.unwrap());
    assert_eq!(l.lock_state(&f).await.unwrap(), None);
}

#[tokio::test]
async fn the_ledger_refuses_items_it_cannot_read_and_names_them() {
    // The DynamoDB ledger on the stack's table, with items no deployer wrote: each read says which item and
    // what to do, rather than reading past it (a skipped record would drop a good version from a rollback's
    // choices; an ignored abort would let a canary go on).
    use aws_sdk_dynamodb::types::AttributeValue as A;
    let env = env().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk::config().await);
    let table = format!("{STACK}-deployments");
    // A target with no function yet: `deployctl status` gets as far as the lock.
    let t = env.target().await;
    let f = t.function.clone();
    let put = |sk: &str, attrs: Vec<(&str, A)>| {
        let mut req = dynamodb
            .put_item()
            .table_name(&table)
            .item("function", A::S(f.to_string()))
            .item("sk", A::S(sk.to_string()));
        for (k, v) in attrs {
            req = req.item(k, v);
        }
        req.send()
    };

    // A record whose JSON does not read: the history is refused, naming the item.
    put("record#001796374775000#made-by-hand", vec![("record", A::S("{\"function\": 1".into()))]).await.unwrap();
    let err = env.ledger.history(&f, 20).await.unwrap_err();
    assert_eq!(err.name(), "InvalidInput", "{err}");
    assert!(
        err.to_string().contains("record#001796374775000#made-by-hand") && err.to_string().contains("does not read"),
        "{err}"
    );
    let (ok, out) = stack::run_deployctl(&["history", f.as_str()]).await;
    assert!(!ok && out.contains("made-by-hand") && !out.contains("no deployments"), "{out}");

    // A command that is neither promote nor abort: refused, not taken for no command.
    put("command#exec-1", vec![("command", A::S("pause".into())), ("reason", A::S("x".into()))]).await.unwrap();
    let err = env.ledger.command(&f, "exec-1").await.unwrap_err();
    assert!(err.to_string().contains("\"pause\"") && err.to_string().contains("deployctl"), "{err}");
    assert_eq!(env.ledger.command(&f, "exec-2").await.unwrap(), None, "no item is no command");

    // A lock item without an owner: not a free lock.
    put("lock", vec![("expiresAt", A::N("1".into()))]).await.unwrap();
    let err = env.ledger.lock_state(&f).await.unwrap_err();
    assert!(err.to_string().contains("no `owner`") && err.to_string().contains("sk = lock"), "{err}");
    let (ok, out) = stack::run_deployctl(&["status", f.as_str()]).await;
    // (not "no deployment of ... is running; alias ...", then "pending: nothing queued")
    assert!(!ok && out.contains("no `owner`") && !out.contains("pending:"), "{out}");
}
