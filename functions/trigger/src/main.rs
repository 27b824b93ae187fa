//! The trigger: EventBridge delivers ECR's push event; one execution starts per target that deploys the
//! repository and tag, named after the target and digest so a duplicate event starts nothing. A
//! scheduled event (or `{"reconcile": {"targets": [...]}}`) deploys allowed images whose push event was
//! lost.

use deployer_aws::{step, DynamoLedger, DynamoTargetStore, EcrRegistry, LambdaControlPlane, SfnExecutions};
use deployer_core::steps;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let mut vars = vec!["TARGETS_TABLE", "DEPLOYMENTS_TABLE", "STATE_MACHINE_ARN"];
    vars.extend(step::POLICY_VARS);
    let config = step::Config::from_env(&vars)?;
    let sdk = step::sdk_config().await;
    let store = &DynamoTargetStore::from_sdk(&sdk, config.get("TARGETS_TABLE"));
    let executions = &SfnExecutions::from_sdk(&sdk, config.get("STATE_MACHINE_ARN"));
    let ledger = &DynamoLedger::from_sdk(&sdk, config.get("DEPLOYMENTS_TABLE"));
    let registry = &EcrRegistry::from_sdk(&sdk);
    let lambda = &LambdaControlPlane::from_sdk(&sdk);
    let region = &config.region;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<Value>| async move {
        let policy = step::policy(&ev.context.invoked_function_arn)?;
        let report = if steps::is_reconcile(&ev.payload) {
            steps::reconcile(store, registry, lambda, executions, ledger, &policy, &ev.payload).await?
        } else {
            steps::trigger(store, executions, &policy, &ev.payload, region).await?
        };
        Ok::<_, step::StepError>(report)
    }))
    .await
}
