//! Task state "Prepare".

use deployer_aws::{step, DynamoLedger, DynamoTargetStore, EcrRegistry, LambdaControlPlane};
use deployer_core::steps;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let mut vars = vec!["TARGETS_TABLE", "DEPLOYMENTS_TABLE"];
    vars.extend(step::POLICY_VARS);
    let config = step::Config::from_env(&vars)?;
    let sdk = step::sdk_config().await;
    let store = &DynamoTargetStore::from_sdk(&sdk, config.get("TARGETS_TABLE"));
    let ledger = &DynamoLedger::from_sdk(&sdk, config.get("DEPLOYMENTS_TABLE"));
    let registry = &EcrRegistry::from_sdk(&sdk);
    let lambda = &LambdaControlPlane::from_sdk(&sdk);
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<Value>| async move {
        let policy = step::policy(&ev.context.invoked_function_arn)?;
        let input = steps::input("Prepare", ev.payload)?;
        let plan = steps::prepare(store, &policy, registry, lambda, ledger, input, steps::now_ms() as i64).await?;
        Ok::<_, step::StepError>(plan)
    }))
    .await
}
