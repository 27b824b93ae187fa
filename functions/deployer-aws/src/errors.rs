//! SDK errors to [`DeployError`], for every adapter.
//!
//! Each operation's error type says, through its generated `is_*_exception()` predicates, which of its
//! modeled errors mean "not found", a lost race, throttling or an AWS-side failure ([`Classify`]).
//! Adapters turn "not found" into an answer ([`is_not_found`]: `Ok(None)`), as they do the few errors
//! that only one operation has (an execution that already exists), before calling [`to_deploy_error`].
//! What no predicate names falls back on the error code and HTTP status, which every service reports
//! the same way.

use aws_sdk_lambda::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_lambda::operation::{
    create_alias::CreateAliasError, create_function::CreateFunctionError, get_alias::GetAliasError,
    get_function::GetFunctionError, invoke::InvokeError, publish_version::PublishVersionError,
    update_alias::UpdateAliasError, update_function_code::UpdateFunctionCodeError,
    update_function_configuration::UpdateFunctionConfigurationError,
};
use deployer_core::DeployError;

/// The SDK's error type. `aws_sdk_lambda::error::SdkError` is the same smithy type in every SDK crate.
pub(crate) type SdkError<E> = aws_sdk_lambda::error::SdkError<E>;

pub(crate) const LAMBDA: &str = "Lambda";
pub(crate) const ECR: &str = "ECR";
pub(crate) const DYNAMODB: &str = "DynamoDB";
pub(crate) const SFN: &str = "Step Functions";

/// What a modeled service error means for the deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// What the call names does not exist. Reads answer `None`; other calls are refused.
    NotFound,
    /// Another update holds the resource (Lambda's ResourceConflictException).
    Conflict,
    /// The resource changed since it was read (a RevisionId that no longer matches).
    Precondition,
    Throttled,
    /// AWS failed on its side.
    Unavailable,
    /// Anything else: the service refused the call.
    Other,
}

/// Implemented for every operation error an adapter sees, from its generated predicates.
pub(crate) trait Classify: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static {
    fn kind(&self) -> Kind;
}

macro_rules! classify {
    ($($err:ty { $($is:ident => $kind:ident),* $(,)? })*) => {$(
        impl Classify for $err {
            fn kind(&self) -> Kind {
                $(if self.$is() {
                    return Kind::$kind;
                })*
                Kind::Other
            }
        }
    )*};
}

classify! {
    GetFunctionError {
        is_resource_not_found_exception => NotFound,
        is_too_many_requests_exception => Throttled,
        is_service_exception => Unavailable,
    }
    CreateFunctionError {
        is_resource_conflict_exception => Conflict,
        is_too_many_requests_exception => Throttled,
        is_service_exception => Unavailable,
    }
    UpdateFunctionConfigurationError {
        is_resource_conflict_exception => Conflict,
        is_precondition_failed_exception => Precondition,
        is_too_many_requests_exception => Throttled,
        is_service_exception => Unavailable,
    }
    UpdateFunctionCodeError {
        is_resource_conflict_exception => Conflict,
        is_precondition_failed_exception => Precondition,
        is_too_many_requests_exception => Throttled,
        is_service_exception => Unavailable,
    }
    PublishVersionError {
        is_resource_conflict_exception => Conflict,
        is_precondition_failed_exception => Precondition,
        is_too_many_requests_exception => Throttled,
        is_service_exception => Unavailable,
    }
    GetAliasError {
        is_resource_not_found_exception => NotFound,
        is_too_many_requests_exception => Throttled,
        is_service_exception => Unavailable,
    }
    CreateAliasError {
        is_resource_conflict_exception => Conflict,
        is_too_many_requests_exception => Throttled,
        is_service_exception => Unavailable,
    }
    UpdateAliasError {
        is_resource_conflict_exception => Conflict,
        is_precondition_failed_exception => Precondition,
        is_too_many_requests_exception => Throttled,
        is_service_exception => Unavailable,
    }
    aws_sdk_lambda::operation::put_function_concurrency::PutFunctionConcurrencyError {
        is_resource_not_found_exception => NotFound,
        is_resource_conflict_exception => Conflict,
        is_too_many_requests_exception => Throttled,
        is_service_exception => Unavailable,
    }
    aws_sdk_lambda::operation::delete_function_concurrency::DeleteFunctionConcurrencyError {
        is_resource_not_found_exception => NotFound,
        is_resource_conflict_exception => Conflict,
        is_too_many_requests_exception => Throttled,
        is_service_exception => Unavailable,
    }
    aws_sdk_lambda::operation::put_provisioned_concurrency_config::PutProvisionedConcurrencyConfigError {
        is_resource_not_found_exception => NotFound,
        is_resource_conflict_exception => Conflict,
        is_too_many_requests_exception => Throttled,
        is_service_exception => Unavailable,
    }
    aws_sdk_lambda::operation::list_provisioned_concurrency_configs::ListProvisionedConcurrencyConfigsError {
        is_resource_not_found_exception => NotFound,
        is_too_many_requests_exception => Throttled,
        is_service_exception => Unavailable,
    }
    aws_sdk_lambda::operation::delete_provisioned_concurrency_config::DeleteProvisionedConcurrencyConfigError {
        is_resource_not_found_exception => NotFound,
        is_resource_conflict_exception => Conflict,
        is_too_many_requests_exception => Throttled,
        is_service_exception => Unavailable,
    }
    InvokeError {
        // Invoked while the function is still being created or updated.
        is_resource_conflict_exception => Conflict,
        is_too_many_requests_exception => Throttled,
        is_ec2_throttled_exception => Throttled,
        is_service_exception => Unavailable,
    }
}

