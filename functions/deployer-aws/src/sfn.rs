//! [`Executions`] over a Step Functions state machine.

use deployer_core::ports::{Executions, Result};

use deployer_core::model::StartOutcome;

use crate::errors::{to_deploy_error, Call, SFN};

/// Starts executions of the deployment state machine.
#[derive(Debug, Clone)]
pub struct SfnExecutions {
    client: aws_sdk_sfn::Client,
    state_machine_arn: String,
}

impl SfnExecutions {
    pub fn new(client: aws_sdk_sfn::Client, state_machine_arn: impl Into<String>) -> Self {
        SfnExecutions { client, state_machine_arn: state_machine_arn.into() }
    }
}

impl Executions for SfnExecutions {
    async fn start(&self, name: &str, input: &str) -> Result<StartOutcome> {
        let result = self
            .client
            .start_execution()
            .state_machine_arn(&self.state_machine_arn)
            .name(name)
            .input(input)
            .send()
            .await;
        match result {
            Ok(out) => Ok(StartOutcome::Started { execution_arn: out.execution_arn().to_string() }),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_execution_already_exists()) => {
                Ok(StartOutcome::AlreadyStarted)
            }
            Err(e) => Err(to_deploy_error(e, Call { service: SFN, operation: "StartExecution", resource: name })),
        }
    }
}
