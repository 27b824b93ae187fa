//! Task state "Finish": every path of the state machine ends here (record, release the lock). Also the
//! target of Step Functions' status-change events, for executions that stop before they get here, and
//! of an operator's promote or abort sent as an execution's input. As an execution lets go of the
//! function's lock, it starts the deployment of the image queued behind it. For an execution stopped mid-shift, it
//! also puts all of the alias's traffic back on the version being replaced.

use deployer_aws::{step, DynamoLedger, DynamoTargetStore, EcrRegistry, LambdaControlPlane, SfnExecutions};
use deployer_core::steps;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = step::Config::from_env(&["TARGETS_TABLE", "DEPLOYMENTS_TABLE", "STATE_MACHINE_ARN"])?;
    let sdk = step::sdk_config().await;
    let ledger = &DynamoLedger::from_sdk(&sdk, config.get("DEPLOYMENTS_TABLE"));
    let store = &DynamoTargetStore::from_sdk(&sdk, config.get("TARGETS_TABLE"));
    let lambda = &LambdaControlPlane::from_sdk(&sdk);
    let registry = &EcrRegistry::from_sdk(&sdk);
    // The lock goes straight to the deployment of the image queued behind it.
    let executions = &SfnExecutions::from_sdk(&sdk, config.get("STATE_MACHINE_ARN"));
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<Value>| async move {
        let now = steps::now_ms() as i64;
        if ev.payload.get("detail-type").is_some() {
            let ended = steps::execution_ended(ledger, store, lambda, executions, &ev.payload, now).await?;
            return Ok::<_, step::StepError>(serde_json::to_value(ended).unwrap_or_default());
        }
        if let Some(request) = ev.payload.get("operatorCommand") {
            let sent = steps::operator_command(ledger, request.clone()).await?;
            return Ok(serde_json::to_value(sent).unwrap_or_default());
        }
        let input = steps::input("Finish", ev.payload)?;
        let finished = steps::finish(ledger, store, registry, executions, input, now).await?;
        Ok(serde_json::to_value(finished).unwrap_or_default())
    }))
    .await
}
