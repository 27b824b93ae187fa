//! The adapters against `aws-smithy-mocks` (STYLE layer 3): each port method's request and the mapping
//! of its answer, and each class of AWS error to its `DeployError`. One test binary for all services, so
//! the SDK crates are linked once.

use aws_smithy_types::error::ErrorMetadata;
use deployer_core::spec::{DesiredConfig, TargetSpec};
use serde_json::{json, Value};

/// A client over mock rules (matched in any order), without SDK retries: one adapter call, one rule call.
macro_rules! client {
    ($krate:ident, $($rule:expr),+ $(,)?) => {
        aws_smithy_mocks::mock_client!(
            $krate,
            aws_smithy_mocks::RuleMode::MatchAny,
            [$($rule),+],
            |c| c.retry_config(aws_smithy_types::retry::RetryConfig::disabled())
        )
    };
}

mod dynamodb;
mod ecr;
mod lambda;
mod sfn;

/// The error metadata a real AWS error response carries: its code and message.
pub fn meta(code: &str, message: &str) -> ErrorMetadata {
    ErrorMetadata::builder().code(code).message(message).build()
}

pub fn spec_json(function: &str) -> Value {
    json!({
        "function": function,
        "repository": "team/ml-inference",
        "tagPattern": "^sha-[0-9a-f]{7,40}$",
        "configuration": {
            "role": "arn:aws:iam::123456789012:role/ml",
            "memoryMb": 512,
            "timeoutSeconds": 10,
            "environment": {"MODEL_NAME": "bc"}
        },
        "smokeTest": {"cases": [{"name": "golden", "payload": {"x": 1}, "expect": {"y": 2}}]}
    })
}

pub fn spec(function: &str) -> TargetSpec {
    deployer_core::spec::parse(&spec_json(function).to_string()).unwrap()
}

pub fn desired(config: Value) -> DesiredConfig {
    serde_json::from_value(config).unwrap()
}
