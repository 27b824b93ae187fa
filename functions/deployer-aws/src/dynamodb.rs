//! [`TargetStore`] over a DynamoDB table.
//!
//! One item per target: `function` (S, the partition key), `spec` (S, the target spec as JSON) and
//! `updatedAt` (S, RFC 3339 UTC). A stored spec is parsed and validated again on every read, so a spec
//! that the current rules refuse is reported, never deployed.

use std::collections::HashMap;
use std::time::SystemTime;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::date_time::{DateTime, Format};
use deployer_core::ids::FunctionName;
use deployer_core::ports::{Result, TargetStore};
use deployer_core::spec::{self, TargetSpec};
use deployer_core::DeployError;

use crate::errors::{aws_message, to_deploy_error, Call, Classify, Kind, SdkError, DYNAMODB};

const KEY: &str = "function";
const SPEC: &str = "spec";
const UPDATED_AT: &str = "updatedAt";

type Item = HashMap<String, AttributeValue>;

/// The deployment targets, in the table named at construction.
#[derive(Debug, Clone)]
pub struct DynamoTargetStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoTargetStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoTargetStore { client, table: table.into() }
    }

    /// Every DynamoDB error of this store: a missing table is a deployment mistake, named as such.
    fn error<E: Classify>(&self, err: SdkError<E>, operation: &'static str) -> DeployError {
        match err.as_service_error() {
            Some(e) if e.kind() == Kind::NotFound => DeployError::AwsRefused {
                service: DYNAMODB,
                operation,
                message: format!("table {} does not exist in this account/region: {}", self.table, aws_message(e)),
            },
            _ => to_deploy_error(err, Call { service: DYNAMODB, operation, resource: &self.table }),
        }
    }
}

fn key(function: &str) -> (String, AttributeValue) {
    (KEY.to_string(), AttributeValue::S(function.to_string()))
}

fn string<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

fn parse_item(item: &Item) -> Result<TargetSpec> {
    let function = string(item, KEY).unwrap_or("(no function attribute)");
    let json = string(item, SPEC).ok_or_else(|| {
        DeployError::invalid(format!("the stored target {function} has no {SPEC:?} string attribute; put it again"))
    })?;
    spec::parse(json).map_err(|e| {
        DeployError::invalid(format!(
            "the stored target spec of {function} no longer parses; fix and put it again: {e}"
        ))
    })
}

impl TargetStore for DynamoTargetStore {
    async fn get(&self, function: &FunctionName) -> Result<Option<TargetSpec>> {
        let (k, v) = key(function.as_str());
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(k, v)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error(e, "GetItem"))?;
        out.item().map(parse_item).transpose()
    }

    async fn list(&self) -> Result<Vec<TargetSpec>> {
        let mut specs = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.error(e, "Scan"))?;
            for item in out.items() {
                specs.push(parse_item(item)?);
            }
            match out.last_evaluated_key() {
                Some(last) if !last.is_empty() => start = Some(last.clone()),
                _ => return Ok(specs),
            }
        }
    }

    async fn put(&self, spec: &TargetSpec) -> Result<()> {
        // Store only what get() can read back.
        spec.validate()?;
        let json = serde_json::to_string(spec)
            .map_err(|e| DeployError::invalid(format!("target spec of {}: {e}", spec.function)))?;
        let now = DateTime::from(SystemTime::now())
            .fmt(Format::DateTime)
            .map_err(|e| DeployError::invalid(format!("the clock: {e}")))?;
        let (k, v) = key(spec.function.as_str());
        self.client
            .put_item()
            .table_name(&self.table)
            .item(k, v)
            .item(SPEC, AttributeValue::S(json))
            .item(UPDATED_AT, AttributeValue::S(now))
            .send()
            .await
            .map_err(|e| self.error(e, "PutItem"))?;
        Ok(())
    }

    async fn delete(&self, function: &FunctionName) -> Result<()> {
        let (k, v) = key(function.as_str());
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(k, v)
            .send()
            .await
            .map_err(|e| self.error(e, "DeleteItem"))?;
        Ok(())
    }
}