classify! {
    aws_sdk_codebuild::operation::start_build::StartBuildError {
        is_resource_not_found_exception => NotFound,
    }
    aws_sdk_codebuild::operation::batch_get_builds::BatchGetBuildsError {}
}

classify! {
    // Neither has a modelled throttling or availability error: those come by code and HTTP status.
    aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataError {}
    aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsError {}
}

classify! {
    aws_sdk_cloudwatchlogs::operation::describe_log_groups::DescribeLogGroupsError {
        is_service_unavailable_exception => Unavailable,
    }
    aws_sdk_cloudwatchlogs::operation::create_log_group::CreateLogGroupError {
        is_operation_aborted_exception => Conflict,
        is_service_unavailable_exception => Unavailable,
    }
    aws_sdk_cloudwatchlogs::operation::put_retention_policy::PutRetentionPolicyError {
        is_resource_not_found_exception => NotFound,
        is_operation_aborted_exception => Conflict,
        is_service_unavailable_exception => Unavailable,
    }
}

classify! {
    aws_sdk_ecr::operation::batch_get_image::BatchGetImageError {
        is_repository_not_found_exception => NotFound,
        is_server_exception => Unavailable,
    }
    aws_sdk_ecr::operation::put_image::PutImageError {
        is_repository_not_found_exception => NotFound,
        // ImageTagAlreadyExistsException (an immutable repository's tag on another image) is permanent:
        // refused, not retried as a conflict that clears.
        is_server_exception => Unavailable,
    }
    aws_sdk_ecr::operation::describe_images::DescribeImagesError {
        is_image_not_found_exception => NotFound,
        is_server_exception => Unavailable,
    }
}

classify! {
    aws_sdk_dynamodb::operation::get_item::GetItemError {
        // The table.
        is_resource_not_found_exception => NotFound,
        is_provisioned_throughput_exceeded_exception => Throttled,
        is_request_limit_exceeded => Throttled,
        is_throttling_exception => Throttled,
        is_internal_server_error => Unavailable,
    }
    aws_sdk_dynamodb::operation::scan::ScanError {
        // The table.
        is_resource_not_found_exception => NotFound,
        is_provisioned_throughput_exceeded_exception => Throttled,
        is_request_limit_exceeded => Throttled,
        is_throttling_exception => Throttled,
        is_internal_server_error => Unavailable,
    }
    aws_sdk_dynamodb::operation::query::QueryError {
        // The table.
        is_resource_not_found_exception => NotFound,
        is_provisioned_throughput_exceeded_exception => Throttled,
        is_request_limit_exceeded => Throttled,
        is_throttling_exception => Throttled,
        is_internal_server_error => Unavailable,
    }
    aws_sdk_dynamodb::operation::put_item::PutItemError {
        // The table.
        is_resource_not_found_exception => NotFound,
        is_transaction_conflict_exception => Conflict,
        is_replicated_write_conflict_exception => Conflict,
        is_provisioned_throughput_exceeded_exception => Throttled,
        is_request_limit_exceeded => Throttled,
        is_throttling_exception => Throttled,
        is_internal_server_error => Unavailable,
    }
    aws_sdk_dynamodb::operation::update_item::UpdateItemError {
        // The table.
        is_resource_not_found_exception => NotFound,
        is_transaction_conflict_exception => Conflict,
        is_replicated_write_conflict_exception => Conflict,
        is_provisioned_throughput_exceeded_exception => Throttled,
        is_request_limit_exceeded => Throttled,
        is_throttling_exception => Throttled,
        is_internal_server_error => Unavailable,
    }
    aws_sdk_dynamodb::operation::delete_item::DeleteItemError {
        // The table.
        is_resource_not_found_exception => NotFound,
        is_transaction_conflict_exception => Conflict,
        is_replicated_write_conflict_exception => Conflict,
        is_provisioned_throughput_exceeded_exception => Throttled,
        is_request_limit_exceeded => Throttled,
        is_throttling_exception => Throttled,
        is_internal_server_error => Unavailable,
    }
}

