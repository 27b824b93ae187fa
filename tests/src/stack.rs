//! The deployer stack on local AWS, deployed once per test run from template.yaml by
//! `scripts/deploy-local.sh` (the same path as the demo).

use std::collections::BTreeMap;
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

/// Deploy (or update) the stack once for this test binary.
pub fn ensure() -> &'static Stack {
    static STACK_ONCE: OnceLock<Stack> = OnceLock::new();
    STACK_ONCE.get_or_init(|| {
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
        Stack {
            state_machine_arn: outputs["StateMachineArn"].clone(),
            targets_table: outputs["TargetsTableName"].clone(),
        }
    })
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
