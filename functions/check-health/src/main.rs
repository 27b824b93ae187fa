//! Task state "Check Health".

use deployer_aws::{step, CloudWatchTelemetry, DynamoLedger};
use deployer_core::steps;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = step::Config::from_env(&["DEPLOYMENTS_TABLE"])?;
    let sdk = step::sdk_config().await;
    let ledger = &DynamoLedger::from_sdk(&sdk, config.get("DEPLOYMENTS_TABLE"));
    let telemetry = &CloudWatchTelemetry::from_sdk(&sdk);
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<Value>| async move {
        let input = steps::input("Check Health", ev.payload)?;
        Ok::<_, step::StepError>(steps::check_health(ledger, telemetry, input, steps::now_ms() as i64).await?)
    }))
    .await
}
