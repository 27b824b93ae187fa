//! Task state "Prepare".

use deployer_aws::{step, DynamoTargetStore, EcrRegistry, LambdaControlPlane};
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = step::Config::from_env(&["TARGETS_TABLE"])?;
    let sdk = step::sdk_config().await;
    let store = &DynamoTargetStore::from_sdk(&sdk, config.get("TARGETS_TABLE"));
    let registry = &EcrRegistry::from_sdk(&sdk);
    let lambda = &LambdaControlPlane::from_sdk(&sdk);
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<Value>| async move {
        Ok::<_, step::StepError>(deployer_core::steps::prepare(store, registry, lambda, ev.payload).await?)
    }))
    .await
}
