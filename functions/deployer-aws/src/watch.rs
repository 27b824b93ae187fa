//! Reading executions back, for operators: where a deployment is, state by state.

use aws_config::SdkConfig;
use aws_sdk_sfn::types::HistoryEventType;

use crate::errors::{self, Call, SFN};
use deployer_core::DeployError;

#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionView {
    pub status: String,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub output: Option<String>,
    pub input: Option<String>,
}

/// One line of an execution's history: a state entered or left, or the execution's end.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub id: i64,
    pub at_ms: i64,
    pub kind: String,
    pub state: Option<String>,
    pub detail: Option<String>,
    /// A state's output as it left it (state exits only).
    pub output: Option<String>,
}

pub struct ExecutionReader {
    client: aws_sdk_sfn::Client,
}

impl ExecutionReader {
    pub fn new(client: aws_sdk_sfn::Client) -> Self {
        ExecutionReader { client }
    }

    pub fn from_sdk(sdk: &SdkConfig) -> Self {
        ExecutionReader::new(aws_sdk_sfn::Client::new(sdk))
    }

    /// None while the execution does not exist (yet).
    pub async fn describe(&self, arn: &str) -> Result<Option<ExecutionView>, DeployError> {
        match self.client.describe_execution().execution_arn(arn).send().await {
            Ok(d) => Ok(Some(ExecutionView {
                status: d.status().as_str().to_string(),
                error: d.error().map(str::to_string),
                cause: d.cause().map(str::to_string),
                output: d.output().map(str::to_string),
                input: d.input().map(str::to_string),
            })),
            Err(e) if errors::is_not_found(&e) => Ok(None),
            Err(e) => {
                Err(errors::to_deploy_error(e, Call { service: SFN, operation: "DescribeExecution", resource: arn }))
            }
        }
    }

    /// The events after `after_id`, oldest first.
    pub async fn history(&self, arn: &str, after_id: i64) -> Result<Vec<Step>, DeployError> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .get_execution_history()
                .execution_arn(arn)
                .set_next_token(token)
                .max_results(500)
                .send()
                .await
                .map_err(|e| {
                    errors::to_deploy_error(e, Call { service: SFN, operation: "GetExecutionHistory", resource: arn })
                })?;
            for e in page.events() {
                if e.id() <= after_id {
                    continue;
                }
                let (state, detail) = match e.r#type() {
                    HistoryEventType::TaskStateEntered
                    | HistoryEventType::ChoiceStateEntered
                    | HistoryEventType::WaitStateEntered
                    | HistoryEventType::PassStateEntered
                    | HistoryEventType::SucceedStateEntered
                    | HistoryEventType::FailStateEntered => {
                        (e.state_entered_event_details().map(|d| d.name().to_string()), None)
                    }
                    HistoryEventType::TaskStateExited
                    | HistoryEventType::ChoiceStateExited
                    | HistoryEventType::WaitStateExited
                    | HistoryEventType::PassStateExited
                    | HistoryEventType::SucceedStateExited => {
                        (e.state_exited_event_details().map(|d| d.name().to_string()), None)
                    }
                    HistoryEventType::TaskFailed => (
                        None,
                        e.task_failed_event_details()
                            .map(|d| format!("{}: {}", d.error().unwrap_or(""), d.cause().unwrap_or(""))),
                    ),
                    HistoryEventType::LambdaFunctionFailed => (
                        None,
                        e.lambda_function_failed_event_details()
                            .map(|d| format!("{}: {}", d.error().unwrap_or(""), d.cause().unwrap_or(""))),
                    ),
                    HistoryEventType::ExecutionFailed => (
                        None,
                        e.execution_failed_event_details()
                            .map(|d| format!("{}: {}", d.error().unwrap_or(""), d.cause().unwrap_or(""))),
                    ),
                    _ => (None, None),
                };
                let output = e.state_exited_event_details().and_then(|d| d.output()).map(str::to_string);
                out.push(Step {
                    output,
                    id: e.id(),
                    at_ms: e.timestamp().to_millis().unwrap_or(0),
                    kind: e.r#type().as_str().to_string(),
                    state,
                    detail,
                });
            }
            token = page.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        Ok(out)
    }
}

impl ExecutionReader {
    /// The ARN of the state machine with this name, if there is one.
    pub async fn state_machine_arn(&self, name: &str) -> Result<Option<String>, DeployError> {
        let mut token = None;
        loop {
            let page = self.client.list_state_machines().set_next_token(token).send().await.map_err(|e| {
                errors::to_deploy_error(e, Call { service: SFN, operation: "ListStateMachines", resource: name })
            })?;
            if let Some(sm) = page.state_machines().iter().find(|s| s.name() == name) {
                return Ok(Some(sm.state_machine_arn().to_string()));
            }
            token = page.next_token().map(str::to_string);
            if token.is_none() {
                return Ok(None);
            }
        }
    }
}