classify! {
    aws_sdk_sfn::operation::start_execution::StartExecutionError {
        // Too many open executions in the account: clears as executions finish.
        is_execution_limit_exceeded => Throttled,
        is_kms_throttling_exception => Throttled,
    }
    // Reading executions back (operators' tools).
    aws_sdk_sfn::operation::describe_execution::DescribeExecutionError {
        is_execution_does_not_exist => NotFound,
        is_kms_throttling_exception => Throttled,
    }
    aws_sdk_sfn::operation::get_execution_history::GetExecutionHistoryError {
        is_execution_does_not_exist => NotFound,
        is_kms_throttling_exception => Throttled,
    }
    aws_sdk_sfn::operation::list_state_machines::ListStateMachinesError {}
}

/// Throttling codes of services that do not model throttling for an operation (ECR, Step Functions).
const UNMODELED_THROTTLING: &[&str] =
    &["ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"];

/// The call that failed: which service, which operation, on what (a function, alias, table, ...).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Call<'a> {
    pub service: &'static str,
    pub operation: &'static str,
    pub resource: &'a str,
}

/// AWS's own words for a service error: its code and message.
pub(crate) fn aws_message<E: ProvideErrorMetadata + std::error::Error>(err: &E) -> String {
    match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_string(),
        (None, Some(message)) => message.to_string(),
        (None, None) => DisplayErrorContext(err).to_string(),
    }
}

pub(crate) fn is_not_found<E: Classify>(err: &SdkError<E>) -> bool {
    err.as_service_error().is_some_and(|e| e.kind() == Kind::NotFound)
}

pub(crate) fn to_deploy_error<E: Classify>(err: SdkError<E>, call: Call<'_>) -> DeployError {
    let Call { service, operation, resource } = call;
    let on = |message: String| format!("{operation} on {resource}: {message}");
    let refused =
        |message: String| DeployError::AwsRefused { service, operation, message: format!("{resource}: {message}") };
    match &err {
        SdkError::ServiceError(ctx) => {
            let e = ctx.err();
            let status = ctx.raw().status().as_u16();
            let message = aws_message(e);
            let throttling_code = status == 429 || e.code().is_some_and(|c| UNMODELED_THROTTLING.contains(&c));
            match e.kind() {
                Kind::Conflict => DeployError::UpdateInProgress { resource: resource.to_string(), message },
                Kind::Precondition => DeployError::PreconditionFailed { resource: resource.to_string(), message },
                Kind::Throttled => DeployError::Throttled { service, message: on(message) },
                Kind::Unavailable => DeployError::AwsUnavailable { service, message: on(message) },
                Kind::NotFound | Kind::Other if throttling_code => {
                    DeployError::Throttled { service, message: on(message) }
                }
                Kind::NotFound | Kind::Other if (500..=599).contains(&status) => {
                    DeployError::AwsUnavailable { service, message: on(format!("HTTP {status}: {message}")) }
                }
                Kind::NotFound | Kind::Other => refused(message),
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            DeployError::AwsUnavailable { service, message: on(DisplayErrorContext(&err).to_string()) }
        }
        // ConstructionFailure: the request could not be built, which retrying will not change.
        _ => refused(DisplayErrorContext(&err).to_string()),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_lambda::error::ConnectorError;

    use super::*;

    fn call() -> Call<'static> {
        Call { service: LAMBDA, operation: "GetFunction", resource: "ml-inference" }
    }

    #[test]
    fn transport_failures_are_aws_unavailable_and_bad_requests_are_refused() {
        let cases: Vec<(&str, SdkError<GetFunctionError>, &str)> = vec![
            ("timeout", SdkError::timeout_error("operation timed out after 3s"), "AwsUnavailable"),
            ("dispatch", SdkError::dispatch_failure(ConnectorError::io("connection refused".into())), "AwsUnavailable"),
            ("construction", SdkError::construction_failure("missing FunctionName"), "AwsRefused"),
        ];
        for (what, err, want) in cases {
            let got = to_deploy_error(err, call());
            assert_eq!(got.name(), want, "{what}: {got}");
            assert!(got.to_string().contains("ml-inference"), "{what}: {got}");
        }
        let got = to_deploy_error(SdkError::<GetFunctionError>::timeout_error("operation timed out after 3s"), call());
        assert!(got.to_string().contains("timed out"), "{got}");
    }
}
