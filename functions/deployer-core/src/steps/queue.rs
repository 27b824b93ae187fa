//! The queue per function, newest wins. A push that finds another deployment of its function running
//! leaves its image on the function's lock (the pending image) and its execution ends `queued`; a newer
//! push replaces it (the replaced one is recorded `superseded`). When the running deployment lets go of the
//! lock (whatever its outcome, or however it stopped), it hands the lock straight to a new execution of the
//! pending image. Every write is conditional on the lock's holder, so no image is queued behind a lock just
//! freed and no hand-over happens twice.

use serde::{Deserialize, Serialize};

use crate::decisions::{next_attempt, replaces_in_queue};
use crate::ids::FunctionName;
use crate::model::{PendingImage, StartOutcome};
use crate::plan::{DeployRequest, ExecutionInput, QueuedStart};
use crate::ports::{DeploymentLedger, Executions, TargetStore};
use crate::DeployError;

/// How long a handed-over lock waits for its new owner's Prepare to take it (which then extends it to the
/// deployment's own budget). Past it, a start that never ran frees the function again.
pub const HANDOVER_TTL_MS: i64 = 15 * 60 * 1000;

/// How often a conditional write that lost a race is tried again before the step fails (and is retried).
const RACES: usize = 5;

/// What queueing an image behind `holder` came to.
#[derive(Debug, Clone, PartialEq)]
pub enum QueueResult {
    /// Queued; `replaced` is the image that waited before (now superseded).
    Queued { replaced: Option<PendingImage> },
    /// The same image already waits (queued by another execution).
    AlreadyQueued { by: String },
    /// An image that outranks this one waits: this one is superseded by it.
    Outranked { by: PendingImage },
    /// `holder` no longer holds the lock: take it instead.
    LockMoved,
}

/// Leave `pending` on the function's lock while `holder` holds it, newest wins
/// ([`replaces_in_queue`]).
pub async fn queue_behind(
    ledger: &impl DeploymentLedger,
    function: &FunctionName,
    holder: &str,
    pending: &PendingImage,
    now_ms: i64,
) -> Result<QueueResult, DeployError> {
    for _ in 0..RACES {
        let Some(state) = ledger.lock_state(function).await? else { return Ok(QueueResult::LockMoved) };
        if state.owner != holder || state.expires_at_ms < now_ms {
            return Ok(QueueResult::LockMoved);
        }
        match &state.pending {
            Some(p) if p.image_digest == pending.image_digest => {
                return Ok(QueueResult::AlreadyQueued { by: p.queued_by.clone() })
            }
            Some(p) if !replaces_in_queue(pending, p) => return Ok(QueueResult::Outranked { by: p.clone() }),
            waiting => {
                let replacing = waiting.as_ref().map(|p| p.queued_by.as_str());
                if ledger.put_pending(function, holder, now_ms, pending, replacing).await? {
                    return Ok(QueueResult::Queued { replaced: waiting.clone() });
                }
            }
        }
    }
    Err(DeployError::PreconditionFailed {
        resource: format!("{function}'s queue"),
        message: format!("it changed {RACES} times while this push was being queued"),
    })
}

/// What [`let_go`] did with the lock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "lock")]
pub enum LetGo {
    /// This execution did not hold it (a queued execution, or one whose lock someone else took).
    NotHeld,
    /// Released: nothing was waiting.
    Released,
    /// Handed to the pending image's new execution, which was started.
    HandedOver { execution: String, image: String, started: bool },
    /// The image that waited cannot be deployed (its function is no longer a target): dropped, and why.
    Dropped { image: String, reason: String },
}

/// Let go of the function's lock as `me` ends: release it, or hand it straight to a new execution of the
/// image waiting behind it. A retry (this step's, or EventBridge's for a stopped execution) finds its own
/// hand-over and starts the same execution again, which Step Functions starts once.
pub async fn let_go(
    ledger: &impl DeploymentLedger,
    store: &impl TargetStore,
    executions: &impl Executions,
    function: &FunctionName,
    me: &str,
    now_ms: i64,
) -> Result<LetGo, DeployError> {
    for _ in 0..RACES {
        let Some(state) = ledger.lock_state(function).await? else { return Ok(LetGo::NotHeld) };
        if state.owner != me {
            // Handed over by this execution already (a retry): start the next one again.
            return match state.handed_over {
                Some((by, image)) if by == me => start(ledger, executions, function, me, &state.owner, &image).await,
                _ => Ok(LetGo::NotHeld),
            };
        }
        let Some(pending) = state.pending else {
            if ledger.release(function, me, None).await? {
                return Ok(LetGo::Released);
            }
            continue; // an image was queued meanwhile
        };
        // The function's spec may have been deleted while the image waited: nothing can deploy it. A failed
        // read fails the step (it is retried), never reads as "not a target".
        if store.get(function).await?.is_none() {
            let reason = format!(
                "{function} is no longer a deployment target, so the image queued by {} ({}) cannot be deployed; \
                 it was dropped from the queue. Register the target again (`deployctl target apply`) and deploy \
                 it (`deployctl deploy {function} --digest {}`)",
                pending.queued_by, pending.image_digest, pending.image_digest
            );
            if ledger.release(function, me, Some(&pending.queued_by)).await? {
                tracing::warn!(%function, execution = %me, %reason, "queued image dropped");
                return Ok(LetGo::Dropped { image: pending.image_digest.to_string(), reason });
            }
            continue;
        }
        let next = next_attempt(&pending.queued_by, function, &pending.image_digest);
        if ledger.hand_over(function, me, &pending, &next, now_ms + HANDOVER_TTL_MS).await? {
            return start(ledger, executions, function, me, &next, &pending).await;
        }
    }
    Err(DeployError::PreconditionFailed {
        resource: format!("{function}'s lock"),
        message: format!("it changed {RACES} times while {me} let go of it"),
    })
}

async fn start(
    ledger: &impl DeploymentLedger,
    executions: &impl Executions,
    function: &FunctionName,
    me: &str,
    next: &str,
    image: &PendingImage,
) -> Result<LetGo, DeployError> {
    let request = ExecutionInput::Deploy(DeployRequest {
        target: function.clone(),
        repository: image.repository.clone(),
        image_digest: image.image_digest.clone(),
        image_tag: Some(image.image_tag.clone()),
        queued: Some(QueuedStart { queued_by: image.queued_by.clone(), after: me.to_string() }),
    });
    let input = serde_json::to_string(&request).map_err(|e| DeployError::invalid(e.to_string()))?;
    let started = match executions.start(next, &input).await? {
        StartOutcome::Started { .. } => true,
        StartOutcome::AlreadyStarted => {
            // Running with this input already (a retry), or the name is taken by an execution that ended:
            // then the image cannot start under it, and the lock must not wait for it. The reconcile deploys
            // the newest image the alias does not serve.
            if ledger.release(function, next, None).await? {
                tracing::error!(%function, execution = %next, image = %image.image_digest,
                    "the queued image's execution name is taken by an ended execution: lock released; the reconcile deploys it");
            }
            false
        }
    };
    tracing::warn!(%function, from = %me, execution = %next, image = %image.image_digest, started,
        "lock handed to the queued image's deployment");
    Ok(LetGo::HandedOver { execution: next.to_string(), image: image.image_digest.to_string(), started })
}
