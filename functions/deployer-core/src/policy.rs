//! The deployer stack's own policy: what its parameters allow a target to be. The stack's IAM policies say
//! the same (the step roles may write only to `<TargetFunctionPrefix>*` functions, pass only
//! `<TargetRolePrefix>*` roles of the stack's account, read and tag only the allowed repositories), but IAM
//! answers a call with AccessDenied halfway through a deployment: the deployer refuses a target that breaks
//! the policy before anything is stored (`deployctl target validate`/`apply`) and again before anything
//! changes (Prepare, and the trigger's reconcile), each problem naming the parameter and its value.

use crate::spec::TargetSpec;
use crate::DeployError;

/// The environment variables that carry the policy to the steps (set by the template).
pub const FUNCTION_PREFIX_VAR: &str = "TARGET_FUNCTION_PREFIX";
pub const ROLE_PREFIX_VAR: &str = "TARGET_ROLE_PREFIX";
pub const REPOSITORIES_VAR: &str = "ALLOWED_REPOSITORIES";
pub const ALARM_PREFIX_VAR: &str = "GATE_ALARM_PREFIX";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackPolicy {
    /// The stack's account: a target's execution role must be one of its roles.
    pub account: String,
    /// `TargetFunctionPrefix`.
    pub function_prefix: String,
    /// `TargetRolePrefix` (a prefix of what follows `:role/` in the role's ARN, its path included).
    pub role_prefix: String,
    /// `AllowedRepositories`.
    pub repositories: Vec<String>,
    /// `GateAlarmPrefix` (empty: any alarm).
    pub alarm_prefix: String,
}

