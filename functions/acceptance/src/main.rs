//! Task state "Acceptance Test".

use deployer_aws::{step, CodeBuildProjects};
use deployer_core::steps;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let sdk = step::sdk_config().await;
    let builds = &CodeBuildProjects::from_sdk(&sdk);
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<Value>| async move {
        let input = steps::input("Acceptance Test", ev.payload)?;
        Ok::<_, step::StepError>(steps::acceptance(builds, input, steps::now_ms() as i64).await?)
    }))
    .await
}
