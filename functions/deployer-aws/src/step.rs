//! What every step binary's `main` needs: the SDK configuration, its static settings, and errors that
//! reach Step Functions under their stable names.

use std::collections::BTreeMap;

use aws_config::{BehaviorVersion, SdkConfig};
use deployer_core::DeployError;
use lambda_runtime::Diagnostic;

use crate::{DynamoTargetStore, EcrRegistry, LambdaControlPlane, SfnExecutions};

/// The SDK configuration from the environment (region, credentials, and `AWS_ENDPOINT_URL` if set).
pub async fn sdk_config() -> SdkConfig {
    aws_config::load_defaults(BehaviorVersion::latest()).await
}

/// A step's static settings, read once at start-up: a missing one fails the init, not an invocation.
#[derive(Debug, Clone)]
pub struct Config {
    values: BTreeMap<&'static str, String>,
    pub region: String,
}

impl Config {
    pub fn from_env(names: &[&'static str]) -> Result<Config, ConfigError> {
        let mut values = BTreeMap::new();
        for name in names {
            match std::env::var(name) {
                Ok(v) if !v.trim().is_empty() => {
                    values.insert(*name, v);
                }
                _ => return Err(ConfigError(format!("environment variable {name} is not set; the stack sets it"))),
            }
        }
        let region = std::env::var("AWS_REGION")
            .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
            .map_err(|_| ConfigError("AWS_REGION is not set".into()))?;
        Ok(Config { values, region })
    }

    /// A setting named in `from_env` (validated there).
    pub fn get(&self, name: &str) -> &str {
        self.values.get(name).map(String::as_str).unwrap_or_default()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

/// The account of a Lambda ARN (`arn:aws:lambda:<region>:<account>:function:<name>`).
pub fn account_of(function_arn: &str) -> String {
    function_arn.split(':').nth(4).unwrap_or_default().to_string()
}

/// The stack variables that carry its policy (TargetFunctionPrefix, TargetRolePrefix, AllowedRepositories;
/// GateAlarmPrefix may be empty): a step that enforces the policy names these in [`Config::from_env`].
pub const POLICY_VARS: [&str; 3] = [
    deployer_core::policy::FUNCTION_PREFIX_VAR,
    deployer_core::policy::ROLE_PREFIX_VAR,
    deployer_core::policy::REPOSITORIES_VAR,
];

/// The stack's policy, for a step invoked as `function_arn` (whose account is the stack's).
pub fn policy(function_arn: &str) -> Result<deployer_core::policy::StackPolicy, DeployError> {
    deployer_core::policy::StackPolicy::from_env(&account_of(function_arn), |k| std::env::var(k).ok())
}

/// A step's failure as Step Functions sees it: `errorType` is [`DeployError::name`].
#[derive(Debug)]
pub struct StepError(pub DeployError);

impl From<DeployError> for StepError {
    fn from(e: DeployError) -> Self {
        tracing::error!(error = e.name(), message = %e, "step failed");
        StepError(e)
    }
}

impl From<StepError> for Diagnostic {
    fn from(e: StepError) -> Self {
        Diagnostic { error_type: e.0.name().to_string(), error_message: e.0.to_string() }
    }
}

impl LambdaControlPlane {
    pub fn from_sdk(sdk: &SdkConfig) -> Self {
        LambdaControlPlane::new(aws_sdk_lambda::Client::new(sdk))
    }
}

impl EcrRegistry {
    pub fn from_sdk(sdk: &SdkConfig) -> Self {
        let region = sdk.region().map(|r| r.to_string()).unwrap_or_else(|| "us-east-1".into());
        EcrRegistry::new(aws_sdk_ecr::Client::new(sdk), region)
    }
}

impl DynamoTargetStore {
    pub fn from_sdk(sdk: &SdkConfig, table: &str) -> Self {
        DynamoTargetStore::new(aws_sdk_dynamodb::Client::new(sdk), table)
    }
}

impl SfnExecutions {
    pub fn from_sdk(sdk: &SdkConfig, state_machine_arn: &str) -> Self {
        SfnExecutions::new(aws_sdk_sfn::Client::new(sdk), state_machine_arn)
    }
}
