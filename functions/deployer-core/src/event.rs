//! The ECR push event, as EventBridge delivers it to the trigger.
//!
//! ECR puts one "ECR Image Action" event on the default bus per push (and per delete); its detail carries
//! `action-type`, `result`, `repository-name`, `image-digest` and `image-tag`. The trigger acts only on a
//! successful PUSH of a tagged image in its own account and region; anything else is refused with the
//! reason, and nothing is started.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde::Deserialize;
use serde_json::Value;

use crate::ids::{ImageDigest, RepositoryName};
use crate::DeployError;

/// Events larger than this are not ECR's (EventBridge caps events at 256 KB; ECR's are ~1 KB).
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Detail {
    action_type: Option<String>,
    result: Option<String>,
    repository_name: Option<String>,
    image_digest: Option<String>,
    image_tag: Option<String>,
}

/// A validated push of a tagged image.
#[derive(Debug, Clone, PartialEq)]
pub struct Push {
    pub event_id: String,
    pub repository: RepositoryName,
    pub digest: ImageDigest,
    pub tag: String,
}

/// What the event was, when it is not a push to act on.
#[derive(Debug, Clone, PartialEq)]
pub enum NotAPush {
    /// Not an ECR image event at all, or malformed: an error, since it should never reach the trigger.
    Invalid(String),
    /// A well-formed ECR event the deployer does not act on (a DELETE, a failed push, an untagged push).
    Ignored(String),
}

/// Read an EventBridge event as an ECR push. `account`/`region` are the trigger's own.
pub fn parse_push(raw: &Value, account: &str, region: &str) -> Result<Push, NotAPush> {
    let size = raw.to_string().len();
    if size > MAX_EVENT_BYTES {
        return Err(NotAPush::Invalid(format!(
            "event is {size} bytes; ECR events are small (limit {MAX_EVENT_BYTES})"
        )));
    }
    let event: EventBridgeEvent<Value> = serde_path_to_error::deserialize(raw)
        .map_err(|e| NotAPush::Invalid(format!("not an EventBridge event: {}: {}", e.path(), e.inner())))?;
    if event.source != "aws.ecr" {
        return Err(NotAPush::Invalid(format!("source is {:?}, expected \"aws.ecr\"", event.source)));
    }
    if event.detail_type != "ECR Image Action" {
        return Err(NotAPush::Invalid(format!(
            "detail-type is {:?}, expected \"ECR Image Action\"",
            event.detail_type
        )));
    }
    let detail: Detail = serde_path_to_error::deserialize(&event.detail)
        .map_err(|e| NotAPush::Invalid(format!("detail: {}: {}", e.path(), e.inner())))?;
    // EventBridge sets every one of these on every event it delivers: an event without one was not delivered
    // by EventBridge, and one without account or region cannot be checked against this deployer's.
    let missing: Vec<&str> = [
        ("version", event.version.is_none()),
        ("id", event.id.is_none()),
        ("account", event.account.is_none()),
        ("time", event.time.is_none()),
        ("region", event.region.is_none()),
        ("resources", event.resources.is_none()),
    ]
    .into_iter()
    .filter_map(|(field, absent)| absent.then_some(field))
    .collect();
    if !missing.is_empty() {
        return Err(NotAPush::Invalid(format!(
            "the event has no {}: EventBridge sets version, id, account, time, region and resources on every \
             event it delivers",
            missing.join(", ")
        )));
    }
    let id = event.id.clone().unwrap_or_default();
    let acct = event.account.as_deref().unwrap_or_default();
    if acct != account {
        return Err(NotAPush::Invalid(format!(
            "event is from account {acct}; this deployer serves account {account} only"
        )));
    }
    let r = event.region.as_deref().unwrap_or_default();
    if r != region {
        return Err(NotAPush::Invalid(format!("event is from region {r}; this deployer serves {region} only")));
    }
    match detail.action_type.as_deref() {
        Some("PUSH") => {}
        Some(other) => return Err(NotAPush::Ignored(format!("action-type {other} is not a push"))),
        None => return Err(NotAPush::Invalid("detail has no action-type".into())),
    }
    match detail.result.as_deref() {
        Some("SUCCESS") => {}
        Some(other) => return Err(NotAPush::Ignored(format!("push result is {other}, not SUCCESS"))),
        None => return Err(NotAPush::Invalid("detail has no result".into())),
    }
    let repo = detail.repository_name.ok_or_else(|| NotAPush::Invalid("detail has no repository-name".into()))?;
    let repository = RepositoryName::parse(&repo).map_err(|e| NotAPush::Invalid(e.message()))?;
    let digest = detail.image_digest.ok_or_else(|| NotAPush::Invalid("detail has no image-digest".into()))?;
    let digest = ImageDigest::parse(&digest).map_err(|e| NotAPush::Invalid(e.message()))?;
    let tag = match detail.image_tag {
        Some(t) if !t.is_empty() => t,
        _ => return Err(NotAPush::Ignored(format!("push of {digest} to {repository} has no tag"))),
    };
    Ok(Push { event_id: id, repository, digest, tag })
}

