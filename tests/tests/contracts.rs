//! Contracts between the state machine, the template and the code: every substitution is provided,
//! every Task retries Lambda's service errors, every error name the ASL matches is one the code
//! produces, and names run through every layer (crate, SAM resource, substitution, state).

use std::collections::BTreeSet;

use deployer_core::DeployError;
use deployer_tests::fixture::workspace_root;
use serde_json::Value;

fn asl() -> Value {
    serde_json::from_str(&std::fs::read_to_string(workspace_root().join("statemachine/deploy.asl.json")).unwrap())
        .unwrap()
}

fn template() -> serde_yaml::Value {
    serde_yaml::from_str(&std::fs::read_to_string(workspace_root().join("template.yaml")).unwrap()).unwrap()
}

fn resources() -> serde_yaml::Mapping {
    template()["Resources"].as_mapping().unwrap().clone()
}

fn states() -> Vec<(String, Value)> {
    asl()["States"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[test]
fn every_substitution_in_the_asl_is_provided_by_the_template_and_none_is_unused() {
    let text = std::fs::read_to_string(workspace_root().join("statemachine/deploy.asl.json")).unwrap();
    let used: BTreeSet<String> =
        text.split("${").skip(1).map(|rest| rest.split('}').next().unwrap().to_string()).collect();
    let res = resources();
    let sm = res.values().find(|r| r["Type"] == "AWS::Serverless::StateMachine").expect("a state machine");
    let provided: BTreeSet<String> = sm["Properties"]["DefinitionSubstitutions"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert!(!used.is_empty());
    assert_eq!(used, provided, "ASL placeholders vs DefinitionSubstitutions");
    assert!(!text.contains("arn:aws:lambda"), "the ASL holds no ARNs");
}

#[test]
fn every_task_retries_lambda_service_errors_and_every_step_after_prepare_rolls_back() {
    let required = [
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
    ];
    let mut tasks = 0;
    for (name, state) in states() {
        if state["Type"] != "Task" {
            continue;
        }
        tasks += 1;
        let retried: BTreeSet<&str> = state["Retry"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} has no Retry"))
            .iter()
            .flat_map(|r| r["ErrorEquals"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()))
            .collect();
        for e in required {
            assert!(retried.contains(e), "{name} does not retry {e}");
        }
        for r in state["Retry"].as_array().unwrap() {
            assert!(r["BackoffRate"].as_f64().unwrap() > 1.0, "{name}: retries back off");
        }
        if name == "Finish" {
            // Finish has no Catch: past its retries the execution fails in Finish itself, so that a redrive
            // runs it again (a redrive reruns the state that failed; a Fail state after a Catch would only
            // fail again).
            assert!(state.get("Catch").is_none(), "Finish catches nothing");
            continue;
        }
        let catch = state["Catch"].as_array().unwrap_or_else(|| panic!("{name} has no Catch"));
        let all = catch.iter().find(|c| c["ErrorEquals"].as_array().unwrap().iter().any(|e| e == "States.ALL"));
        let next =
            all.unwrap_or_else(|| panic!("{name} does not catch States.ALL"))["Next"].as_str().unwrap().to_string();
        let expected = match name.as_str() {
            "Prepare" => "Rejected Outcome",
            "Roll Back" => "Rollback Failed Outcome",
            "Manual Rollback" => "Manual Rollback Failed Outcome",
            // Changes nothing of the function's: a refused command just fails.
            "Operator Command" => "Command Refused",
            _ => "Roll Back",
        };
        assert_eq!(next, expected, "{name}'s failures go to {expected}");
    }
    assert_eq!(tasks, 14);
}

#[test]
fn every_error_name_the_asl_matches_is_one_the_code_produces() {
    for (name, state) in states() {
        for clause in ["Retry", "Catch"] {
            for rule in state[clause].as_array().into_iter().flatten() {
                for e in rule["ErrorEquals"].as_array().unwrap() {
                    let e = e.as_str().unwrap();
                    let known = e.starts_with("States.") || e.starts_with("Lambda.") || DeployError::NAMES.contains(&e);
                    assert!(known, "{name}: {clause} matches {e}, which no step produces");
                }
            }
        }
    }
    // And the transient ones are exactly the ones retried in place.
    let retried: BTreeSet<&str> = DeployError::NAMES
        .iter()
        .copied()
        .filter(|n| ["UpdateInProgress", "PreconditionFailed", "Throttled", "AwsUnavailable"].contains(n))
        .collect();
    for (name, state) in states() {
        if state["Type"] == "Task" {
            let rule = state["Retry"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["ErrorEquals"].as_array().unwrap().iter().any(|e| e == "Throttled"))
                .unwrap_or_else(|| panic!("{name} does not retry Throttled"));
            let listed: BTreeSet<&str> =
                rule["ErrorEquals"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
            assert_eq!(listed, retried, "{name}");
            // A throttled invocation of the step (a fan-out queueing on its reserved concurrency) is retried
            // long enough for the queue to drain.
            let throttle = state["Retry"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["ErrorEquals"] == serde_json::json!(["Lambda.TooManyRequestsException"]))
                .unwrap_or_else(|| panic!("{name} has no retry of its own for Lambda.TooManyRequestsException"));
            assert!(throttle["MaxAttempts"].as_u64() >= Some(8), "{name}");
        }
    }
}

#[test]
fn names_run_through_crate_resource_substitution_and_state() {
    let res = resources();
    let layers = [
        ("prepare", "PrepareFunction", "PrepareFunctionArn", "Prepare"),
        ("update-code", "UpdateCodeFunction", "UpdateCodeFunctionArn", "Update Function"),
        ("check-ready", "CheckReadyFunction", "CheckReadyFunctionArn", "Check Ready"),
        ("smoke-test", "SmokeTestFunction", "SmokeTestFunctionArn", "Smoke Test"),
        ("publish-version", "PublishVersionFunction", "PublishVersionFunctionArn", "Publish Version"),
        ("provision", "ProvisionFunction", "ProvisionFunctionArn", "Provision"),
        ("acceptance", "AcceptanceFunction", "AcceptanceFunctionArn", "Acceptance Test"),
        ("shift-traffic", "ShiftTrafficFunction", "ShiftTrafficFunctionArn", "Shift Traffic"),
        ("check-health", "CheckHealthFunction", "CheckHealthFunctionArn", "Check Health"),
        ("shift-alias", "ShiftAliasFunction", "ShiftAliasFunctionArn", "Shift Alias"),
        ("rollback", "RollbackFunction", "RollbackFunctionArn", "Roll Back"),
        ("finish", "FinishFunction", "FinishFunctionArn", "Finish"),
    ];
    let all_states: Vec<(String, Value)> = states();
    for (krate, resource, substitution, state) in layers {
        assert!(workspace_root().join("functions").join(krate).join("Cargo.toml").exists(), "crate {krate}");
        let r = &res[resource];
        assert_eq!(r["Type"], "AWS::Serverless::Function", "{resource}");
        assert_eq!(r["Properties"]["CodeUri"].as_str(), Some(format!("target/lambda/{krate}/").as_str()));
        let s = all_states.iter().find(|(n, _)| n == state).unwrap_or_else(|| panic!("state {state}"));
        assert_eq!(s.1["Parameters"]["FunctionName"], format!("${{{substitution}}}"), "{state}");
    }
    // The trigger is not a state: EventBridge invokes it.
    assert!(workspace_root().join("functions/trigger/Cargo.toml").exists());
    assert_eq!(res["TriggerFunction"]["Properties"]["CodeUri"].as_str(), Some("target/lambda/trigger/"));
}

#[test]
fn every_function_logs_json_to_its_own_group_with_retention() {
    let res = resources();
    let globals = &template()["Globals"]["Function"]["LoggingConfig"];
    assert_eq!(globals["LogFormat"].as_str(), Some("JSON"));
    for (name, r) in &res {
        if r["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        let name = name.as_str().unwrap();
        let group = r["Properties"]["LoggingConfig"]["LogGroup"].clone();
        let group_name = match group {
            serde_yaml::Value::Tagged(t) => t.value.as_str().unwrap().to_string(),
            other => panic!("{name}: LogGroup should be !Ref <LogGroup>, is {other:?}"),
        };
        let lg = &res[group_name.as_str()];
        assert_eq!(lg["Type"], "AWS::Logs::LogGroup", "{name}");
        assert!(!lg["Properties"]["RetentionInDays"].is_null(), "{name}: retention");
    }
}

/// The text of a policy field: a plain string, or the string inside `!Sub`.
fn text(v: &serde_yaml::Value) -> Vec<String> {
    match v {
        serde_yaml::Value::String(s) => vec![s.clone()],
        serde_yaml::Value::Tagged(t) => text(&t.value),
        serde_yaml::Value::Sequence(items) => items.iter().flat_map(text).collect(),
        _ => vec![],
    }
}

#[test]
fn no_step_may_write_to_every_lambda_function_and_the_prefixes_are_required() {
    let params = &template()["Parameters"];
    for p in ["TargetFunctionPrefix", "TargetRolePrefix"] {
        assert!(params[p]["Default"].is_null(), "{p} must have no default (an empty prefix is every function)");
        assert_eq!(params[p]["MinLength"].as_u64(), Some(1), "{p}");
        assert!(params[p]["AllowedPattern"].as_str().is_some_and(|a| a.ends_with('+')), "{p}: one or more characters");
    }
    let mut lambda_writes = 0;
    for (name, r) in &resources() {
        let Some(policies) = r["Properties"]["Policies"].as_sequence() else { continue };
        for statement in policies.iter().filter_map(|p| p["Statement"].as_sequence()).flatten() {
            let actions = text(&statement["Action"]);
            let writes: Vec<_> = actions
                .iter()
                .filter(|a| a.starts_with("lambda:") && !a.starts_with("lambda:Get") && !a.starts_with("lambda:List"))
                .collect();
            if writes.is_empty() {
                continue;
            }
            lambda_writes += 1;
            for resource in text(&statement["Resource"]) {
                assert!(
                    resource.ends_with(":function:${TargetFunctionPrefix}*")
                        || resource.ends_with(":function:${TargetFunctionPrefix}*:*"),
                    "{name:?}: {writes:?} on {resource}: Lambda writes go only to the target functions"
                );
            }
        }
    }
    assert!(lambda_writes >= 5, "the steps' Lambda writes were found ({lambda_writes})");
}

#[test]
fn the_budgets_limits_are_the_state_machines_and_the_templates_and_every_task_has_a_timeout() {
    use deployer_core::budget::{SMOKE_STEP_TIMEOUT_SECONDS, STATE_MACHINE_TIMEOUT_SECONDS};
    let asl = asl();
    assert_eq!(asl["TimeoutSeconds"].as_u64(), Some(u64::from(STATE_MACHINE_TIMEOUT_SECONDS)));
    let res = resources();
    let timeout_of = |resource: &str| {
        res[resource]["Properties"]["Timeout"]
            .as_u64()
            .or_else(|| template()["Globals"]["Function"]["Timeout"].as_u64())
            .unwrap_or_else(|| panic!("{resource} has no Timeout"))
    };
    for resource in ["SmokeTestFunction", "RollbackFunction"] {
        assert_eq!(timeout_of(resource), u64::from(SMOKE_STEP_TIMEOUT_SECONDS), "{resource}");
    }
    // A Task waits at most a little longer than its function may run: nothing hangs an execution.
    for (name, state) in states().iter().filter(|(_, s)| s["Type"] == "Task") {
        let function = state["Parameters"]["FunctionName"].as_str().unwrap();
        let resource = function.trim_start_matches("${").trim_end_matches("Arn}");
        let task = state["TimeoutSeconds"].as_u64().unwrap_or_else(|| panic!("{name} has no TimeoutSeconds"));
        let lambda = timeout_of(resource);
        assert!(task > lambda && task <= lambda + 60, "{name}: TimeoutSeconds {task}, {resource} Timeout {lambda}");
    }
    // Every polling loop's Wait but the first look after an update takes its time from the step (back-off).
    for (name, state) in states().iter().filter(|(_, s)| s["Type"] == "Wait") {
        if name != "Wait For Update" {
            assert!(state["SecondsPath"].is_string(), "{name} waits a fixed time: {state}");
        }
    }
}

#[test]
fn the_tables_outlive_the_stack_and_operator_commands_expire() {
    let res = resources();
    for table in ["TargetsTable", "DeploymentsTable"] {
        assert_eq!(res[table]["DeletionPolicy"].as_str(), Some("Retain"), "{table}");
        assert_eq!(res[table]["UpdateReplacePolicy"].as_str(), Some("Retain"), "{table}");
    }
    // The ledger writes `ttl` on operator commands (deployer-aws ledger.rs): DynamoDB expires them only if
    // the table's TTL is on that attribute.
    let ttl = &res["DeploymentsTable"]["Properties"]["TimeToLiveSpecification"];
    assert_eq!((ttl["AttributeName"].as_str(), ttl["Enabled"].as_bool()), (Some("ttl"), Some(true)));
    let ledger = std::fs::read_to_string(workspace_root().join("functions/deployer-aws/src/ledger.rs")).unwrap();
    assert!(ledger.contains("item.insert(\"ttl\".into()"), "the ledger no longer writes `ttl`");
}

#[test]
fn every_choice_that_can_start_a_shift_knows_every_reason_to_move_all_at_once() {
    // "Gradual?" and the inline copies of it (which save a transition) must agree.
    let reasons = |s: &Value| -> BTreeSet<String> {
        s["Choices"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["Next"] == "Shift Alias")
            .map(|c| c["Variable"].as_str().unwrap().to_string())
            .collect()
    };
    let all = states();
    let gradual = &all.iter().find(|(n, _)| n == "Gradual?").unwrap().1;
    let want = reasons(gradual);
    assert!(want.contains("$.plan.value.allAtOnceWhy"), "{want:?}");
    let starters: Vec<&(String, Value)> =
        all.iter().filter(|(_, s)| s["Type"] == "Choice" && s["Default"] == "Start Shift").collect();
    assert!(starters.len() >= 3, "{:?}", starters.iter().map(|(n, _)| n).collect::<Vec<_>>());
    for (name, state) in starters {
        assert_eq!(reasons(state), want, "{name}");
    }
}
