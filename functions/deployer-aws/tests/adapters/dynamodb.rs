use std::collections::HashMap;

use aws_sdk_dynamodb::operation::delete_item::DeleteItemOutput;
use aws_sdk_dynamodb::operation::get_item::{GetItemError, GetItemOutput};
use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
use aws_sdk_dynamodb::operation::scan::ScanOutput;
use aws_sdk_dynamodb::types::error::{ProvisionedThroughputExceededException, ResourceNotFoundException};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use aws_smithy_mocks::mock;
use aws_smithy_types::date_time::{DateTime, Format};
use deployer_aws::DynamoTargetStore;
use deployer_core::ids::FunctionName;
use deployer_core::ports::TargetStore;
use deployer_core::DeployError;
use serde_json::json;

use crate::{meta, spec, spec_json};

const TABLE: &str = "deployer-targets";

type Item = HashMap<String, AttributeValue>;

fn item(function: &str, spec: &str) -> Item {
    HashMap::from([
        ("function".to_string(), AttributeValue::S(function.into())),
        ("spec".to_string(), AttributeValue::S(spec.into())),
        ("updatedAt".to_string(), AttributeValue::S("2026-01-01T00:00:00Z".into())),
    ])
}

fn key_is(key: Option<&Item>, function: &str) -> bool {
    key.is_some_and(|k| {
        k.len() == 1 && k.get("function").and_then(|v| v.as_s().ok()).map(String::as_str) == Some(function)
    })
}

fn name(n: &str) -> FunctionName {
    FunctionName::parse(n).unwrap()
}

