//! One async function per Task state. Each reads what it needs through the ports, decides with
//! [`crate::decisions`], acts, and logs one INFO line with the outcome.

mod acceptance;
mod check_ready;
mod finish;
mod prepare;
mod provision;
mod publish;
mod rollback;
mod shift;
mod smoke;
mod traffic;
mod trigger;
mod update;

pub use acceptance::acceptance;
pub use check_ready::check_ready;
pub use finish::{
    execution_ended, finish, iso_from_ms, operator_command, CommandRequest, CommandSent, Ended, Finished,
};
pub use prepare::prepare;
pub use provision::{provision, release_provisioned};
pub use publish::publish_version;
pub use rollback::rollback;
pub use shift::shift_alias;
pub use smoke::{run_cases, smoke_test, SmokeRun};
pub use traffic::{check_health, shift_traffic};
pub use trigger::{is_reconcile, reconcile, trigger, Ignored, Started, TriggerReport};
pub use update::{update_function, UpdateInput};

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::DeployError;

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Read a step's input; a malformed one is an InvalidInput that names the field.
pub fn input<T: DeserializeOwned>(step: &str, raw: Value) -> Result<T, DeployError> {
    serde_path_to_error::deserialize(raw)
        .map_err(|e| DeployError::invalid(format!("{step} input: {}: {}", e.path(), e.inner())))
}
