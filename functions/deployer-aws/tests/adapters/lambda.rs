use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_lambda::operation::create_alias::CreateAliasOutput;
use aws_sdk_lambda::operation::create_function::{CreateFunctionError, CreateFunctionOutput};
use aws_sdk_lambda::operation::get_alias::{GetAliasError, GetAliasOutput};
use aws_sdk_lambda::operation::get_function::{GetFunctionError, GetFunctionOutput};
use aws_sdk_lambda::operation::invoke::{InvokeError, InvokeOutput};
use aws_sdk_lambda::operation::publish_version::{PublishVersionError, PublishVersionOutput};
use aws_sdk_lambda::operation::update_alias::{UpdateAliasError, UpdateAliasOutput};
use aws_sdk_lambda::operation::update_function_code::{UpdateFunctionCodeError, UpdateFunctionCodeOutput};
use aws_sdk_lambda::operation::update_function_configuration::{
    UpdateFunctionConfigurationError, UpdateFunctionConfigurationOutput,
};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::error::{
    InvalidParameterValueException, PreconditionFailedException, ResourceConflictException, ResourceNotFoundException,
    ServiceException, TooManyRequestsException,
};
use aws_sdk_lambda::types::{
    AliasRoutingConfiguration, ApplicationLogLevel, Architecture, EnvironmentResponse, EphemeralStorage,
    FunctionConfiguration, InvocationType, LastUpdateStatus, LogFormat, LoggingConfig, PackageType, State,
    SystemLogLevel,
};
use aws_sdk_lambda::Client;
use aws_smithy_mocks::mock;
use deployer_aws::LambdaControlPlane;
use deployer_core::ids::{AliasName, FunctionName, Version};
use deployer_core::model::{AliasState, CurrentConfig, FunctionState, Invocation, LambdaState, UpdateStatus};
use deployer_core::ports::FunctionApi;
use deployer_core::DeployError;
use serde_json::json;

use crate::{desired, meta};

const DIGEST_HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn name() -> FunctionName {
    FunctionName::parse("ml-inference").unwrap()
}

fn live() -> AliasName {
    AliasName::parse("live").unwrap()
}

fn version(v: &str) -> Version {
    Version::parse(v).unwrap()
}

fn image_uri() -> String {
    format!("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/ml-inference@sha256:{DIGEST_HEX}")
}

fn not_found(what: &str) -> ResourceNotFoundException {
    let message = format!("Function not found: {what}");
    ResourceNotFoundException::builder().message(&message).meta(meta("ResourceNotFoundException", &message)).build()
}

fn conflict() -> ResourceConflictException {
    let message = "The operation cannot be performed at this time. An update is in progress for resource";
    ResourceConflictException::builder().message(message).meta(meta("ResourceConflictException", message)).build()
}

fn precondition() -> PreconditionFailedException {
    let message = "The Revision Id provided does not match the latest Revision Id.";
    PreconditionFailedException::builder().message(message).meta(meta("PreconditionFailedException", message)).build()
}

fn assert_error(got: DeployError, name: &str, says: &[&str]) {
    assert_eq!(got.name(), name, "{got}");
    let text = got.to_string();
    for s in says {
        assert!(text.contains(s), "{text:?} should contain {s:?}");
    }
}

// ---- get_function -------------------------------------------------------------------------------------