#[tokio::test]
async fn get_reads_consistently_and_parses_the_stored_spec() {
    let stored = spec_json("ml-inference").to_string();
    let rule = mock!(Client::get_item)
        .match_requests(|r| {
            r.table_name() == Some(TABLE) && key_is(r.key(), "ml-inference") && r.consistent_read() == Some(true)
        })
        .then_output(move || GetItemOutput::builder().set_item(Some(item("ml-inference", &stored))).build());
    let store = DynamoTargetStore::new(client!(aws_sdk_dynamodb, &rule), TABLE);

    let got = store.get(&name("ml-inference")).await.unwrap();

    assert_eq!(got, Some(spec("ml-inference")));
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn get_of_an_unknown_target_is_none() {
    let rule = mock!(Client::get_item).then_output(|| GetItemOutput::builder().build());
    let store = DynamoTargetStore::new(client!(aws_sdk_dynamodb, &rule), TABLE);

    assert_eq!(store.get(&name("nobody")).await.unwrap(), None);
}

#[tokio::test]
async fn a_stored_spec_that_no_longer_parses_is_invalid_input_naming_the_function_and_the_problem() {
    let mut doc = spec_json("ml-inference");
    doc["configuration"]["memoryMb"] = json!(64);
    let stored = doc.to_string();
    let rule = mock!(Client::get_item)
        .then_output(move || GetItemOutput::builder().set_item(Some(item("ml-inference", &stored))).build());
    let store = DynamoTargetStore::new(client!(aws_sdk_dynamodb, &rule), TABLE);

    let got = store.get(&name("ml-inference")).await.unwrap_err();

    let DeployError::InvalidInput { message } = &got else { panic!("expected InvalidInput, got {got:?}") };
    assert!(message.contains("stored target spec of ml-inference"), "{message}");
    assert!(message.contains("configuration.memoryMb: 64 is outside"), "{message}");
}

#[tokio::test]
async fn list_follows_last_evaluated_key_across_pages() {
    // GIVEN two pages: the first ends with a LastEvaluatedKey
    let (a, b) = (spec_json("fn-a").to_string(), spec_json("fn-b").to_string());
    let first = mock!(Client::scan)
        .match_requests(|r| r.table_name() == Some(TABLE) && r.exclusive_start_key().is_none())
        .then_output(move || {
            ScanOutput::builder()
                .items(item("fn-a", &a))
                .set_last_evaluated_key(Some(HashMap::from([(
                    "function".to_string(),
                    AttributeValue::S("fn-a".into()),
                )])))
                .build()
        });
    let second = mock!(Client::scan)
        .match_requests(|r| key_is(r.exclusive_start_key(), "fn-a"))
        .then_output(move || ScanOutput::builder().items(item("fn-b", &b)).build());
    let store = DynamoTargetStore::new(client!(aws_sdk_dynamodb, &first, &second), TABLE);

    // WHEN the targets are listed
    let got = store.list().await.unwrap();

    // THEN both pages were read, the second from where the first ended
    assert_eq!(got, vec![spec("fn-a"), spec("fn-b")]);
    assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
}

#[tokio::test]
async fn put_stores_the_spec_json_and_the_time() {
    let rule = mock!(Client::put_item)
        .match_requests(|r| {
            let item = r.item().unwrap();
            let s = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            r.table_name() == Some(TABLE)
                && item.len() == 3
                && s("function") == "ml-inference"
                && deployer_core::spec::parse(&s("spec")).ok() == Some(spec("ml-inference"))
                && s("updatedAt").ends_with('Z')
                && DateTime::from_str(&s("updatedAt"), Format::DateTime).is_ok()
        })
        .then_output(|| PutItemOutput::builder().build());
    let store = DynamoTargetStore::new(client!(aws_sdk_dynamodb, &rule), TABLE);

    store.put(&spec("ml-inference")).await.unwrap();

    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn put_refuses_a_spec_that_get_could_not_read_back() {
    let rule = mock!(Client::put_item).then_output(|| PutItemOutput::builder().build());
    let store = DynamoTargetStore::new(client!(aws_sdk_dynamodb, &rule), TABLE);
    let mut bad = spec("ml-inference");
    bad.configuration.memory_mb = 64;

    let got = store.put(&bad).await.unwrap_err();

    assert_eq!(got.name(), "InvalidInput", "{got}");
    assert_eq!(rule.num_calls(), 0);
}

#[tokio::test]
async fn delete_removes_the_item_by_key() {
    let rule = mock!(Client::delete_item)
        .match_requests(|r| r.table_name() == Some(TABLE) && key_is(r.key(), "ml-inference"))
        .then_output(|| DeleteItemOutput::builder().build());
    let store = DynamoTargetStore::new(client!(aws_sdk_dynamodb, &rule), TABLE);

    store.delete(&name("ml-inference")).await.unwrap();

    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn a_missing_table_is_refused_naming_it_and_throttling_is_throttled() {
    let missing = mock!(Client::get_item).then_error(|| {
        GetItemError::ResourceNotFoundException(
            ResourceNotFoundException::builder()
                .message("Requested resource not found")
                .meta(meta("ResourceNotFoundException", "Requested resource not found"))
                .build(),
        )
    });
    let throttled = mock!(Client::put_item).then_error(|| {
        let message = "The level of configured provisioned throughput for the table was exceeded.";
        PutItemError::ProvisionedThroughputExceededException(
            ProvisionedThroughputExceededException::builder()
                .message(message)
                .meta(meta("ProvisionedThroughputExceededException", message))
                .build(),
        )
    });
    let store = DynamoTargetStore::new(client!(aws_sdk_dynamodb, &missing, &throttled), TABLE);

    let got = store.get(&name("ml-inference")).await.unwrap_err();
    let DeployError::AwsRefused { service, operation, message } = &got else { panic!("expected AwsRefused: {got:?}") };
    assert_eq!((*service, *operation), ("DynamoDB", "GetItem"));
    assert!(message.contains("table deployer-targets does not exist"), "{message}");
    assert!(message.contains("Requested resource not found"), "{message}");

    let got = store.put(&spec("ml-inference")).await.unwrap_err();
    assert_eq!(got.name(), "Throttled", "{got}");
    assert!(got.to_string().contains("provisioned throughput"), "{got}");
}
