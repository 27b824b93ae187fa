//! The deployer stack's policy, as an operator's tool reads it: from the configuration of the stack's
//! Prepare function (`<stack>-prepare`), whose environment carries the stack's parameters. `deployctl`
//! checks a target against exactly what Prepare will enforce, and the two cannot disagree.

use deployer_core::policy::StackPolicy;
use deployer_core::ports::Result;
use deployer_core::DeployError;

use crate::errors::{is_not_found, to_deploy_error, Call, LAMBDA};

/// The policy of the deployer stack `stack`, or None when the account and region have no such stack.
pub async fn policy(sdk: &aws_config::SdkConfig, stack: &str) -> Result<Option<StackPolicy>> {
    let function = format!("{stack}-prepare");
    let out = aws_sdk_lambda::Client::new(sdk).get_function().function_name(&function).send().await;
    let config = match out {
        Ok(c) => c.configuration.ok_or_else(|| DeployError::AwsRefused {
            service: LAMBDA,
            operation: "GetFunction",
            message: format!("{function}: the answer has no Configuration"),
        })?,
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => {
            return Err(to_deploy_error(e, Call { service: LAMBDA, operation: "GetFunction", resource: &function }))
        }
    };
    let arn = config.function_arn().unwrap_or_default();
    let account = arn.split(':').nth(4).unwrap_or_default();
    let vars = config.environment().and_then(|e| e.variables()).cloned().unwrap_or_default();
    StackPolicy::from_env(account, |k| vars.get(k).cloned()).map(Some).map_err(|e| {
        DeployError::invalid(format!(
            "{function} does not carry the stack's policy ({}): is {stack} a deployer stack of this release? Update it",
            e.message()
        ))
    })
}
