//! The trigger: EventBridge delivers ECR's push event; one execution starts per target that deploys the
//! repository and tag, named after the target and digest so a duplicate event starts nothing.

use deployer_aws::{step, DynamoTargetStore, SfnExecutions};
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = step::Config::from_env(&["TARGETS_TABLE", "STATE_MACHINE_ARN"])?;
    let sdk = step::sdk_config().await;
    let store = &DynamoTargetStore::from_sdk(&sdk, config.get("TARGETS_TABLE"));
    let executions = &SfnExecutions::from_sdk(&sdk, config.get("STATE_MACHINE_ARN"));
    let region = &config.region;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<Value>| async move {
        let account = step::account_of(&ev.context.invoked_function_arn);
        let report = deployer_core::steps::trigger(store, executions, &ev.payload, &account, region).await?;
        Ok::<_, step::StepError>(report)
    }))
    .await
}
