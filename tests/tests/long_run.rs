//! A deployment that lasts hours, run in minutes on local AWS with a compressed clock (scripts/localaws/clock.py):
//! a 3.5-hour acceptance build, then a linear shift of nine 480-second steps, with production traffic
//! through the alias all along. It proves, on the clock every process shares, that the deployment lock is
//! held by the execution from before the first update to the end, that the history stays under its cap and
//! that the execution ends inside the state machine's timeout.
//!
//! These tests need local AWS started with LOCAL_AWS_CLOCK_SCALE > 1 and are run by
//! `tests/scripts/long_run.sh` (a step of `scripts/test.sh`), which starts one on a spare port:
//!
//!     bash tests/scripts/long_run.sh

use std::time::{Duration, Instant};

use deployer_aws::{DynamoLedger, DynamoTargetStore};
use deployer_core::budget::{Budget, HISTORY_LIMIT, STATE_MACHINE_TIMEOUT_SECONDS};
use deployer_core::ids::FunctionName;
use deployer_core::model::Outcome;
use deployer_core::ports::{DeploymentLedger, TargetStore};
use deployer_core::spec;
use deployer_tests::stack::{self, STACK};
use deployer_tests::traffic::Traffic;
use deployer_tests::{fixture, sdk, unique};
use serde_json::json;

const REPO: &str = "e2e-long-run";
/// How long the acceptance build runs, on local AWS's clock.
const BUILD_SECONDS: u64 = 12_600;

async fn scale() -> f64 {
    let scale = sdk::health().await["clockScale"].as_f64().expect("clockScale");
    assert!(
        scale >= 10.0,
        "local AWS runs with clock scale {scale}: these tests need a compressed clock (bash tests/scripts/long_run.sh)"
    );
    scale
}

async fn local_now_ms() -> i64 {
    sdk::health().await["nowMs"].as_i64().expect("nowMs")
}

#[tokio::test]
#[ignore = "needs local AWS with a compressed clock: bash tests/scripts/long_run.sh"]
async fn a_wait_state_waits_on_the_compressed_clock_and_the_history_says_so() {
    let scale = scale().await;
    let cfg = sdk::config().await;
    let sfn = aws_sdk_sfn::Client::new(&cfg);
    let role = sdk::role(&aws_sdk_iam::Client::new(&cfg), "e2e-long-run-sfn").await;
    let definition = json!({"StartAt": "Hour", "TimeoutSeconds": 7200,
        "States": {"Hour": {"Type": "Wait", "Seconds": 3600, "End": true}}});
    let sm = sfn
        .create_state_machine()
        .name(unique("e2e-hour"))
        .definition(definition.to_string())
        .role_arn(role)
        .send()
        .await
        .unwrap();
    let real = Instant::now();
    let exec = sfn.start_execution().state_machine_arn(sm.state_machine_arn()).send().await.unwrap();
    let done = stack::finished(&sfn, exec.execution_arn(), Duration::from_secs(600)).await;
    assert_eq!(done.status, "SUCCEEDED", "{done:?}");
    let d = sfn.describe_execution().execution_arn(exec.execution_arn()).send().await.unwrap();
    let took = d.stop_date().unwrap().secs() - d.start_date().secs();
    assert!((3600..3600 + 600).contains(&took), "the execution took {took} s on local AWS's clock");
    // An hour of Wait in a small fraction of an hour: 3600 s / scale, with generous room for a loaded machine.
    assert!(real.elapsed() < Duration::from_secs(600), "an hour's Wait took {:?} of real time", real.elapsed());

    // A timeout is on the same clock: a 2-hour Wait under a 1-hour TimeoutSeconds times out after an hour.
    let definition = json!({"StartAt": "Long", "TimeoutSeconds": 3600,
        "States": {"Long": {"Type": "Wait", "Seconds": 7200, "End": true}}});
    let sm = sfn
        .create_state_machine()
        .name(unique("e2e-timeout"))
        .definition(definition.to_string())
        .role_arn(sdk::role(&aws_sdk_iam::Client::new(&cfg), "e2e-long-run-sfn").await)
        .send()
        .await
        .unwrap();
    let before = local_now_ms().await;
    let exec = sfn.start_execution().state_machine_arn(sm.state_machine_arn()).send().await.unwrap();
    let done = stack::finished(&sfn, exec.execution_arn(), Duration::from_secs(600)).await;
    assert_eq!(done.status, "TIMED_OUT", "{done:?} (scale {scale})");
    let waited_s = (local_now_ms().await - before) / 1000;
    assert!((3600..7200).contains(&waited_s), "timed out after {waited_s} s on local AWS's clock, not 3600");
}

