//! [`DeploymentLedger`] over a DynamoDB table keyed by `function` (partition) and `sk` (sort).
//!
//! - `sk = "lock"`: the function's deployment lock: `owner` (an execution name), `expiresAt` (N, ms).
//!   Taken with one conditional PutItem (free, expired, or already the owner's) and released with a
//!   conditional DeleteItem (only by its owner), so two executions can never both hold it.
//! - `sk = "record#<execution start, ISO 8601>#<execution>"`: one item per execution (a retried Finish
//!   overwrites its own), the record as JSON in `record`, newest last in key order (queried in reverse).
//! - `sk = "command#<execution>"`: an operator's `promote` or `abort` for a running execution, with
//!   `reason`; expires (DynamoDB TTL attribute `ttl`, seconds) a day after it was sent.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use deployer_core::ids::FunctionName;
use deployer_core::plan::DeploymentRecord;
use deployer_core::ports::{Command, DeploymentLedger, LockOutcome, Result};
use deployer_core::DeployError;

use crate::errors::{to_deploy_error, Call, DYNAMODB};

const LOCK: &str = "lock";
const RECORD: &str = "record#";
const COMMAND: &str = "command#";

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
        let mut item = Self::key(function, LOCK);
        item.insert("owner".into(), s(owner));
        item.insert("expiresAt".into(), n(expires_at_ms));
        item.insert("acquiredAt".into(), n(now_ms));
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#sk) OR #exp < :now OR #owner = :owner")
            .expression_attribute_names("#sk", "sk")
            .expression_attribute_names("#exp", "expiresAt")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        match put {
            Ok(_) => Ok(LockOutcome::Acquired),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                match self.holder(function).await? {
                    Some((owner, expires_at_ms)) => Ok(LockOutcome::Held { owner, expires_at_ms }),
                    // Released between the two calls: the caller's retry takes it.
                    None => Err(DeployError::Throttled {
                        service: DYNAMODB,
                        message: "lock released while reading it".into(),
                    }),
                }
            }
            Err(e) => Err(to_deploy_error(e, Call { service: DYNAMODB, operation: "PutItem", resource: &self.table })),
        }
    }

    async fn release(&self, function: &FunctionName, owner: &str) -> Result<bool> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(function, LOCK)))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => {
                Err(to_deploy_error(e, Call { service: DYNAMODB, operation: "DeleteItem", resource: &self.table }))
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
            .limit(limit.clamp(1, 1000) as i32)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| to_deploy_error(e, Call { service: DYNAMODB, operation: "Query", resource: &self.table }))?;
        let mut records = Vec::new();
        for item in out.items() {
            let Some(json) = item.get("record").and_then(|v| v.as_s().ok()) else { continue };
            match serde_json::from_str::<DeploymentRecord>(json) {
                Ok(r) => records.push(r),
                Err(e) => {
                    tracing::warn!(function = %function, error = %e, "a deployment record does not parse; skipped")
                }
            }
        }
        Ok(records)
    }

    async fn holder(&self, function: &FunctionName) -> Result<Option<(String, i64)>> {
        Ok(self.get(function, LOCK).await?.and_then(|i| {
            let owner = i.get("owner").and_then(|v| v.as_s().ok())?.clone();
            let expires = i.get("expiresAt").and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or(0);
            Some((owner, expires))
        }))
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
        Ok(self.get(function, &format!("{COMMAND}{execution}")).await?.and_then(|i| {
            let word = i.get("command").and_then(|v| v.as_s().ok())?;
            let command = serde_json::from_value(serde_json::Value::String(word.clone())).ok()?;
            let reason = i.get("reason").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            Some((command, reason))
        }))
    }
}
