//! Task state "Shift Traffic".

use deployer_aws::{step, DynamoLedger, LambdaControlPlane};
use deployer_core::steps;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = step::Config::from_env(&["DEPLOYMENTS_TABLE"])?;
    let sdk = step::sdk_config().await;
    let lambda = &LambdaControlPlane::from_sdk(&sdk);
    let ledger = &DynamoLedger::from_sdk(&sdk, config.get("DEPLOYMENTS_TABLE"));
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<Value>| async move {
        let input = steps::input("Shift Traffic", ev.payload)?;
        Ok::<_, step::StepError>(steps::shift_traffic(lambda, ledger, input, steps::now_ms() as i64).await?)
    }))
    .await
}
