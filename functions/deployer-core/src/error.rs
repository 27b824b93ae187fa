//! Errors of the deployer, each with a stable name that the state machine matches.

/// Declares [`DeployError`] and derives each variant's stable name from the variant itself, so the names
/// Step Functions matches ([`DeployError::name`], [`DeployError::NAMES`]) cannot drift from the enum.
macro_rules! deploy_errors {
    (
        $(#[$meta:meta])*
        pub enum $Enum:ident {
            $( $(#[$vmeta:meta])* $Variant:ident { $($field:ident : $ty:ty),* $(,)? } ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        pub enum $Enum {
            $( $(#[$vmeta])* $Variant { $($field: $ty),* } ),*
        }

        impl $Enum {
            /// The stable name Step Functions sees as the error (`errorType`), matched by Retry and Catch:
            /// the variant's own name.
            pub fn name(&self) -> &'static str {
                match self {
                    $( $Enum::$Variant { .. } => stringify!($Variant) ),*
                }
            }

            /// Every name [`Self::name`] can return; the ASL contract test checks `ErrorEquals` against it.
            pub const NAMES: &'static [&'static str] = &[ $( stringify!($Variant) ),* ];
        }
    };
}

deploy_errors! {
/// What went wrong, and what to do about it. Every message names the thing that failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeployError {
    /// Bad event, execution input or target spec. Nothing was changed.
    #[error("invalid input: {message}")]
    InvalidInput { message: String },

    /// The function (or the version asked for) does not exist.
    #[error("{what} not found: {message}")]
    NotFound { what: &'static str, message: String },

    /// Lambda refused a write because an update is still in progress (ResourceConflictException).
    #[error("update in progress on {resource}: {message}; the step is retried once the update ends")]
    UpdateInProgress { resource: String, message: String },

    /// Someone changed the function or alias since this step read it (RevisionId mismatch).
    #[error("{resource} changed while the deployment was reading it ({message}); the step re-reads and retries")]
    PreconditionFailed { resource: String, message: String },

    /// AWS throttled the call.
    #[error("throttled by {service}: {message}")]
    Throttled { service: &'static str, message: String },

    /// AWS failed on its side (5xx, timeout, connection). Retried with backoff.
    #[error("{service} is unavailable: {message}")]
    AwsUnavailable { service: &'static str, message: String },

    /// AWS refused the call for a reason retrying will not fix (permissions, validation).
    #[error("{service} refused {operation}: {message}")]
    AwsRefused { service: &'static str, operation: &'static str, message: String },

    /// The function's update ended in LastUpdateStatus=Failed, or never became ready.
    #[error("the update of {function} failed: {reason}")]
    UpdateFailed { function: String, reason: String },

    /// The candidate answered wrongly or too slowly. `report` lists every mismatch.
    #[error("smoke test failed for {function}: {report}")]
    SmokeTestFailed { function: String, report: String },

    /// Another execution is deploying this function; the state machine waits and tries again.
    #[error("{function} is being deployed by {owner} (lock held until {until}); waiting for it to finish")]
    Locked { function: String, owner: String, until: String },

    /// The rollback itself could not be completed or verified: a human must look.
    #[error("rollback of {function} failed: {message}")]
    RollbackFailed { function: String, message: String },

    /// A health gate failed while traffic was shifting: `report` has the readings and the limits.
    #[error("health gate failed for {function}: {report}")]
    GateFailed { function: String, report: String },

    /// The acceptance stage (the team's integration suite in CodeBuild) failed against the candidate.
    #[error("acceptance tests failed for {function}: {report}")]
    AcceptanceFailed { function: String, report: String },

    /// An operator asked the running deployment to stop (`deployctl abort`).
    #[error("deployment of {function} aborted by an operator: {reason}")]
    Aborted { function: String, reason: String },

    /// The execution no longer holds the function's lock (it ended and was redriven, or its lock expired):
    /// another deployment may own the alias now, so it changes nothing.
    #[error("{execution} no longer holds {function}'s deployment lock ({holder}): it changes nothing more; {what}")]
    LockLost { function: String, execution: String, holder: String, what: String },
}
}

impl DeployError {
    /// Errors the state machine retries in place: transient on AWS's side or a lost race.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            DeployError::UpdateInProgress { .. }
                | DeployError::PreconditionFailed { .. }
                | DeployError::Throttled { .. }
                | DeployError::AwsUnavailable { .. }
        )
    }

    /// The message without the error's own prefix (for quoting inside another message).
    pub fn message(&self) -> String {
        match self {
            DeployError::InvalidInput { message } => message.clone(),
            other => other.to_string(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        DeployError::InvalidInput { message: message.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_a_listed_stable_name() {
        let all = [
            DeployError::invalid("x"),
            DeployError::NotFound { what: "function", message: "x".into() },
            DeployError::UpdateInProgress { resource: "f".into(), message: "x".into() },
            DeployError::PreconditionFailed { resource: "f".into(), message: "x".into() },
            DeployError::Throttled { service: "lambda", message: "x".into() },
            DeployError::AwsUnavailable { service: "lambda", message: "x".into() },
            DeployError::AwsRefused { service: "lambda", operation: "Invoke", message: "x".into() },
            DeployError::UpdateFailed { function: "f".into(), reason: "x".into() },
            DeployError::SmokeTestFailed { function: "f".into(), report: "x".into() },
            DeployError::Locked { function: "f".into(), owner: "e".into(), until: "t".into() },
            DeployError::RollbackFailed { function: "f".into(), message: "x".into() },
            DeployError::GateFailed { function: "f".into(), report: "x".into() },
            DeployError::AcceptanceFailed { function: "f".into(), report: "x".into() },
            DeployError::Aborted { function: "f".into(), reason: "x".into() },
            DeployError::LockLost { function: "f".into(), execution: "e".into(), holder: "h".into(), what: "w".into() },
        ];
        let names: Vec<_> = all.iter().map(DeployError::name).collect();
        assert_eq!(names, DeployError::NAMES);
        let transient: Vec<_> = all.iter().filter(|e| e.is_transient()).map(DeployError::name).collect();
        assert_eq!(transient, ["UpdateInProgress", "PreconditionFailed", "Throttled", "AwsUnavailable"]);
    }
}
