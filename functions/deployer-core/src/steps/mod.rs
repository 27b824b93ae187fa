//! One async function per Task state. Each reads what it needs through the ports, decides with
//! [`crate::decisions`], acts, and logs one INFO line with the outcome.

mod acceptance;
mod check_ready;
mod finish;
mod prepare;
mod provision;
mod publish;
mod queue;
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
pub use queue::{let_go, queue_behind, LetGo, QueueResult, HANDOVER_TTL_MS};
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

/// Refuse to act for `execution` unless it holds `function`'s deployment lock. An execution holds it from
/// Prepare to Finish; one that ended (its lock released or handed on) and was then redriven resumes with
/// a plan another deployment may have overtaken: it must not move the alias or publish over that one.
pub(crate) async fn still_holds(
    ledger: &impl crate::ports::DeploymentLedger,
    function: &crate::ids::FunctionName,
    execution: &str,
    now_ms: i64,
) -> Result<(), crate::DeployError> {
    let lock = ledger.lock_state(function).await?;
    let holder = match &lock {
        Some(l) if l.owner == execution && l.expires_at_ms >= now_ms => return Ok(()),
        Some(l) if l.owner == execution => format!("its lock expired {} s ago", (now_ms - l.expires_at_ms) / 1000),
        Some(l) => format!("{} holds it", l.owner),
        None => "nobody holds it".to_string(),
    };
    Err(crate::DeployError::LockLost {
        function: function.to_string(),
        execution: execution.to_string(),
        holder,
        what: format!(
            "if it was redriven after it ended, start a new deployment instead (`deployctl deploy {function} \
             --digest ...`); `deployctl status {function}` shows what runs"
        ),
    })
}
