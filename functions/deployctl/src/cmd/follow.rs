//! Following an execution: each state as it is entered, then one line that says how it ended and what
//! that means for the function (deployed, nothing to do, queued, refused, failed), with its exit code.

use std::time::{Duration, Instant};

use anyhow::bail;
use deployer_aws::watch::{ExecutionReader, ExecutionView};
use deployer_core::decisions;
use deployer_core::ids::{FunctionName, ImageDigest};
use deployer_core::plan::{Deployed, RolledBack};
use serde_json::Value;

use crate::exit::Exit;
use crate::out::say;

const POLL: Duration = Duration::from_millis(300);

/// How an execution ended: its status, and the state it ended in (the name says what happened).
pub struct Ending {
    pub arn: String,
    pub view: ExecutionView,
    pub state: Option<String>,
}

/// What an ending means, as deployctl reports it.
pub struct Summary {
    pub exit: Exit,
    pub line: String,
    /// Queued behind a running deployment: the name its deployment starts under, the function, the image.
    pub queued: Option<(String, FunctionName, ImageDigest)>,
}

/// Print each state as `arn` enters it, and each failure, until the execution ends (or `timeout`).
pub async fn follow(reader: &ExecutionReader, arn: &str, timeout: Duration) -> anyhow::Result<Ending> {
    let started = Instant::now();
    let (mut last, mut first_ms, mut state) = (0, None, None);
    loop {
        let view = reader.describe(arn).await?;
        if let Some(view) = &view {
            for step in reader.history(arn, last).await? {
                last = step.id;
                let t0 = *first_ms.get_or_insert(step.at_ms);
                let at = (step.at_ms - t0) as f64 / 1000.0;
                match (&step.state, &step.detail) {
                    (Some(s), _) if step.kind.ends_with("StateEntered") => {
                        say!("  {at:>6.1}s  {s}");
                        state = Some(s.clone());
                    }
                    (_, Some(detail)) => say!("  {at:>6.1}s    ! {}: {}", step.kind, readable(detail)),
                    _ => {}
                }
            }
            if view.status != "RUNNING" {
                return Ok(Ending { arn: arn.to_string(), view: view.clone(), state });
            }
        }
        if started.elapsed() > timeout {
            match view {
                None => bail!("no execution {arn} after {} s: was the push seen by the deployer?", timeout.as_secs()),
                Some(_) => bail!(
                    "execution {arn} still running after {} s (it goes on: `deployctl watch --execution {arn}`)",
                    timeout.as_secs()
                ),
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

/// What the ending means. The final state's name decides, then the status (an execution stopped from the
/// console or timed out ends in no final state).
pub fn summary(end: &Ending) -> Summary {
    let v = &end.view;
    let output: Option<Value> = v.output.as_deref().and_then(|o| serde_json::from_str(o).ok());
    let cause = readable(v.cause.as_deref().unwrap_or_default());
    let error = v.error.as_deref().unwrap_or("-");
    let plain = |exit, line: String| Summary { exit, line, queued: None };
    match (v.status.as_str(), end.state.as_deref()) {
        ("SUCCEEDED", Some("Deployed")) => match output.and_then(|o| serde_json::from_value::<Deployed>(o).ok()) {
            Some(d) if d.moved => plain(
                Exit::Done,
                format!(
                    "deployed: alias {} of {} serves version {} (image {}){}",
                    d.alias,
                    d.function,
                    d.version,
                    d.image_tag,
                    d.previous_version.map(|p| format!("; it served version {p} before")).unwrap_or_default()
                ),
            ),
            Some(d) => plain(
                Exit::Done,
                format!(
                    "deployed: alias {} of {} already pointed at version {} (image {}); configuration converged",
                    d.alias, d.function, d.version, d.image_tag
                ),
            ),
            None => plain(Exit::Done, "deployed".into()),
        },
        ("SUCCEEDED", Some("Nothing To Do")) => {
            let plan = output.unwrap_or_default();
            plain(
                Exit::NothingToDo,
                format!(
                    "nothing to do: alias {} of {} already serves image {} ({}) with this configuration",
                    plan["target"]["alias"].as_str().unwrap_or("?"),
                    plan["target"]["function"].as_str().unwrap_or("?"),
                    plan["imageDigest"].as_str().unwrap_or("?"),
                    plan["imageTag"].as_str().unwrap_or("?"),
                ),
            )
        }
        ("SUCCEEDED", Some("Superseded")) => {
            let plan = output.unwrap_or_default();
            let why = plan["supersededWhy"].as_str().unwrap_or("a newer image is already live");
            plain(Exit::NothingToDo, format!("nothing to do: superseded: {why}"))
        }
        ("SUCCEEDED", Some("Queued")) => match output.as_ref().and_then(|p| queued(&end.arn, p)) {
            Some((line, next)) => Summary { exit: Exit::Done, line, queued: Some(next) },
            None => plain(Exit::Done, "queued behind the running deployment".into()),
        },
        ("SUCCEEDED", Some("Rolled Back")) => match output.and_then(|o| serde_json::from_value::<RolledBack>(o).ok()) {
            Some(r) => plain(Exit::Done, format!("rolled back: {}", r.cause)),
            None => plain(Exit::Done, "rolled back".into()),
        },
        ("SUCCEEDED", Some("Command Sent")) => {
            let o = output.unwrap_or_default();
            plain(
                Exit::Done,
                format!(
                    "sent: {} acts on {} at its next health check ({})",
                    o["execution"].as_str().unwrap_or("the running deployment"),
                    o["command"].as_str().unwrap_or("the command"),
                    o["reason"].as_str().unwrap_or("-")
                ),
            )
        }
        ("SUCCEEDED", _) => plain(Exit::Done, format!("succeeded: {}", v.output.as_deref().unwrap_or_default())),
        ("FAILED", Some("Rejected" | "Command Refused")) => {
            plain(Exit::Refused, format!("refused ({error}), nothing was changed: {cause}"))
        }
        ("FAILED", Some("Deployment Failed")) => {
            plain(Exit::Failed, format!("failed ({error}) and rolled back: {cause}"))
        }
        ("FAILED", Some("Rollback Failed")) => {
            plain(Exit::Failed, format!("rollback failed ({error}): a human must look: {cause}"))
        }
        (status, _) => plain(Exit::Failed, format!("{} ({error}): {cause}", status.to_lowercase().replace('_', " "))),
    }
}

/// For an execution that ended queued (its output is the plan, with `queued`): a line saying what it waits
/// behind, and the name its deployment starts under.
fn queued(arn: &str, plan: &Value) -> Option<(String, (String, FunctionName, ImageDigest))> {
    let why = plan["queued"]["why"].as_str()?;
    let name = arn.rsplit(':').next().unwrap_or_default();
    let function = FunctionName::parse(plan["target"]["function"].as_str()?).ok()?;
    let digest = ImageDigest::parse(plan["imageDigest"].as_str()?).ok()?;
    let next = decisions::next_attempt(name, &function, &digest);
    let line = format!(
        "queued: {why}. Its deployment starts as {next} (unless a newer push replaces it); `deployctl status \
         {function}` shows the queue"
    );
    Some((line, (next, function, digest)))
}

/// A cause as a person reads it: a step's error comes as Lambda's JSON (`{"errorType", "errorMessage"}`, with
/// the message's quotes escaped); its message alone. Anything else as it is.
pub fn readable(detail: &str) -> String {
    let (head, json) = match detail.find('{') {
        Some(i) => detail.split_at(i),
        None => return detail.to_string(),
    };
    match serde_json::from_str::<Value>(json) {
        Ok(v) if v["errorMessage"].is_string() => format!("{head}{}", v["errorMessage"].as_str().unwrap_or_default()),
        _ => detail.to_string(),
    }
}
