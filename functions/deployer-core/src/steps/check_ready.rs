use crate::budget::{poll_wait_seconds, READY_POLL_CAP_SECONDS};
use crate::decisions::{readiness, Readiness};
use crate::plan::{CheckReadyInput, ReadyOutput, ReadyStatus};
use crate::ports::FunctionApi;
use crate::DeployError;

/// Ready, pending, drifted or failed: one look, no waiting (the state machine's Wait state waits).
pub async fn check_ready(
    lambda: &impl FunctionApi,
    input: CheckReadyInput,
    now_ms: u64,
) -> Result<ReadyOutput, DeployError> {
    let t = &input.plan.target;
    let Some(f) = lambda.get_function(&t.function, None).await? else {
        return Ok(ReadyOutput {
            status: ReadyStatus::Failed,
            reason: Some(format!("function {} no longer exists", t.function)),
            wait_seconds: 0,
        });
    };
    let elapsed = now_ms.saturating_sub(input.update.started_at_ms);
    let timeout = u64::from(t.ready_timeout_seconds) * 1000;
    let (status, reason) =
        match readiness(&f, &t.configuration, &t.log_group(), &input.plan.image_digest, elapsed, timeout) {
            Readiness::Ready => (ReadyStatus::Ready, None),
            Readiness::Pending => (ReadyStatus::Pending, None),
            Readiness::Drifted => (ReadyStatus::Drifted, None),
            Readiness::Failed(reason) => (ReadyStatus::Failed, Some(reason)),
        };
    let wait_seconds = match status {
        ReadyStatus::Pending => poll_wait_seconds(elapsed / 1000, READY_POLL_CAP_SECONDS),
        _ => 0,
    };
    tracing::info!(function = %t.function, ?status, reason = reason.as_deref().unwrap_or(""), wait_seconds, "readiness checked");
    Ok(ReadyOutput { status, reason, wait_seconds })
}
