//! [`FunctionApi`] over the Lambda control plane.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    AliasRoutingConfiguration, ApplicationLogLevel, Architecture, Environment, EphemeralStorage, FunctionCode,
    InvocationType, LastUpdateStatus, LogFormat, LoggingConfig, PackageType, State, SystemLogLevel,
};
use deployer_core::ids::{AliasName, FunctionName, Version};
use deployer_core::model::{
    AliasState, CurrentConfig, FunctionState, Invocation, LambdaState, Provisioned, Routing, UpdateStatus,
};
use deployer_core::ports::{FunctionApi, Result};
use deployer_core::spec::{self, DesiredConfig, LoggingSpec};
use deployer_core::DeployError;

use crate::errors::{is_not_found, to_deploy_error, Call, LAMBDA};

/// The Lambda functions the deployer manages, through their control-plane API.
#[derive(Debug, Clone)]
pub struct LambdaControlPlane {
    client: aws_sdk_lambda::Client,
}

impl LambdaControlPlane {
    pub fn new(client: aws_sdk_lambda::Client) -> Self {
        LambdaControlPlane { client }
    }
}

fn call<'a>(operation: &'static str, resource: &'a str) -> Call<'a> {
    Call { service: LAMBDA, operation, resource }
}

/// Lambda's integers are i32; the spec's values were range-checked when it was parsed. An out-of-range
/// value saturates, and Lambda refuses it with a message naming the field.
fn int(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn uint(v: Option<i32>) -> u32 {
    v.and_then(|v| u32::try_from(v).ok()).unwrap_or(0)
}

/// FunctionConfiguration and the outputs of CreateFunction, UpdateFunctionConfiguration and
/// UpdateFunctionCode are distinct types with the same getters: one mapping for all of them.
macro_rules! function_state {
    ($name:expr, $c:expr) => {{
        let c = $c;
        let logging = c.logging_config();
        FunctionState {
            name: $name.clone(),
            version: c.version().unwrap_or_default().to_string(),
            revision_id: c.revision_id().unwrap_or_default().to_string(),
            code_sha256: c.code_sha256().unwrap_or_default().to_string(),
            state: lambda_state(c.state()),
            state_reason: c.state_reason().map(str::to_string),
            last_update: update_status(c.last_update_status()),
            last_update_reason: c.last_update_status_reason().map(str::to_string),
            package_type: c.package_type().map(|p| p.as_str().to_string()).unwrap_or_default(),
            resolved_image_uri: None,
            config: CurrentConfig {
                role: c.role().unwrap_or_default().to_string(),
                memory_mb: uint(c.memory_size()),
                timeout_seconds: uint(c.timeout()),
                architecture: c.architectures().first().map_or("x86_64", |a| a.as_str()).to_string(),
                ephemeral_storage_mb: uint(c.ephemeral_storage().map(|e| e.size())),
                environment: c
                    .environment()
                    .and_then(|e| e.variables())
                    .map(|vars| vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_else(BTreeMap::new),
                log_format: logging.and_then(|l| l.log_format()).map_or("Text", |f| f.as_str()).to_string(),
                application_level: logging.and_then(|l| l.application_log_level()).map(|l| l.as_str().to_string()),
                system_level: logging.and_then(|l| l.system_log_level()).map(|l| l.as_str().to_string()),
                log_group: logging.and_then(|l| l.log_group()).map(str::to_string),
                reserved_concurrency: None,
            },
        }
    }};
}

/// Same for the alias outputs (GetAlias, CreateAlias, UpdateAlias).
macro_rules! alias_state {
    ($alias:expr, $a:expr) => {{
        let a = $a;
        AliasState {
            name: $alias.clone(),
            version: a.function_version().unwrap_or_default().to_string(),
            revision_id: a.revision_id().unwrap_or_default().to_string(),
            description: a.description().unwrap_or_default().to_string(),
            additional: a
                .routing_config()
                .and_then(|r| r.additional_version_weights())
                .and_then(|w| w.iter().next())
                .map(|(version, weight)| (version.clone(), *weight)),
        }
    }};
}

fn lambda_state(state: Option<&State>) -> LambdaState {
    match state {
        Some(State::Pending) => LambdaState::Pending,
        Some(State::Active) => LambdaState::Active,
        Some(State::Inactive) => LambdaState::Inactive,
        Some(State::Failed) => LambdaState::Failed,
        Some(other) => LambdaState::Other(other.as_str().to_string()),
        None => LambdaState::Other(String::new()),
    }
}

fn update_status(status: Option<&LastUpdateStatus>) -> UpdateStatus {
    match status {
        Some(LastUpdateStatus::InProgress) => UpdateStatus::InProgress,
        Some(LastUpdateStatus::Successful) => UpdateStatus::Successful,
        Some(LastUpdateStatus::Failed) => UpdateStatus::Failed,
        _ => UpdateStatus::Unknown,
    }
}

/// The configuration fields both CreateFunction and UpdateFunctionConfiguration send.
struct ConfigRequest {
    memory: i32,
    timeout: i32,
    ephemeral_storage: EphemeralStorage,
    /// Always sent, even empty: variables the spec no longer has are removed.
    environment: Environment,
    logging: LoggingConfig,
}

fn config_request(config: &DesiredConfig, log_group: Option<String>) -> Result<ConfigRequest> {
    let ephemeral_storage = EphemeralStorage::builder()
        .size(int(config.ephemeral_storage_mb))
        .build()
        .map_err(|e| DeployError::invalid(format!("ephemeral storage: {e}")))?;
    let variables: HashMap<String, String> = config.environment.clone().into_iter().collect();
    Ok(ConfigRequest {
        memory: int(config.memory_mb),
        timeout: int(config.timeout_seconds),
        ephemeral_storage,
        environment: Environment::builder().set_variables(Some(variables)).build(),
        logging: logging_config(&config.logging, log_group),
    })
}

/// Levels only with JSON (Lambda refuses them with Text), defaulting to INFO as Lambda does.
fn logging_config(logging: &LoggingSpec, log_group: Option<String>) -> LoggingConfig {
    let mut b = LoggingConfig::builder().log_format(LogFormat::from(logging.format.as_str()));
    if logging.format == spec::LogFormat::Json {
        b = b
            .application_log_level(ApplicationLogLevel::from(logging.application_level.as_deref().unwrap_or("INFO")))
            .system_log_level(SystemLogLevel::from(logging.system_level.as_deref().unwrap_or("INFO")));
    }
    b.set_log_group(log_group).build()
}

impl FunctionApi for LambdaControlPlane {
    async fn get_function(&self, name: &FunctionName, qualifier: Option<&str>) -> Result<Option<FunctionState>> {
        let out = match self
            .client
            .get_function()
            .function_name(name.as_str())
            .set_qualifier(qualifier.map(str::to_string))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(to_deploy_error(e, call("GetFunction", name.as_str()))),
        };
        let c = out.configuration().ok_or_else(|| DeployError::AwsRefused {
            service: LAMBDA,
            operation: "GetFunction",
            message: format!("{name}: the answer has no Configuration"),
        })?;
        let mut state = function_state!(name, c);
        state.resolved_image_uri = out.code().and_then(|c| c.resolved_image_uri()).map(str::to_string);
        state.config.reserved_concurrency =
            out.concurrency().and_then(|c| c.reserved_concurrent_executions()).map(|n| n.max(0) as u32);
        Ok(Some(state))
    }

    async fn put_provisioned(&self, name: &FunctionName, version: &Version, n: u32) -> Result<()> {
        self.client
            .put_provisioned_concurrency_config()
            .function_name(name.as_str())
            .qualifier(version.as_str())
            .provisioned_concurrent_executions(n as i32)
            .send()
            .await
            .map_err(|e| to_deploy_error(e, call("PutProvisionedConcurrencyConfig", &format!("{name}:{version}"))))?;
        Ok(())
    }

    async fn list_provisioned(&self, name: &FunctionName) -> Result<Vec<Provisioned>> {
        let mut out = Vec::new();
        let mut marker = None;
        loop {
            let page = self
                .client
                .list_provisioned_concurrency_configs()
                .function_name(name.as_str())
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| to_deploy_error(e, call("ListProvisionedConcurrencyConfigs", name.as_str())))?;
            for c in page.provisioned_concurrency_configs() {
                let arn = c.function_arn().unwrap_or_default();
                out.push(Provisioned {
                    qualifier: arn.rsplit(':').next().unwrap_or_default().to_string(),
                    requested: c.requested_provisioned_concurrent_executions().unwrap_or(0).max(0) as u32,
                    allocated: c.allocated_provisioned_concurrent_executions().unwrap_or(0).max(0) as u32,
                    status: c.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
                    reason: c.status_reason().map(str::to_string),
                });
            }
            marker = page.next_marker().map(str::to_string);
            if marker.is_none() {
                return Ok(out);
            }
        }
    }

    async fn delete_provisioned(&self, name: &FunctionName, qualifier: &str) -> Result<()> {
        match self
            .client
            .delete_provisioned_concurrency_config()
            .function_name(name.as_str())
            .qualifier(qualifier)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => Ok(()),
            Err(e) => {
                Err(to_deploy_error(e, call("DeleteProvisionedConcurrencyConfig", &format!("{name}:{qualifier}"))))
            }
        }
    }

    async fn set_reserved_concurrency(&self, name: &FunctionName, reserved: Option<u32>) -> Result<()> {
        match reserved {
            Some(n) => {
                self.client
                    .put_function_concurrency()
                    .function_name(name.as_str())
                    .reserved_concurrent_executions(n as i32)
                    .send()
                    .await
                    .map_err(|e| to_deploy_error(e, call("PutFunctionConcurrency", name.as_str())))?;
            }
            None => {
                self.client
                    .delete_function_concurrency()
                    .function_name(name.as_str())
                    .send()
                    .await
                    .map_err(|e| to_deploy_error(e, call("DeleteFunctionConcurrency", name.as_str())))?;
            }
        }
        Ok(())
    }

    async fn create_function(
        &self,
        name: &FunctionName,
        image_uri: &str,
        config: &DesiredConfig,
    ) -> Result<FunctionState> {
        let req = config_request(config, config.logging.log_group.clone())?;
        let out = self
            .client
            .create_function()
            .function_name(name.as_str())
            .package_type(PackageType::Image)
            .code(FunctionCode::builder().image_uri(image_uri).build())
            .role(&config.role)
            .memory_size(req.memory)
            .timeout(req.timeout)
            .architectures(Architecture::from(config.architecture.as_str()))
            .ephemeral_storage(req.ephemeral_storage)
            .environment(req.environment)
            .logging_config(req.logging)
            .publish(false)
            .send()
            .await
            .map_err(|e| to_deploy_error(e, call("CreateFunction", name.as_str())))?;
        Ok(function_state!(name, &out))
    }

    async fn update_configuration(
        &self,
        name: &FunctionName,
        config: &DesiredConfig,
        revision_id: &str,
    ) -> Result<FunctionState> {
        // The log group is always sent, so a custom group the spec no longer names goes back to the
        // default (otherwise that drift would be reported on every deployment and never repaired).
        let log_group = config.logging.log_group.clone().unwrap_or_else(|| format!("/aws/lambda/{name}"));
        let req = config_request(config, Some(log_group))?;
        let out = self
            .client
            .update_function_configuration()
            .function_name(name.as_str())
            .role(&config.role)
            .memory_size(req.memory)
            .timeout(req.timeout)
            .ephemeral_storage(req.ephemeral_storage)
            .environment(req.environment)
            .logging_config(req.logging)
            .revision_id(revision_id)
            .send()
            .await
            .map_err(|e| to_deploy_error(e, call("UpdateFunctionConfiguration", name.as_str())))?;
        Ok(function_state!(name, &out))
    }

    async fn update_code(
        &self,
        name: &FunctionName,
        image_uri: &str,
        architecture: &str,
        revision_id: &str,
    ) -> Result<FunctionState> {
        let out = self
            .client
            .update_function_code()
            .function_name(name.as_str())
            .image_uri(image_uri)
            .architectures(Architecture::from(architecture))
            .revision_id(revision_id)
            .publish(false)
            .send()
            .await
            .map_err(|e| to_deploy_error(e, call("UpdateFunctionCode", name.as_str())))?;
        Ok(function_state!(name, &out))
    }

    async fn publish_version(
        &self,
        name: &FunctionName,
        code_sha256: &str,
        revision_id: &str,
        description: &str,
    ) -> Result<Version> {
        let out = self
            .client
            .publish_version()
            .function_name(name.as_str())
            .code_sha256(code_sha256)
            .revision_id(revision_id)
            .description(description)
            .send()
            .await
            .map_err(|e| to_deploy_error(e, call("PublishVersion", name.as_str())))?;
        let version = out.version().unwrap_or_default();
        Version::parse(version).map_err(|e| DeployError::AwsRefused {
            service: LAMBDA,
            operation: "PublishVersion",
            message: format!("{name}: Lambda answered with version {version:?}, not a published version ({e})"),
        })
    }

    async fn get_alias(&self, name: &FunctionName, alias: &AliasName) -> Result<Option<AliasState>> {
        match self.client.get_alias().function_name(name.as_str()).name(alias.as_str()).send().await {
            Ok(out) => Ok(Some(alias_state!(alias, &out))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(to_deploy_error(e, call("GetAlias", &format!("{name}:{alias}")))),
        }
    }

    async fn create_alias(
        &self,
        name: &FunctionName,
        alias: &AliasName,
        version: &Version,
        description: &str,
    ) -> Result<AliasState> {
        let out = self
            .client
            .create_alias()
            .function_name(name.as_str())
            .name(alias.as_str())
            .function_version(version.as_str())
            .description(description)
            .send()
            .await
            .map_err(|e| to_deploy_error(e, call("CreateAlias", &format!("{name}:{alias}"))))?;
        Ok(alias_state!(alias, &out))
    }

    async fn update_alias(
        &self,
        name: &FunctionName,
        alias: &AliasName,
        version: &Version,
        description: &str,
        revision_id: &str,
    ) -> Result<AliasState> {
        // An empty weight map removes any canary weight: the alias serves only `version`.
        let no_weights =
            AliasRoutingConfiguration::builder().set_additional_version_weights(Some(HashMap::new())).build();
        let out = self
            .client
            .update_alias()
            .function_name(name.as_str())
            .name(alias.as_str())
            .function_version(version.as_str())
            .description(description)
            .routing_config(no_weights)
            .revision_id(revision_id)
            .send()
            .await
            .map_err(|e| to_deploy_error(e, call("UpdateAlias", &format!("{name}:{alias}"))))?;
        Ok(alias_state!(alias, &out))
    }

    async fn route_alias(
        &self,
        name: &FunctionName,
        alias: &AliasName,
        routing: &Routing,
        description: &str,
        revision_id: &str,
    ) -> Result<AliasState> {
        let weights = HashMap::from([(routing.candidate.as_str().to_string(), routing.weight)]);
        let weighted = AliasRoutingConfiguration::builder().set_additional_version_weights(Some(weights)).build();
        let out = self
            .client
            .update_alias()
            .function_name(name.as_str())
            .name(alias.as_str())
            .function_version(routing.main.as_str())
            .description(description)
            .routing_config(weighted)
            .revision_id(revision_id)
            .send()
            .await
            .map_err(|e| to_deploy_error(e, call("UpdateAlias", &format!("{name}:{alias}"))))?;
        Ok(alias_state!(alias, &out))
    }

    async fn invoke(&self, name: &FunctionName, qualifier: &str, payload: &[u8]) -> Result<Invocation> {
        let started = Instant::now();
        let result = self
            .client
            .invoke()
            .function_name(name.as_str())
            .qualifier(qualifier)
            .invocation_type(InvocationType::RequestResponse)
            .payload(Blob::new(payload))
            .send()
            .await;
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let out = result.map_err(|e| to_deploy_error(e, call("Invoke", &format!("{name}:{qualifier}"))))?;
        Ok(Invocation {
            payload: out.payload().map(|p| p.as_ref().to_vec()).unwrap_or_default(),
            function_error: out.function_error().map(str::to_string),
            executed_version: out.executed_version().unwrap_or_default().to_string(),
            latency_ms,
        })
    }
}