#[tokio::test]
async fn get_function_maps_the_configuration_lambda_reports() {
    // GIVEN a function with every managed field set
    let config = FunctionConfiguration::builder()
        .version("$LATEST")
        .revision_id("rev-1")
        .code_sha256(DIGEST_HEX)
        .state(State::Active)
        .state_reason("ready")
        .last_update_status(LastUpdateStatus::Successful)
        .last_update_status_reason("done")
        .package_type(PackageType::Image)
        .role("arn:aws:iam::123456789012:role/ml")
        .memory_size(512)
        .timeout(10)
        .architectures(Architecture::Arm64)
        .ephemeral_storage(EphemeralStorage::builder().size(1024).build().unwrap())
        .environment(EnvironmentResponse::builder().variables("MODEL_NAME", "bc").build())
        .logging_config(
            LoggingConfig::builder()
                .log_format(LogFormat::Json)
                .application_log_level(ApplicationLogLevel::Debug)
                .system_log_level(SystemLogLevel::Warn)
                .log_group("/aws/lambda/ml-inference")
                .build(),
        )
        .build();
    let rule = mock!(Client::get_function)
        .match_requests(|r| r.function_name() == Some("ml-inference") && r.qualifier().is_none())
        .then_output(move || {
            GetFunctionOutput::builder()
                .configuration(config.clone())
                .code(
                    aws_sdk_lambda::types::FunctionCodeLocation::builder()
                        .repository_type("ECR")
                        .image_uri("123456789012.dkr.ecr.us-east-1.amazonaws.com/ml:v2")
                        .resolved_image_uri(format!(
                            "123456789012.dkr.ecr.us-east-1.amazonaws.com/ml@sha256:{DIGEST_HEX}"
                        ))
                        .build(),
                )
                .build()
        });
    let api = LambdaControlPlane::new(client!(aws_sdk_lambda, &rule));

    // WHEN its $LATEST is read
    let got = api.get_function(&name(), None).await.unwrap();

    // THEN every field reaches the domain type
    let want = FunctionState {
        name: name(),
        version: "$LATEST".into(),
        revision_id: "rev-1".into(),
        code_sha256: DIGEST_HEX.into(),
        state: LambdaState::Active,
        state_reason: Some("ready".into()),
        last_update: UpdateStatus::Successful,
        last_update_reason: Some("done".into()),
        package_type: "Image".into(),
        resolved_image_uri: Some(format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/ml@sha256:{DIGEST_HEX}")),
        config: CurrentConfig {
            role: "arn:aws:iam::123456789012:role/ml".into(),
            memory_mb: 512,
            timeout_seconds: 10,
            architecture: "arm64".into(),
            ephemeral_storage_mb: 1024,
            environment: BTreeMap::from([("MODEL_NAME".to_string(), "bc".to_string())]),
            log_format: "JSON".into(),
            application_level: Some("DEBUG".into()),
            system_level: Some("WARN".into()),
            log_group: Some("/aws/lambda/ml-inference".into()),
            reserved_concurrency: None,
        },
    };
    assert_eq!(got, Some(want));
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn get_function_passes_the_qualifier_and_fills_what_lambda_leaves_out() {
    // GIVEN a version with no architectures, logging config or last update status in the answer
    let rule = mock!(Client::get_function)
        .match_requests(|r| r.function_name() == Some("ml-inference") && r.qualifier() == Some("3"))
        .then_output(|| {
            GetFunctionOutput::builder()
                .configuration(FunctionConfiguration::builder().version("3").state(State::Pending).build())
                .build()
        });
    let api = LambdaControlPlane::new(client!(aws_sdk_lambda, &rule));

    let got = api.get_function(&name(), Some("3")).await.unwrap().unwrap();

    // THEN Lambda's defaults stand in
    assert_eq!(got.version, "3");
    assert_eq!(got.state, LambdaState::Pending);
    assert_eq!(got.last_update, UpdateStatus::Unknown);
    assert_eq!(got.config.architecture, "x86_64");
    assert_eq!(got.config.log_format, "Text");
    assert!(got.config.environment.is_empty());
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn get_function_of_a_missing_function_is_none() {
    let rule = mock!(Client::get_function)
        .then_error(|| GetFunctionError::ResourceNotFoundException(not_found("ml-inference")));
    let api = LambdaControlPlane::new(client!(aws_sdk_lambda, &rule));

    assert_eq!(api.get_function(&name(), None).await.unwrap(), None);
}

#[tokio::test]
async fn throttling_and_aws_side_failures_keep_their_class_and_aws_message() {
    let message = "Rate exceeded";
    let throttled = mock!(Client::get_function).match_requests(|r| r.qualifier() == Some("1")).then_error(move || {
        GetFunctionError::TooManyRequestsException(
            TooManyRequestsException::builder()
                .message(message)
                .meta(meta("TooManyRequestsException", message))
                .build(),
        )
    });
    let service = mock!(Client::get_function).match_requests(|r| r.qualifier() == Some("2")).then_error(|| {
        GetFunctionError::ServiceException(
            ServiceException::builder().message("internal").meta(meta("ServiceException", "internal")).build(),
        )
    });
    let http_503 = mock!(Client::get_function)
        .match_requests(|r| r.qualifier() == Some("3"))
        .sequence()
        .http_status(503, None)
        .build();
    let api = LambdaControlPlane::new(client!(aws_sdk_lambda, &throttled, &service, &http_503));

    let got = api.get_function(&name(), Some("1")).await.unwrap_err();
    assert_error(got, "Throttled", &["Lambda", "GetFunction", "ml-inference", "Rate exceeded"]);
    let got = api.get_function(&name(), Some("2")).await.unwrap_err();
    assert_error(got, "AwsUnavailable", &["Lambda", "ServiceException: internal"]);
    let got = api.get_function(&name(), Some("3")).await.unwrap_err();
    assert_error(got, "AwsUnavailable", &["HTTP 503", "ml-inference"]);
    assert_eq!(http_503.num_calls(), 1);
}

// ---- create_function ----------------------------------------------------------------------------------

#[tokio::test]
async fn create_function_sends_the_image_and_the_whole_configuration() {
    // GIVEN a spec with no environment and JSON logs without levels
    let config = desired(json!({"role": "arn:aws:iam::123456789012:role/ml", "memoryMb": 1024, "timeoutSeconds": 30}));
    let uri = image_uri();
    let rule = mock!(Client::create_function)
        .match_requests(move |r| {
            let logging = r.logging_config().unwrap();
            r.function_name() == Some("ml-inference")
                && r.package_type() == Some(&PackageType::Image)
                && r.code().and_then(|c| c.image_uri()) == Some(uri.as_str())
                && r.role() == Some("arn:aws:iam::123456789012:role/ml")
                && r.memory_size() == Some(1024)
                && r.timeout() == Some(30)
                && r.architectures() == [Architecture::X8664]
                && r.ephemeral_storage().map(|e| e.size()) == Some(512)
                // Variables sent even when empty
                && r.environment().and_then(|e| e.variables()).is_some_and(|v| v.is_empty())
                && logging.log_format() == Some(&LogFormat::Json)
                && logging.application_log_level() == Some(&ApplicationLogLevel::Info)
                && logging.system_log_level() == Some(&SystemLogLevel::Info)
                && logging.log_group().is_none()
                && r.publish() == Some(false)
        })
        .then_output(|| {
            CreateFunctionOutput::builder()
                .version("$LATEST")
                .revision_id("rev-0")
                .state(State::Pending)
                .package_type(PackageType::Image)
                .memory_size(1024)
                .build()
        });
    let api = LambdaControlPlane::new(client!(aws_sdk_lambda, &rule));

    // WHEN the function is created
    let got = api.create_function(&name(), &image_uri(), &config).await.unwrap();

    // THEN the request matched, and the answer is mapped
    assert_eq!(rule.num_calls(), 1);
    assert_eq!(got.name, name());
    assert_eq!(got.revision_id, "rev-0");
    assert_eq!(got.state, LambdaState::Pending);
    assert_eq!(got.last_update, UpdateStatus::Unknown);
    assert_eq!(got.config.memory_mb, 1024);
}

#[tokio::test]
async fn create_function_with_text_logs_sends_no_levels_and_the_spec_log_group() {
    let config = desired(json!({
        "role": "arn:aws:iam::123456789012:role/ml",
        "architecture": "arm64",
        "environment": {"MODEL_NAME": "bc"},
        "logging": {"format": "Text", "logGroup": "/team/ml"}
    }));
    let rule = mock!(Client::create_function)
        .match_requests(|r| {
            let logging = r.logging_config().unwrap();
            r.architectures() == [Architecture::Arm64]
                && r.environment().and_then(|e| e.variables()).and_then(|v| v.get("MODEL_NAME")).map(String::as_str)
                    == Some("bc")
                && logging.log_format() == Some(&LogFormat::Text)
                && logging.application_log_level().is_none()
                && logging.system_log_level().is_none()
                && logging.log_group() == Some("/team/ml")
        })
        .then_output(|| CreateFunctionOutput::builder().build());
    let api = LambdaControlPlane::new(client!(aws_sdk_lambda, &rule));

    api.create_function(&name(), &image_uri(), &config).await.unwrap();

    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn a_refused_call_is_aws_refused_with_the_operation_and_aws_message() {
    let message = "Source image 123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/ml-inference does not exist.";
    let rule = mock!(Client::create_function).then_error(move || {
        CreateFunctionError::InvalidParameterValueException(
            InvalidParameterValueException::builder()
                .message(message)
                .meta(meta("InvalidParameterValueException", message))
                .build(),
        )
    });
    let api = LambdaControlPlane::new(client!(aws_sdk_lambda, &rule));
    let config = desired(json!({"role": "arn:aws:iam::123456789012:role/ml"}));

    let got = api.create_function(&name(), &image_uri(), &config).await.unwrap_err();

    match &got {
        DeployError::AwsRefused { service, operation, message } => {
            assert_eq!((*service, *operation), ("Lambda", "CreateFunction"));
            assert!(message.contains("InvalidParameterValueException: Source image"), "{message}");
            assert!(message.contains("ml-inference"), "{message}");
        }
        other => panic!("expected AwsRefused, got {other:?}"),
    }
}

// ---- update_configuration -----------------------------------------------------------------------------

#[tokio::test]
async fn update_configuration_is_guarded_by_the_revision_and_replaces_the_environment() {
    // GIVEN a spec with one variable and no log group
    let config = desired(json!({
        "role": "arn:aws:iam::123456789012:role/ml",
        "memoryMb": 512,
        "environment": {"MODEL_NAME": "bc"},
        "logging": {"format": "JSON", "applicationLevel": "WARN"}
    }));
    let rule = mock!(Client::update_function_configuration)
        .match_requests(|r| {
            let logging = r.logging_config().unwrap();
            let vars = r.environment().and_then(|e| e.variables()).unwrap();
            r.function_name() == Some("ml-inference")
                && r.revision_id() == Some("rev-1")
                && r.role() == Some("arn:aws:iam::123456789012:role/ml")
                && r.memory_size() == Some(512)
                && r.timeout() == Some(3)
                && r.ephemeral_storage().map(|e| e.size()) == Some(512)
                && vars.len() == 1
                && vars.get("MODEL_NAME").map(String::as_str) == Some("bc")
                && logging.application_log_level() == Some(&ApplicationLogLevel::Warn)
                && logging.system_log_level() == Some(&SystemLogLevel::Info)
                // The default group is sent, so a custom one the spec dropped is undone.
                && logging.log_group() == Some("/aws/lambda/ml-inference")
        })
        .then_output(|| {
            UpdateFunctionConfigurationOutput::builder()
                .revision_id("rev-2")
                .last_update_status(LastUpdateStatus::InProgress)
                .environment(EnvironmentResponse::builder().variables("MODEL_NAME", "bc").build())
                .build()
        });
    let api = LambdaControlPlane::new(client!(aws_sdk_lambda, &rule));

    let got = api.update_configuration(&name(), &config, "rev-1").await.unwrap();

    assert_eq!(rule.num_calls(), 1);
    assert_eq!(got.revision_id, "rev-2");
    assert_eq!(got.last_update, UpdateStatus::InProgress);
    assert_eq!(got.config.environment.len(), 1);
}

#[tokio::test]
async fn a_write_during_an_update_is_update_in_progress_and_a_stale_revision_is_precondition_failed() {
    let busy = mock!(Client::update_function_configuration)
        .match_requests(|r| r.revision_id() == Some("rev-1"))
        .then_error(|| UpdateFunctionConfigurationError::ResourceConflictException(conflict()));
    let stale = mock!(Client::update_function_configuration)
        .match_requests(|r| r.revision_id() == Some("rev-0"))
        .then_error(|| UpdateFunctionConfigurationError::PreconditionFailedException(precondition()));
    let api = LambdaControlPlane::new(client!(aws_sdk_lambda, &busy, &stale));
    let config = desired(json!({"role": "arn:aws:iam::123456789012:role/ml"}));

    let got = api.update_configuration(&name(), &config, "rev-1").await.unwrap_err();
    assert_eq!(
        got,
        DeployError::UpdateInProgress {
            resource: "ml-inference".into(),
            message: "ResourceConflictException: The operation cannot be performed at this time. An update is in \
                      progress for resource"
                .into()
        }
    );
    let got = api.update_configuration(&name(), &config, "rev-0").await.unwrap_err();
    assert_error(got, "PreconditionFailed", &["ml-inference", "Revision Id provided does not match"]);
}

// ---- update_code --------------------------------------------------------------------------------------

#[tokio::test]
async fn update_code_sends_the_image_by_digest_the_architecture_and_the_revision() {
    let uri = image_uri();
    let rule = mock!(Client::update_function_code)
        .match_requests(move |r| {
            r.function_name() == Some("ml-inference")
                && r.image_uri() == Some(uri.as_str())
                && r.architectures() == [Architecture::Arm64]
                && r.revision_id() == Some("rev-2")
        })
        .then_output(|| {
            UpdateFunctionCodeOutput::builder()
                .revision_id("rev-3")
                .code_sha256(DIGEST_HEX)
                .architectures(Architecture::Arm64)
                .last_update_status(LastUpdateStatus::InProgress)
                .build()
        });
    let api = LambdaControlPlane::new(client!(aws_sdk_lambda, &rule));

    let got = api.update_code(&name(), &image_uri(), "arm64", "rev-2").await.unwrap();

    assert_eq!(rule.num_calls(), 1);
    assert_eq!((got.revision_id.as_str(), got.code_sha256.as_str()), ("rev-3", DIGEST_HEX));
    assert_eq!(got.config.architecture, "arm64");
    assert_eq!(got.last_update, UpdateStatus::InProgress);
}

#[tokio::test]
async fn update_code_while_another_update_runs_is_update_in_progress() {
    let rule = mock!(Client::update_function_code)
        .then_error(|| UpdateFunctionCodeError::ResourceConflictException(conflict()));
    let api = LambdaControlPlane::new(client!(aws_sdk_lambda, &rule));

    let got = api.update_code(&name(), &image_uri(), "x86_64", "rev-2").await.unwrap_err();

    assert_error(got, "UpdateInProgress", &["ml-inference", "An update is in progress"]);
}

// ---- publish_version ----------------------------------------------------------------------------------

#[tokio::test]
async fn publish_version_is_guarded_by_code_sha256_and_revision() {
    let rule = mock!(Client::publish_version)
        .match_requests(|r| {
            r.function_name() == Some("ml-inference")
                && r.code_sha256() == Some(DIGEST_HEX)
                && r.revision_id() == Some("rev-3")
                && r.description() == Some("sha-0123abc")
        })
        .then_output(|| PublishVersionOutput::builder().version("7").build());
    let api = LambdaControlPlane::new(client!(aws_sdk_lambda, &rule));

    let got = api.publish_version(&name(), DIGEST_HEX, "rev-3", "sha-0123abc").await.unwrap();

    assert_eq!(got, version("7"));
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn publish_version_refuses_an_answer_that_is_not_a_published_version() {
    let stale = mock!(Client::publish_version)
        .match_requests(|r| r.revision_id() == Some("rev-old"))
        .then_error(|| PublishVersionError::PreconditionFailedException(precondition()));
    let latest = mock!(Client::publish_version)
        .match_requests(|r| r.revision_id() == Some("rev-3"))
        .then_output(|| PublishVersionOutput::builder().version("$LATEST").build());
    let api = LambdaControlPlane::new(client!(aws_sdk_lambda, &stale, &latest));

    let got = api.publish_version(&name(), DIGEST_HEX, "rev-old", "d").await.unwrap_err();
    assert_error(got, "PreconditionFailed", &["ml-inference"]);
    let got = api.publish_version(&name(), DIGEST_HEX, "rev-3", "d").await.unwrap_err();
    assert_error(got, "AwsRefused", &["PublishVersion", "\"$LATEST\""]);
}

// ---- aliases ------------------------------------------------------------------------------------------

#[tokio::test]
async fn get_alias_reports_the_version_and_a_weighted_second_version() {
    let weighted = mock!(Client::get_alias)
        .match_requests(|r| r.function_name() == Some("ml-inference") && r.name() == Some("live"))
        .then_output(|| {
            GetAliasOutput::builder()
                .name("live")
                .function_version("5")
                .revision_id("alias-rev")
                .description("sha-0123abc")
                .routing_config(AliasRoutingConfiguration::builder().additional_version_weights("6", 0.1).build())
                .build()
        });
    let plain = mock!(Client::get_alias)
        .match_requests(|r| r.name() == Some("stable"))
        .then_output(|| GetAliasOutput::builder().name("stable").function_version("4").revision_id("r").build());
    let missing = mock!(Client::get_alias)
        .match_requests(|r| r.name() == Some("canary"))
        .then_error(|| GetAliasError::ResourceNotFoundException(not_found("ml-inference:canary")));
    let api = LambdaControlPlane::new(client!(aws_sdk_lambda, &weighted, &plain, &missing));

    let got = api.get_alias(&name(), &live()).await.unwrap();
    assert_eq!(
        got,
        Some(AliasState {
            name: live(),
            version: "5".into(),
            revision_id: "alias-rev".into(),
            description: "sha-0123abc".into(),
            additional: Some(("6".into(), 0.1)),
        })
    );
    let stable = AliasName::parse("stable").unwrap();
    assert_eq!(api.get_alias(&name(), &stable).await.unwrap().unwrap().additional, None);
    let canary = AliasName::parse("canary").unwrap();
    assert_eq!(api.get_alias(&name(), &canary).await.unwrap(), None);
}

#[tokio::test]
async fn create_alias_points_at_the_version() {
    let rule = mock!(Client::create_alias)
        .match_requests(|r| {
            r.function_name() == Some("ml-inference")
                && r.name() == Some("live")
                && r.function_version() == Some("1")
                && r.description() == Some("first")
        })
        .then_output(|| {
            CreateAliasOutput::builder()
                .name("live")
                .function_version("1")
                .revision_id("a-1")
                .description("first")
                .build()
        });
    let api = LambdaControlPlane::new(client!(aws_sdk_lambda, &rule));

    let got = api.create_alias(&name(), &live(), &version("1"), "first").await.unwrap();

    assert_eq!(rule.num_calls(), 1);
    assert_eq!((got.version.as_str(), got.revision_id.as_str(), got.additional), ("1", "a-1", None));
}

#[tokio::test]
async fn update_alias_clears_routing_and_is_guarded_by_the_revision() {
    let rule = mock!(Client::update_alias)
        .match_requests(|r| {
            r.function_name() == Some("ml-inference")
                && r.name() == Some("live")
                && r.function_version() == Some("7")
                && r.description() == Some("sha-0123abc")
                && r.revision_id() == Some("a-1")
                // RoutingConfig with an empty weight map, which removes any canary weight
                && r.routing_config().and_then(|rc| rc.additional_version_weights()).is_some_and(|w| w.is_empty())
        })
        .then_output(|| UpdateAliasOutput::builder().name("live").function_version("7").revision_id("a-2").build());
    let stale = mock!(Client::update_alias)
        .match_requests(|r| r.revision_id() == Some("a-0"))
        .then_error(|| UpdateAliasError::PreconditionFailedException(precondition()));
    let api = LambdaControlPlane::new(client!(aws_sdk_lambda, &rule, &stale));

    let got = api.update_alias(&name(), &live(), &version("7"), "sha-0123abc", "a-1").await.unwrap();
    assert_eq!(rule.num_calls(), 1);
    assert_eq!((got.version.as_str(), got.revision_id.as_str(), got.additional), ("7", "a-2", None));

    let got = api.update_alias(&name(), &live(), &version("7"), "sha-0123abc", "a-0").await.unwrap_err();
    assert_error(got, "PreconditionFailed", &["ml-inference:live"]);
}

// ---- invoke -------------------------------------------------------------------------------------------

#[tokio::test]
async fn invoke_waits_for_the_answer_and_measures_the_round_trip() {
    let rule = mock!(Client::invoke)
        .match_requests(|r| {
            r.function_name() == Some("ml-inference")
                && r.qualifier() == Some("live")
                && r.invocation_type() == Some(&InvocationType::RequestResponse)
                && r.payload().map(|p| p.as_ref()) == Some(br#"{"x":1}"#.as_slice())
        })
        .then_compute_output(|_| {
            // The call takes at least 30 ms.
            std::thread::sleep(Duration::from_millis(30));
            InvokeOutput::builder()
                .status_code(200)
                .payload(Blob::new(r#"{"errorMessage":"boom"}"#))
                .function_error("Unhandled")
                .executed_version("7")
                .build()
        });
    let api = LambdaControlPlane::new(client!(aws_sdk_lambda, &rule));

    let got = api.invoke(&name(), "live", br#"{"x":1}"#).await.unwrap();

    assert_eq!(rule.num_calls(), 1);
    assert_eq!(
        got,
        Invocation {
            payload: br#"{"errorMessage":"boom"}"#.to_vec(),
            function_error: Some("Unhandled".into()),
            executed_version: "7".into(),
            latency_ms: got.latency_ms,
        }
    );
    assert!(got.latency_ms >= 30, "latency {} ms", got.latency_ms);
}

#[tokio::test]
async fn invoke_throttled_is_throttled() {
    let rule = mock!(Client::invoke).then_error(|| {
        InvokeError::TooManyRequestsException(
            TooManyRequestsException::builder()
                .message("Rate exceeded")
                .meta(meta("TooManyRequestsException", "Rate exceeded"))
                .build(),
        )
    });
    let api = LambdaControlPlane::new(client!(aws_sdk_lambda, &rule));

    let got = api.invoke(&name(), "7", b"{}").await.unwrap_err();

    assert_error(got, "Throttled", &["Invoke", "ml-inference:7", "Rate exceeded"]);
}
