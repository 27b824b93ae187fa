//! Task states "Roll Back" (after a failure) and "Manual Rollback" (an operator's request).

use deployer_aws::{step, DynamoLedger, DynamoTargetStore, EcrRegistry, LambdaControlPlane};
use deployer_core::steps;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = step::Config::from_env(&["TARGETS_TABLE", "DEPLOYMENTS_TABLE"])?;
    let sdk = step::sdk_config().await;
    let lambda = &LambdaControlPlane::from_sdk(&sdk);
    let store = &DynamoTargetStore::from_sdk(&sdk, config.get("TARGETS_TABLE"));
    let ledger = &DynamoLedger::from_sdk(&sdk, config.get("DEPLOYMENTS_TABLE"));
    let registry = &EcrRegistry::from_sdk(&sdk);
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<Value>| async move {
        let input = steps::input("Roll Back", ev.payload)?;
        let done = steps::rollback(lambda, store, registry, ledger, input, steps::now_ms() as i64).await?;
        Ok::<_, step::StepError>(done)
    }))
    .await
}
