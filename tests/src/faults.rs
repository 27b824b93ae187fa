//! Local AWS's fault injection endpoint (`/_local/faults`).

use serde_json::Value;

use crate::sdk::endpoint;

/// Arm a fault, e.g. `json!({"service":"lambda","operation":"UpdateAlias","error":"TooManyRequestsException","count":2})`.
pub async fn inject(spec: Value) -> Value {
    let resp = reqwest::Client::new()
        .post(format!("{}/_local/faults", endpoint()))
        .json(&spec)
        .send()
        .await
        .expect("local AWS answers /_local/faults");
    let status = resp.status();
    let body: Value = resp.json().await.expect("a JSON answer");
    assert!(status.is_success(), "fault {spec} was refused: {body}");
    body
}

/// The armed faults and what each has done.
pub async fn list() -> Vec<Value> {
    let body: Value = reqwest::get(format!("{}/_local/faults", endpoint()))
        .await
        .expect("local AWS answers /_local/faults")
        .json()
        .await
        .expect("a JSON answer");
    body["faults"].as_array().cloned().unwrap_or_default()
}

/// How many times the fault with this id has fired.
pub async fn fired(id: u64) -> u64 {
    list().await.iter().find(|f| f["id"].as_u64() == Some(id)).and_then(|f| f["fired"].as_u64()).unwrap_or(0)
}

/// Disarm one fault (whatever shots it has left).
pub async fn disarm(id: u64) {
    let _ = reqwest::Client::new().delete(format!("{}/_local/faults/{id}", endpoint())).send().await;
}
