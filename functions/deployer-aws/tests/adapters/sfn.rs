use aws_sdk_sfn::operation::start_execution::{StartExecutionError, StartExecutionOutput};
use aws_sdk_sfn::primitives::DateTime;
use aws_sdk_sfn::types::error::{ExecutionAlreadyExists, ExecutionLimitExceeded, StateMachineDoesNotExist};
use aws_sdk_sfn::Client;
use aws_smithy_mocks::mock;
use deployer_aws::SfnExecutions;
use deployer_core::model::StartOutcome;
use deployer_core::ports::Executions;
use deployer_core::DeployError;

use crate::meta;

const STATE_MACHINE: &str = "arn:aws:states:eu-west-1:123456789012:stateMachine:deploy";
const EXECUTION: &str = "arn:aws:states:eu-west-1:123456789012:execution:deploy:ml-inference-0123abcd";

#[tokio::test]
async fn start_names_the_execution_and_returns_its_arn() {
    let rule = mock!(Client::start_execution)
        .match_requests(|r| {
            r.state_machine_arn() == Some(STATE_MACHINE)
                && r.name() == Some("ml-inference-0123abcd")
                && r.input() == Some(r#"{"action":"deploy"}"#)
        })
        .then_output(|| {
            StartExecutionOutput::builder().execution_arn(EXECUTION).start_date(DateTime::from_secs(0)).build().unwrap()
        });
    let client = client!(aws_sdk_sfn, &rule);
    let executions = SfnExecutions::new(client, STATE_MACHINE);

    let got = executions.start("ml-inference-0123abcd", r#"{"action":"deploy"}"#).await.unwrap();

    assert_eq!(got, StartOutcome::Started { execution_arn: EXECUTION.into() });
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn an_execution_that_already_exists_is_already_started() {
    let rule = mock!(Client::start_execution).then_error(|| {
        let message = "Execution Already Exists: 'arn:aws:states:...:ml-inference-0123abcd'";
        StartExecutionError::ExecutionAlreadyExists(
            ExecutionAlreadyExists::builder().message(message).meta(meta("ExecutionAlreadyExists", message)).build(),
        )
    });
    let executions = SfnExecutions::new(client!(aws_sdk_sfn, &rule), STATE_MACHINE);

    assert_eq!(executions.start("ml-inference-0123abcd", "{}").await.unwrap(), StartOutcome::AlreadyStarted);
}

#[tokio::test]
async fn a_missing_state_machine_is_refused_and_too_many_executions_is_throttled() {
    let missing = mock!(Client::start_execution).match_requests(|r| r.name() == Some("a")).then_error(|| {
        let message = "State Machine Does Not Exist: 'arn:aws:states:eu-west-1:123456789012:stateMachine:deploy'";
        StartExecutionError::StateMachineDoesNotExist(
            StateMachineDoesNotExist::builder()
                .message(message)
                .meta(meta("StateMachineDoesNotExist", message))
                .build(),
        )
    });
    let limit = mock!(Client::start_execution).match_requests(|r| r.name() == Some("b")).then_error(|| {
        StartExecutionError::ExecutionLimitExceeded(
            ExecutionLimitExceeded::builder()
                .message("Execution limit exceeded")
                .meta(meta("ExecutionLimitExceeded", "Execution limit exceeded"))
                .build(),
        )
    });
    let executions = SfnExecutions::new(client!(aws_sdk_sfn, &missing, &limit), STATE_MACHINE);

    let got = executions.start("a", "{}").await.unwrap_err();
    let DeployError::AwsRefused { service, operation, message } = &got else { panic!("expected AwsRefused: {got:?}") };
    assert_eq!((*service, *operation), ("Step Functions", "StartExecution"));
    assert!(message.contains("State Machine Does Not Exist"), "{message}");
    let got = executions.start("b", "{}").await.unwrap_err();
    assert_eq!(got.name(), "Throttled", "{got}");
}
