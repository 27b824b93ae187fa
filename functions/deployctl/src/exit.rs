//! How deployctl ends: one exit code per outcome, and one line that says what went wrong and what to do.

use deployer_core::DeployError;

/// The exit codes (`deployctl --help` lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Deployed, rolled back, stored, sent: what was asked for happened.
    Done = 0,
    /// An execution failed (rolled back, rollback failed), or AWS could not be read or written.
    Failed = 1,
    /// The command line was wrong (clap uses 2 for its own usage errors as well).
    Usage = 2,
    /// Nothing to do: the image is already live, or a newer one is (superseded).
    NothingToDo = 3,
    /// The deployer refused the request (bad input, unknown target or image): nothing was changed.
    Refused = 4,
}

/// An error that decides deployctl's exit code.
#[derive(Debug)]
pub struct Ended {
    pub exit: Exit,
    pub message: String,
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Ended {}

pub fn usage(message: impl Into<String>) -> anyhow::Error {
    Ended { exit: Exit::Usage, message: message.into() }.into()
}

pub fn ended(exit: Exit, message: impl Into<String>) -> anyhow::Error {
    Ended { exit, message: message.into() }.into()
}

/// A command-line value that does not parse (a function name, a digest, a version) is a usage error.
pub trait Arg<T> {
    fn arg(self, what: &str) -> anyhow::Result<T>;
}

impl<T> Arg<T> for Result<T, DeployError> {
    fn arg(self, what: &str) -> anyhow::Result<T> {
        self.map_err(|e| usage(format!("{what}: {e}")))
    }
}

/// Where deployctl talks to AWS, for the messages.
pub struct Place<'a> {
    pub stack: &'a str,
    pub endpoint: Option<&'a str>,
}

/// The exit code and the line to print for `err`: AWS's answers that a new user meets first (no endpoint
/// to reach, no credentials, no such stack, not allowed) say what to do; `verbose` adds the whole chain.
pub fn report(err: &anyhow::Error, place: &Place<'_>, verbose: bool) -> (Exit, String) {
    let full = format!("{err:#}");
    if let Some(e) = err.downcast_ref::<Ended>() {
        return (e.exit, full);
    }
    let line = err.chain().find_map(|cause| cause.downcast_ref::<DeployError>()).and_then(|e| hint(e, place));
    match line {
        Some(line) if verbose => (Exit::Failed, format!("{line}\n  detail: {full}")),
        Some(line) => (Exit::Failed, format!("{line} (--verbose shows AWS's answer)")),
        None => (Exit::Failed, full),
    }
}

fn hint(err: &DeployError, place: &Place<'_>) -> Option<String> {
    let text = err.to_string();
    let endpoint = place.endpoint.map(|e| format!("at {e}")).unwrap_or_else(|| "in the region's endpoint".into());
    if text.contains("credential") || text.contains("Credential") {
        return Some(
            "no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (for local AWS: \
             eval \"$(scripts/local-aws env)\"), and AWS_REGION"
                .to_string(),
        );
    }
    match err {
        DeployError::AwsUnavailable { service, .. }
            if text.contains("dispatch failure") || text.contains("timed out") || text.contains("timeout") =>
        {
            Some(format!(
                "cannot reach {service} {endpoint}: check AWS_ENDPOINT_URL and AWS_REGION (for local AWS: \
                 `scripts/local-aws start`, then eval \"$(scripts/local-aws env)\")"
            ))
        }
        DeployError::AwsRefused { .. } if text.contains("ResourceNotFoundException") && text.contains(place.stack) => {
            let stack = place.stack;
            Some(format!(
                "no deployer stack {stack} in this account and region (its tables {stack}-targets and \
                 {stack}-deployments do not exist): name it with --stack or DEPLOYER_STACK"
            ))
        }
        DeployError::AwsRefused { service, operation, .. }
            if text.contains("AccessDenied")
                || text.contains("UnrecognizedClient")
                || text.contains("not authorized") =>
        {
            Some(format!(
                "{service} refused {operation}: these credentials may not operate stack {} (AccessDenied): use a \
                 role with the deployer's operator permissions",
                place.stack
            ))
        }
        _ => None,
    }
}