async fn acceptance_project(codebuild: &aws_sdk_codebuild::Client, role: &str) -> String {
    use aws_sdk_codebuild::types::{
        ArtifactsType, ComputeType, EnvironmentType, ProjectArtifacts, ProjectEnvironment, ProjectSource, SourceType,
    };
    let project = unique("e2e-long-suite");
    // A suite that runs for hours of the (compressed) clock, then checks the candidate once.
    let buildspec = format!(
        r#"version: 0.2
phases:
  build:
    commands:
      - start=$(date +%s); while [ $(( $(date +%s) - start )) -lt {BUILD_SECONDS} ]; do sleep 0.05; done
      - echo "ran $(( $(date +%s) - start )) s against $DEPLOY_FUNCTION:$DEPLOY_QUALIFIER"
      - aws lambda invoke --function-name "$DEPLOY_FUNCTION" --qualifier "$DEPLOY_QUALIFIER" --payload '{{"traffic":true,"echo":"it"}}' out.json --query FunctionError --output text > error.txt
      - test "$(cat error.txt)" = None
"#
    );
    codebuild
        .create_project()
        .name(&project)
        .source(ProjectSource::builder().r#type(SourceType::NoSource).buildspec(buildspec).build().unwrap())
        .artifacts(ProjectArtifacts::builder().r#type(ArtifactsType::NoArtifacts).build().unwrap())
        .environment(
            ProjectEnvironment::builder()
                .r#type(EnvironmentType::LinuxContainer)
                .image("aws/codebuild/standard:7.0")
                .compute_type(ComputeType::BuildGeneral1Small)
                .build()
                .unwrap(),
        )
        .timeout_in_minutes(300)
        .service_role(role)
        .send()
        .await
        .unwrap();
    project
}

#[tokio::test]
#[ignore = "needs local AWS with a compressed clock: bash tests/scripts/long_run.sh"]
async fn a_deployment_of_hours_holds_its_lock_throughout_and_ends_inside_its_budgets() {
    let scale = scale().await;
    let cfg = sdk::config().await;
    let stack = tokio::task::spawn_blocking(stack::ensure).await.unwrap();
    let _ = aws_sdk_ecr::Client::new(&cfg).create_repository().repository_name(REPO).send().await;
    let lambda = aws_sdk_lambda::Client::new(&cfg);
    let sfn = aws_sdk_sfn::Client::new(&cfg);
    let store = DynamoTargetStore::from_sdk(&cfg, &stack.targets_table);
    let ledger = DynamoLedger::from_sdk(&cfg, &format!("{STACK}-deployments"));
    let role = sdk::role(&aws_sdk_iam::Client::new(&cfg), "e2e-service-role").await;
    let project = acceptance_project(&aws_sdk_codebuild::Client::new(&cfg), &role).await;

    let function = unique("e2e-long");
    let doc = json!({
        "function": function,
        "repository": REPO,
        "tagPattern": format!("^{function}-v[0-9]+$"),
        "configuration": {"role": role, "memoryMb": 256, "timeoutSeconds": 5},
        "smokeTest": {"latencyBudgetMs": 3000, "cases": [
            {"name": "echo", "payload": {"echo": "smoke"}, "expect": {"echo": "smoke"}}]},
        "acceptance": {"project": project, "timeoutSeconds": 13_600},
        "strategy": {"type": "linear", "stepPercent": 10, "intervalSeconds": 480},
        // metricLagSeconds is left to its default (the function's timeout + 60 s) against local AWS's
        // default ingest lag of 60 s.
        "gates": {"minInvocations": 5, "checkIntervalSeconds": 60, "maxWaitSeconds": 60, "maxErrorRate": 0.05,
                  "p99Margin": 0.5, "p99ToleranceMs": 500},
        // An image function's update is real work (fetching and unpacking the image), which the compressed
        // clock counts 120 times over: minutes, as an image's first deployment can take on AWS.
        "readyTimeoutSeconds": 600
    });
    let t = spec::parse(&doc.to_string()).expect("a spec that fits the budgets");
    let budget = Budget::of(&t);
    assert!(
        budget.seconds() >= 21_000 && budget.seconds() <= STATE_MACHINE_TIMEOUT_SECONDS,
        "the spec should use (nearly) the whole 6-hour budget: {}",
        budget.breakdown(false)
    );
    // v1: the first deployment (all at once), before the acceptance stage is added.
    let mut first_spec = t.clone();
    first_spec.acceptance = None;
    store.put(&first_spec).await.unwrap();
    let first = push(&t.function, "v1").await;
    let done = stack::finished(&sfn, &stack.execution_arn(&first), Duration::from_secs(1800)).await;
    assert_eq!(done.status, "SUCCEEDED", "{done:?}");
    let v1 = alias(&lambda, &t.function).await.0;
    store.put(&t).await.unwrap();

    let traffic = Traffic::start(lambda.clone(), t.function.to_string());
    let pushed_at = local_now_ms().await;
    let name = push(&t.function, "v2").await;
    let arn = stack.execution_arn(&name);
    // Watch the lock while the deployment runs: every look finds it held by this execution, expiring later.
    let mut looks = Vec::new();
    let real = Instant::now();
    // A push lands during the acceptance stage (v3): it waits in the queue. Once v2's shift has begun, the
    // target's spec goes all-at-once without acceptance (the running v2 keeps the spec it started with), so
    // that v3's own deployment, after v2, is short.
    let (mut v3_name, mut fast) = (None, false);
    loop {
        let d = sfn.describe_execution().execution_arn(&arn).send().await;
        if let Ok(d) = &d {
            if d.status().as_str() != "RUNNING" {
                break;
            }
        }
        let now = local_now_ms().await;
        let holder = ledger.holder(&t.function).await.unwrap();
        let weighted = alias(&lambda, &t.function).await.1.is_some();
        let accepting = holder.as_ref().is_some_and(|(o, _)| *o == name) && !weighted;
        looks.push((now, holder, weighted));
        if v3_name.is_none() && accepting && looks.len() >= 5 {
            v3_name = Some(push(&t.function, "v3").await);
        }
        if weighted && !fast {
            let mut quick = t.clone();
            (quick.acceptance, quick.strategy) = (None, spec::Strategy::AllAtOnce);
            store.put(&quick).await.unwrap();
            fast = true;
        }
        assert!(real.elapsed() < Duration::from_secs(1800), "the deployment did not end in 30 minutes");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let seen = traffic.stop().await;
    let done = stack::finished(&sfn, &arn, Duration::from_secs(60)).await;
    assert_eq!(done.status, "SUCCEEDED", "{done:?}");

    let d = sfn.describe_execution().execution_arn(&arn).send().await.unwrap();
    let took = d.stop_date().unwrap().secs() - d.start_date().secs();
    assert!(
        took >= BUILD_SECONDS as i64 + 9 * 480 && took < i64::from(STATE_MACHINE_TIMEOUT_SECONDS),
        "the deployment took {took} s on local AWS's clock"
    );
    // The lock: held by this execution at every look, its expiry ahead of the clock.
    let owner = |h: &Option<(String, i64)>| h.as_ref().map(|(o, _)| o.clone());
    let held: Vec<_> = looks.iter().filter(|(_, h, _)| owner(h).is_some_and(|o| o == name)).collect();
    let first_held = looks.iter().position(|(_, h, _)| owner(h).is_some_and(|o| o == name));
    let from = first_held.expect("the lock was seen held by the deployment");
    // ... until v2's Finish handed it to v3's deployment (the last looks, as v2 ended).
    let handed =
        |h: &Option<(String, i64)>| owner(h).is_some_and(|o| v3_name.as_deref().is_some_and(|v| o.starts_with(v)));
    let until = looks.iter().position(|(_, h, _)| handed(h)).unwrap_or(looks.len());
    assert!(looks[until..].iter().all(|(_, h, _)| handed(h)), "the lock went back after the hand-over: {looks:?}");
    for (now, holder, _) in &looks[from..until] {
        let (o, expires) = holder.clone().unwrap_or_else(|| panic!("the lock was free at {now} mid-deployment"));
        assert_eq!(o, name, "the lock was held by {o} at {now}, not by {name}");
        assert!(expires > *now, "the lock had expired ({expires} <= {now}) while {name} ran");
    }
    // Prepare took it on the clock local AWS keeps (the step's own clock is the compressed one too): at a
    // time between the push and the first look that saw it.
    let acquired = looks[from].1.as_ref().unwrap().1 - budget.lock_ttl_ms();
    assert!(
        (pushed_at..=looks[from].0).contains(&acquired),
        "the lock was taken at {acquired}, not between the push at {pushed_at} and {}: the step's clock is not \
         local AWS's",
        looks[from].0
    );
    let during_acceptance =
        held.iter().filter(|(now, _, w)| !w && (*now - held[0].0) / 1000 < BUILD_SECONDS as i64 - 600).count();
    let during_shift = held.iter().filter(|(_, _, w)| *w).count();
    assert!(
        during_acceptance >= 5 && during_shift >= 5,
        "looks: {during_acceptance} in acceptance, {during_shift} in the shift"
    );

    // The history: under the cap, every step shifted.
    let (events, shifts) = history(&sfn, &arn).await;
    assert!(events < HISTORY_LIMIT as usize, "{events} history events");
    assert_eq!(shifts, 9, "nine steps of 10%");
    let records = ledger.history(&t.function, 20).await.unwrap();
    let r2 = records.iter().find(|r| r.execution == name).expect("v2's record");
    assert_eq!(r2.outcome, Outcome::Deployed, "{r2:?}");
    let v2 = r2.version_after.clone().expect("the version v2 went live as");
    assert_ne!(v2, v1);
    assert!(seen.get(&v2).is_some_and(|(n, _)| *n > 0) && seen.values().all(|(_, e)| *e == 0), "{seen:?}");

    // v3, pushed during the acceptance stage, waited in the queue and deployed after v2, straight away.
    let v3_name = v3_name.expect("v3 was pushed during the acceptance stage");
    let queued = stack::finished(&sfn, &stack.execution_arn(&v3_name), Duration::from_secs(60)).await;
    assert_eq!(queued.output["queued"]["behind"], name.as_str(), "{queued:?}");
    let next = format!("{v3_name}_2");
    let done3 = stack::finished(&sfn, &stack.execution_arn(&next), Duration::from_secs(900)).await;
    assert_eq!(done3.status, "SUCCEEDED", "{done3:?}");
    let started3 = sfn.describe_execution().execution_arn(stack.execution_arn(&next)).send().await.unwrap();
    // ... started by v2's Finish (which hands the lock over), not before v2 got there.
    let finish_entered = finish_entered_at(&sfn, &arn).await;
    assert!(
        started3.start_date().to_millis().unwrap() >= finish_entered,
        "v3's deployment started at {:?}, before v2 reached Finish at {finish_entered}",
        started3.start_date()
    );
    let (v3, extra) = alias(&lambda, &t.function).await;
    assert_eq!(extra, None);
    assert!(v3.parse::<u64>().unwrap() > v2.parse::<u64>().unwrap(), "v3 ({v3}) is live, after v2 ({v2})");
    let r3 = ledger.history(&t.function, 1).await.unwrap();
    assert_eq!((r3[0].execution.as_str(), r3[0].outcome), (next.as_str(), Outcome::Deployed));
    assert_eq!(ledger.holder(&t.function).await.unwrap(), None, "released at the end");
    deployer_tests::report(
        "long_run",
        &format!(
            "a {:.1}-hour deployment (budget {} s) ran in {:.0} s at clock scale {scale}: {events} history events, \
             the lock seen held {} times",
            took as f64 / 3600.0,
            budget.seconds(),
            real.elapsed().as_secs_f64(),
            held.len()
        ),
    );
}

/// Push `<function>-<label>`; the name of the execution its push starts.
async fn push(function: &FunctionName, label: &str) -> String {
    let tag = format!("{function}-{label}");
    let variant = tag.clone();
    let digest = tokio::task::spawn_blocking(move || fixture::push_image_with(REPO, &tag, &[("VARIANT", &variant)]))
        .await
        .unwrap();
    format!("deploy-{function}-{}", &digest["sha256:".len().."sha256:".len() + 12])
}

async fn alias(lambda: &aws_sdk_lambda::Client, function: &FunctionName) -> (String, Option<(String, f64)>) {
    let a = lambda.get_alias().function_name(function.as_str()).name("live").send().await.unwrap();
    let extra = a
        .routing_config()
        .and_then(|r| r.additional_version_weights())
        .and_then(|w| w.iter().next().map(|(v, w)| (v.clone(), *w)));
    (a.function_version().unwrap().to_string(), extra)
}

/// When (ms, on local AWS's clock) the execution entered its Finish state.
async fn finish_entered_at(sfn: &aws_sdk_sfn::Client, arn: &str) -> i64 {
    let mut token = None;
    loop {
        let page = sfn.get_execution_history().execution_arn(arn).set_next_token(token).send().await.unwrap();
        let entered = page
            .events()
            .iter()
            .find(|e| e.state_entered_event_details().is_some_and(|d| d.name() == "Finish"))
            .map(|e| e.timestamp().to_millis().unwrap());
        if let Some(at) = entered {
            return at;
        }
        token = page.next_token().map(str::to_string);
        assert!(token.is_some(), "{arn} never entered Finish");
    }
}

/// (how many events the execution's history has, how many times it entered Shift Traffic).
async fn history(sfn: &aws_sdk_sfn::Client, arn: &str) -> (usize, usize) {
    let (mut events, mut shifts, mut token) = (0, 0, None);
    loop {
        let page = sfn.get_execution_history().execution_arn(arn).set_next_token(token).send().await.unwrap();
        events += page.events().len();
        shifts += page
            .events()
            .iter()
            .filter(|e| e.state_entered_event_details().is_some_and(|d| d.name() == "Shift Traffic"))
            .count();
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            return (events, shifts);
        }
    }
}
