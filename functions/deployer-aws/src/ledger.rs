//! [`DeploymentLedger`] over a DynamoDB table keyed by `function` (partition) and `sk` (sort).
//!
//! - `sk = "lock"`: the function's deployment lock: `owner` (an execution name), `expiresAt` (N, ms), and
//!   the queue behind it: `pending` (the newest image pushed meanwhile, JSON) and `pendingBy` (the execution
//!   that queued it). Taken with one conditional UpdateItem (free, expired, or already the owner's: the
//!   queue stays), released with a conditional DeleteItem (only by its owner, only with nothing queued), or
//!   handed over with a conditional UpdateItem that names the next owner and takes the queued image off
//!   (`handedOverBy` says who handed it on, `handedOver` which image, until the next owner takes it). A push queues its image with a conditional UpdateItem that
//!   holds only while the lock's holder still holds it: an image is never queued behind a lock just freed.
//!   Two executions can never both hold the lock, and no queued image is lost between two holders.
//! - `sk = "record#<execution end, ms since the epoch, 15 digits>#<execution>"`: one item per execution (a
//!   retried Finish overwrites its own), the record as JSON in `record`, newest last in key order (queried
//!   in reverse). A record that does not read is an error, never skipped: the rollback's list of good
//!   versions and the superseded check are read from these.
//! - `sk = "command#<execution>"`: an operator's `promote` or `abort` for a running execution, with
//!   `reason`; expires (DynamoDB TTL attribute `ttl`, seconds) a day after it was sent.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use deployer_core::ids::FunctionName;
use deployer_core::model::{Command, DeploymentRecord, LockOutcome, LockState, PendingImage};
use deployer_core::ports::{DeploymentLedger, Result};
use deployer_core::DeployError;

use crate::errors::{to_deploy_error, Call, DYNAMODB};

const LOCK: &str = "lock";
const RECORD: &str = "record#";
const COMMAND: &str = "command#";
/// The lock item's attributes for the image queued behind it (JSON), who queued it, and who handed it on.
const PENDING: &str = "pending";
const PENDING_BY: &str = "pendingBy";
const HANDED_OVER_BY: &str = "handedOverBy";
const HANDED_OVER: &str = "handedOver";

#[derive(Debug, Clone)]
pub struct DynamoLedger {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoLedger {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoLedger { client, table: table.into() }
    }

    pub fn from_sdk(sdk: &aws_config::SdkConfig, table: &str) -> Self {
        DynamoLedger::new(aws_sdk_dynamodb::Client::new(sdk), table)
    }

    /// One item of the function's, read consistently.
    async fn get(&self, function: &FunctionName, sk: &str) -> Result<Option<HashMap<String, AttributeValue>>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(function, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| to_deploy_error(e, Call { service: DYNAMODB, operation: "GetItem", resource: &self.table }))?;
        Ok(out.item)
    }

    fn key(function: &FunctionName, sk: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("function".to_string(), AttributeValue::S(function.to_string())),
            ("sk".to_string(), AttributeValue::S(sk.to_string())),
        ])
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