impl From<NotAPush> for DeployError {
    fn from(n: NotAPush) -> Self {
        match n {
            NotAPush::Invalid(m) | NotAPush::Ignored(m) => DeployError::invalid(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(detail: Value) -> Value {
        json!({"version": "0", "id": "e1", "detail-type": "ECR Image Action", "source": "aws.ecr",
               "account": "123456789012", "time": "2026-11-27T00:00:00Z", "region": "us-east-1",
               "resources": [], "detail": detail})
    }

    fn push_detail() -> Value {
        json!({"result": "SUCCESS", "repository-name": "ml", "image-digest": format!("sha256:{}", "b".repeat(64)),
               "action-type": "PUSH", "image-tag": "sha-1234567"})
    }

    #[test]
    fn a_successful_tagged_push_is_a_push() {
        let p = parse_push(&event(push_detail()), "123456789012", "us-east-1").unwrap();
        assert_eq!(p.repository.as_str(), "ml");
        assert_eq!(p.tag, "sha-1234567");
        assert_eq!(p.event_id, "e1");
    }

    #[test]
    fn everything_else_is_refused_with_the_reason() {
        let with = |k: &str, v: Value| {
            let mut d = push_detail();
            d[k] = v;
            event(d)
        };
        let mut other_source = event(push_detail());
        other_source["source"] = json!("aws.s3");
        let mut other_type = event(push_detail());
        other_type["detail-type"] = json!("ECR Image Scan");
        let mut other_account = event(push_detail());
        other_account["account"] = json!("999999999999");
        let mut other_region = event(push_detail());
        other_region["region"] = json!("eu-west-1");
        let mut no_digest = push_detail();
        no_digest.as_object_mut().unwrap().remove("image-digest");
        let mut untagged = push_detail();
        untagged.as_object_mut().unwrap().remove("image-tag");
        let big = with("image-tag", json!("x".repeat(70_000)));
        let without = |field: &str| {
            let mut e = event(push_detail());
            e.as_object_mut().unwrap().remove(field);
            e
        };
        let cases: Vec<(&str, Value, bool, &str)> = vec![
            ("not json object", json!("hello"), true, "not an EventBridge event"),
            ("source", other_source, true, "source is \"aws.s3\""),
            ("detail-type", other_type, true, "detail-type is \"ECR Image Scan\""),
            ("account", other_account, true, "account 999999999999"),
            ("region", other_region, true, "region eu-west-1"),
            ("delete", with("action-type", json!("DELETE")), false, "action-type DELETE is not a push"),
            ("failure", with("result", json!("FAILURE")), false, "push result is FAILURE"),
            ("no digest", event(no_digest), true, "no image-digest"),
            ("bad digest", with("image-digest", json!("sha256:xyz")), true, "image digest \"sha256:xyz\""),
            ("untagged", event(untagged), false, "has no tag"),
            ("oversized", big, true, "bytes; ECR events are small"),
            ("bad repo", with("repository-name", json!("Bad Repo")), true, "repository name"),
            ("no account", without("account"), true, "the event has no account"),
            ("no region", without("region"), true, "the event has no region"),
            ("no id", without("id"), true, "the event has no id"),
            ("no time", without("time"), true, "the event has no time"),
            ("no resources", without("resources"), true, "the event has no resources"),
            ("no version", without("version"), true, "the event has no version"),
        ];
        for (what, ev, invalid, want) in cases {
            let got = parse_push(&ev, "123456789012", "us-east-1").unwrap_err();
            let (is_invalid, msg) = match &got {
                NotAPush::Invalid(m) => (true, m),
                NotAPush::Ignored(m) => (false, m),
            };
            assert_eq!(is_invalid, invalid, "{what}: {got:?}");
            assert!(msg.contains(want), "{what}: {msg}");
        }
    }
}