impl StackPolicy {
    /// The policy from the step's environment (`var` reads one variable) and the account it runs in.
    pub fn from_env(account: &str, var: impl Fn(&str) -> Option<String>) -> Result<StackPolicy, DeployError> {
        let need = |name: &str| {
            var(name).ok_or_else(|| {
                DeployError::invalid(format!(
                    "environment variable {name} is not set: the stack's template sets it from its parameters"
                ))
            })
        };
        let policy = StackPolicy {
            account: account.to_string(),
            function_prefix: need(FUNCTION_PREFIX_VAR)?,
            role_prefix: need(ROLE_PREFIX_VAR)?,
            repositories: need(REPOSITORIES_VAR)?
                .split(',')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_string)
                .collect(),
            alarm_prefix: var(ALARM_PREFIX_VAR).unwrap_or_default(),
        };
        if policy.function_prefix.is_empty() || policy.role_prefix.is_empty() {
            return Err(DeployError::invalid(format!(
                "{FUNCTION_PREFIX_VAR} and {ROLE_PREFIX_VAR} must not be empty (the template requires both)"
            )));
        }
        if !(policy.account.len() == 12 && policy.account.bytes().all(|b| b.is_ascii_digit())) {
            return Err(DeployError::invalid(format!("{:?} is not an AWS account ID", policy.account)));
        }
        Ok(policy)
    }

    /// Every way `spec` breaks the policy, as (field, why), in field order.
    pub fn problems(&self, spec: &TargetSpec) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let function = spec.function.as_str();
        if !function.starts_with(&self.function_prefix) {
            out.push((
                "function".to_string(),
                format!(
                    "{function:?} does not start with the stack's TargetFunctionPrefix {:?}: the deployer manages \
                     only functions named {}*",
                    self.function_prefix, self.function_prefix
                ),
            ));
        }
        if !self.repositories.iter().any(|r| r == spec.repository.as_str()) {
            out.push((
                "repository".to_string(),
                format!(
                    "{:?} is not among the stack's AllowedRepositories ({}): add it to the parameter (which also \
                     lets its pushes reach the deployer) or deploy from an allowed repository",
                    spec.repository.as_str(),
                    if self.repositories.is_empty() { "none".to_string() } else { self.repositories.join(", ") }
                ),
            ));
        }
        let role = &spec.configuration.role;
        // arn:<partition>:iam::<account>:role/<path and name>, already checked for shape by the spec.
        let account = role.split(':').nth(4).unwrap_or_default();
        let name = role.split_once(":role/").map(|(_, n)| n).unwrap_or_default();
        if account != self.account {
            out.push((
                "configuration.role".to_string(),
                format!(
                    "{role:?} is a role of account {account}; the deployer passes only roles of its own account {}",
                    self.account
                ),
            ));
        } else if !name.starts_with(&self.role_prefix) {
            out.push((
                "configuration.role".to_string(),
                format!(
                    "{role:?}: role {name:?} does not start with the stack's TargetRolePrefix {:?} (the only roles \
                     the deployer may pass to a function)",
                    self.role_prefix
                ),
            ));
        }
        if let Some(group) = &spec.configuration.logging.log_group {
            let allowed = format!("/aws/lambda/{}", self.function_prefix);
            if !group.starts_with(&allowed) {
                out.push((
                    "configuration.logging.logGroup".to_string(),
                    format!(
                        "{group:?} does not start with {allowed:?}: the deployer creates only the log groups of \
                             the functions it manages (TargetFunctionPrefix {:?})",
                        self.function_prefix
                    ),
                ));
            }
        }
        if let Some(a) = &spec.acceptance {
            if !a.project.starts_with(&self.function_prefix) {
                out.push((
                    "acceptance.project".to_string(),
                    format!(
                        "{:?} does not start with the stack's TargetFunctionPrefix {:?}: the deployer starts only \
                         the CodeBuild projects named like the functions it manages",
                        a.project, self.function_prefix
                    ),
                ));
            }
        }
        for (i, alarm) in spec.gates.alarms.iter().enumerate() {
            if !alarm.starts_with(&self.alarm_prefix) {
                out.push((
                    format!("gates.alarms[{i}]"),
                    format!(
                        "{alarm:?} does not start with the stack's GateAlarmPrefix {:?}: the health gates may read \
                         only those alarms",
                        self.alarm_prefix
                    ),
                ));
            }
        }
        out
    }

    /// Refuse `spec` if it breaks the policy, listing every problem.
    pub fn check(&self, spec: &TargetSpec) -> Result<(), DeployError> {
        let problems = self.problems(spec);
        if problems.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = problems.iter().map(|(f, why)| format!("{f}: {why}")).collect();
        Err(DeployError::invalid(format!(
            "target {} is outside the deployer stack's policy ({} problem(s)):\n- {}",
            spec.function,
            list.len(),
            list.join("\n- ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy() -> StackPolicy {
        let env = |k: &str| {
            match k {
                FUNCTION_PREFIX_VAR => Some("ml-"),
                ROLE_PREFIX_VAR => Some("ml-"),
                REPOSITORIES_VAR => Some("ml-inference,ml-batch"),
                ALARM_PREFIX_VAR => Some("ml-"),
                _ => None,
            }
            .map(str::to_string)
        };
        StackPolicy::from_env("123456789012", env).unwrap()
    }

    fn spec(patch: serde_json::Value) -> TargetSpec {
        let mut doc = json!({
            "function": "ml-inference", "repository": "ml-inference", "tagPattern": "^sha-",
            "configuration": {"role": "arn:aws:iam::123456789012:role/ml-inference"},
            "smokeTest": {"cases": [{"name": "a", "payload": {}}]}
        });
        for (k, v) in patch.as_object().unwrap() {
            if k == "role" {
                doc["configuration"]["role"] = v.clone();
            } else {
                doc[k] = v.clone();
            }
        }
        crate::spec::parse(&doc.to_string()).unwrap()
    }

    #[test]
    fn a_target_inside_the_policy_passes() {
        assert_eq!(policy().check(&spec(json!({}))), Ok(()));
        assert_eq!(policy().check(&spec(json!({"role": "arn:aws:iam::123456789012:role/ml-svc/reader"}))), Ok(()));
    }

    #[test]
    fn each_breach_names_the_field_the_parameter_and_its_value() {
        let cases = [
            (
                json!({"function": "payments-api"}),
                "function: \"payments-api\" does not start with the stack's TargetFunctionPrefix \"ml-\"",
            ),
            (
                json!({"repository": "other"}),
                "repository: \"other\" is not among the stack's AllowedRepositories (ml-inference, ml-batch)",
            ),
            (
                json!({"role": "arn:aws:iam::123456789012:role/admin"}),
                "role \"admin\" does not start with the stack's TargetRolePrefix \"ml-\"",
            ),
            (
                json!({"role": "arn:aws:iam::999999999999:role/ml-x"}),
                "is a role of account 999999999999; the deployer passes only roles of its own account 123456789012",
            ),
            (
                json!({"acceptance": {"project": "it-suite"}}),
                "acceptance.project: \"it-suite\" does not start with the stack's TargetFunctionPrefix",
            ),
            (
                json!({"gates": {"alarms": ["ml-ok", "billing"]}}),
                "gates.alarms[1]: \"billing\" does not start with the stack's GateAlarmPrefix \"ml-\"",
            ),
        ];
        for (patch, want) in cases {
            let got = policy().check(&spec(patch.clone())).unwrap_err().to_string();
            assert!(got.contains(want), "{patch}: {got}");
            assert!(got.contains("outside the deployer stack's policy (1 problem(s))"), "{patch}: {got}");
        }
    }

    #[test]
    fn a_missing_variable_is_named() {
        let err = StackPolicy::from_env("123456789012", |_| None).unwrap_err().to_string();
        assert!(err.contains("TARGET_FUNCTION_PREFIX is not set"), "{err}");
    }
}