impl DeploymentLedger for DynamoLedger {
    async fn acquire(
        &self,
        function: &FunctionName,
        owner: &str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<LockOutcome> {
        // UpdateItem, not PutItem: an image queued behind the lock stays on it.
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(function, LOCK)))
            .update_expression("SET #owner = :owner, #exp = :exp, #at = :now REMOVE #handed, #image")
            .condition_expression("attribute_not_exists(#owner) OR #exp < :now OR #owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#exp", "expiresAt")
            .expression_attribute_names("#at", "acquiredAt")
            .expression_attribute_names("#handed", HANDED_OVER_BY)
            .expression_attribute_names("#image", HANDED_OVER)
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":exp", n(expires_at_ms))
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        match update {
            Ok(_) => Ok(LockOutcome::Acquired),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                match self.holder(function).await? {
                    Some((owner, expires_at_ms)) => Ok(LockOutcome::Held { owner, expires_at_ms }),
                    // Released between the two calls: a lost race, which the step's retry (re-reading) wins.
                    None => Err(DeployError::PreconditionFailed {
                        resource: format!("{function}'s lock in {}", self.table),
                        message: "it was released between the conditional write and the read of its holder".into(),
                    }),
                }
            }
            Err(e) => {
                Err(to_deploy_error(e, Call { service: DYNAMODB, operation: "UpdateItem", resource: &self.table }))
            }
        }
    }

    async fn release(&self, function: &FunctionName, owner: &str, dropping: Option<&str>) -> Result<bool> {
        let mut delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(function, LOCK)))
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#by", PENDING_BY)
            .expression_attribute_values(":owner", s(owner));
        delete = match dropping {
            None => delete.condition_expression("#owner = :owner AND attribute_not_exists(#by)"),
            Some(by) => delete
                .condition_expression("#owner = :owner AND (attribute_not_exists(#by) OR #by = :by)")
                .expression_attribute_values(":by", s(by)),
        };
        match delete.send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => {
                Err(to_deploy_error(e, Call { service: DYNAMODB, operation: "DeleteItem", resource: &self.table }))
            }
        }
    }

    async fn lock_state(&self, function: &FunctionName) -> Result<Option<LockState>> {
        let Some(item) = self.get(function, LOCK).await? else { return Ok(None) };
        let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
        // Every write of the lock item sets both: one without them is not a free lock but a broken item.
        let corrupt = |what: &str| {
            DeployError::invalid(format!(
                "{function}'s lock item in {} (function = {function}, sk = {LOCK}) has {what}: something other than \
                 the deployer wrote it; delete the item once no deployment of {function} is running",
                self.table
            ))
        };
        let owner = text("owner").ok_or_else(|| corrupt("no `owner` string"))?;
        let expires_at_ms = item
            .get("expiresAt")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| corrupt("no numeric `expiresAt`"))?;
        // A queued image that does not read is an error, not an empty queue: it would be lost silently.
        let pending = match text(PENDING) {
            None => None,
            Some(json) => Some(serde_json::from_str::<PendingImage>(&json).map_err(|e| {
                DeployError::invalid(format!(
                    "the image queued behind {function}'s lock in {} does not read ({e}): {json}",
                    self.table
                ))
            })?),
        };
        let handed_over = match (text(HANDED_OVER_BY), text(HANDED_OVER)) {
            (Some(by), Some(json)) => Some((
                by,
                serde_json::from_str::<PendingImage>(&json).map_err(|e| {
                    DeployError::invalid(format!(
                        "the image handed over with {function}'s lock in {} does not read ({e}): {json}",
                        self.table
                    ))
                })?,
            )),
            _ => None,
        };
        Ok(Some(LockState { owner, expires_at_ms, pending, handed_over }))
    }

    async fn put_pending(
        &self,
        function: &FunctionName,
        holder: &str,
        now_ms: i64,
        pending: &PendingImage,
        replacing: Option<&str>,
    ) -> Result<bool> {
        let json = serde_json::to_string(pending).map_err(|e| DeployError::invalid(e.to_string()))?;
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(function, LOCK)))
            .update_expression("SET #pending = :pending, #by = :by")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#exp", "expiresAt")
            .expression_attribute_names("#pending", PENDING)
            .expression_attribute_names("#by", PENDING_BY)
            .expression_attribute_values(":holder", s(holder))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":pending", s(json))
            .expression_attribute_values(":by", s(&pending.queued_by));
        update = match replacing {
            None => update.condition_expression("#owner = :holder AND #exp >= :now AND attribute_not_exists(#by)"),
            Some(old) => update
                .condition_expression("#owner = :holder AND #exp >= :now AND #by = :old")
                .expression_attribute_values(":old", s(old)),
        };
        match update.send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => {
                Err(to_deploy_error(e, Call { service: DYNAMODB, operation: "UpdateItem", resource: &self.table }))
            }
        }
    }

    async fn hand_over(
        &self,
        function: &FunctionName,
        owner: &str,
        pending: &PendingImage,
        next: &str,
        expires_at_ms: i64,
    ) -> Result<bool> {
        let json = serde_json::to_string(pending).map_err(|e| DeployError::invalid(e.to_string()))?;
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(function, LOCK)))
            .update_expression(
                "SET #owner = :next, #exp = :exp, #handed = :owner, #image = :image REMOVE #pending, #by",
            )
            .condition_expression("#owner = :owner AND #by = :by")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#exp", "expiresAt")
            .expression_attribute_names("#handed", HANDED_OVER_BY)
            .expression_attribute_names("#image", HANDED_OVER)
            .expression_attribute_names("#pending", PENDING)
            .expression_attribute_names("#by", PENDING_BY)
            .expression_attribute_values(":next", s(next))
            .expression_attribute_values(":exp", n(expires_at_ms))
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":by", s(&pending.queued_by))
            .expression_attribute_values(":image", s(json))
            .send()
            .await;
        match update {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => {
                Err(to_deploy_error(e, Call { service: DYNAMODB, operation: "UpdateItem", resource: &self.table }))
            }
        }
    }

    async fn record(&self, record: &DeploymentRecord) -> Result<()> {
        let json = serde_json::to_string(record).map_err(|e| DeployError::invalid(e.to_string()))?;
        let mut item =
            Self::key(&record.function, &format!("{RECORD}{:015}#{}", record.finished_at_ms, record.execution));
        item.insert("record".into(), s(json));
        item.insert("execution".into(), s(&record.execution));
        item.insert(
            "outcome".into(),
            s(serde_json::to_value(record.outcome)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()),
        );
        if let Some(v) = &record.version_after {
            item.insert("version".into(), s(v));
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| to_deploy_error(e, Call { service: DYNAMODB, operation: "PutItem", resource: &self.table }))?;
        Ok(())
    }

    async fn history(&self, function: &FunctionName, limit: usize) -> Result<Vec<DeploymentRecord>> {
        let mut records = Vec::new();
        let mut start = None;
        // A page holds at most 1 MB: follow LastEvaluatedKey until `limit` records are read or none are left.
        while records.len() < limit {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#f = :f AND begins_with(#sk, :p)")
                .expression_attribute_names("#f", "function")
                .expression_attribute_names("#sk", "sk")
                .expression_attribute_values(":f", s(function.as_str()))
                .expression_attribute_values(":p", s(RECORD))
                .scan_index_forward(false)
                .limit((limit - records.len()).min(1000) as i32)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| {
                    to_deploy_error(e, Call { service: DYNAMODB, operation: "Query", resource: &self.table })
                })?;
            for item in out.items() {
                records.push(record_of(item, function, &self.table)?);
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        Ok(records)
    }

    async fn send_command(
        &self,
        function: &FunctionName,
        execution: &str,
        command: &Command,
        reason: &str,
    ) -> Result<()> {
        let mut item = Self::key(function, &format!("{COMMAND}{execution}"));
        let word = serde_json::to_value(command).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        item.insert("command".into(), s(word));
        item.insert("reason".into(), s(reason));
        let day_later = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64 + 86_400)
            .unwrap_or(0);
        item.insert("ttl".into(), n(day_later));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| to_deploy_error(e, Call { service: DYNAMODB, operation: "PutItem", resource: &self.table }))?;
        Ok(())
    }

    async fn command(&self, function: &FunctionName, execution: &str) -> Result<Option<(Command, String)>> {
        let sk = format!("{COMMAND}{execution}");
        let Some(item) = self.get(function, &sk).await? else { return Ok(None) };
        // An operator's command that does not read is refused aloud: ignoring it would let a canary the
        // operator meant to stop go on shifting.
        let word = item.get("command").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        let command = serde_json::from_value(serde_json::Value::String(word.clone())).map_err(|_| {
            DeployError::invalid(format!(
                "the command item {sk} for {function} in {} says {word:?}, not \"promote\" or \"abort\": send it \
                 again with `deployctl promote|abort {function}`",
                self.table
            ))
        })?;
        let reason = item.get("reason").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        Ok(Some((command, reason)))
    }
}

/// One record item's record; an item without one, or whose JSON does not read, is an error that names it.
fn record_of(item: &HashMap<String, AttributeValue>, function: &FunctionName, table: &str) -> Result<DeploymentRecord> {
    let sk = item.get("sk").and_then(|v| v.as_s().ok()).map(String::as_str).unwrap_or("?");
    let broken = |what: String| {
        DeployError::invalid(format!(
            "the deployment record {sk} of {function} in {table} {what}: the history (and the versions a rollback \
             may go to) cannot be read past it; restore the item from the table's backups or delete it"
        ))
    };
    let json = item.get("record").and_then(|v| v.as_s().ok()).ok_or_else(|| broken("has no `record` string".into()))?;
    serde_json::from_str(json).map_err(|e| broken(format!("does not read ({e})")))
}
