//! `deployctl deploy`: start a deployment of an image as a push would, and follow it to its end; one
//! that queues behind a running deployment is followed into the deployment that starts when that one ends.

use std::time::{Duration, Instant};

use deployer_core::ids::{FunctionName, ImageDigest};
use deployer_core::model::StartOutcome;
use deployer_core::plan::{DeployRequest, ExecutionInput};
use deployer_core::ports::{DeploymentLedger, Executions, ImageRegistry, TargetStore};

use super::follow::{follow, summary};
use crate::ctx::{execution_arn, Ctx};
use crate::exit::{ended, Arg, Exit};
use crate::out::say;

/// How long deployctl follows a deployment (and the wait in the queue before it) by default.
const FOLLOW: Duration = Duration::from_secs(3600);

pub async fn run(
    ctx: &Ctx,
    function: &str,
    digest: Option<String>,
    tag: Option<String>,
    no_wait: bool,
) -> anyhow::Result<Exit> {
    let aws = ctx.aws();
    let name = FunctionName::parse(function).arg("the function")?;
    let digest = digest.map(|d| ImageDigest::parse(&d).arg("--digest")).transpose()?;
    let target = aws.store.get(&name).await?.ok_or_else(|| {
        ended(
            Exit::Refused,
            format!(
                "no target named {function} in {}: register it with `deployctl target apply <spec.json>`",
                ctx.targets_table
            ),
        )
    })?;
    // The tag is only a name for the image: Prepare reads the image's tags from ECR and deploys it only if
    // it carries the tag named (or, with none named, a tag the target allows).
    let (digest, tag) = match (digest, tag) {
        (Some(d), Some(t)) => (d, t),
        (Some(d), None) => {
            let image = aws
                .ecr
                .describe_image(&target.repository, &d)
                .await?
                .ok_or_else(|| ended(Exit::Refused, format!("no image {d} in repository {}", target.repository)))?;
            let tag = image.tags.into_iter().find(|t| target.allows_tag(t)).ok_or_else(|| {
                ended(Exit::Refused, format!("image {d} has no tag matching {:?}: pass --tag", target.tag_pattern))
            })?;
            (d, tag)
        }
        (None, Some(t)) => {
            let images = aws.ecr.list_images(&target.repository).await?;
            let image = images.into_iter().find(|i| i.tags.contains(&t)).ok_or_else(|| {
                ended(Exit::Refused, format!("no image tagged {t} in repository {}", target.repository))
            })?;
            (image.digest, t)
        }
        (None, None) => return Err(crate::exit::usage("name the image: --digest sha256:... or --tag TAG")),
    };
    let sm = ctx.state_machine().await?;
    let request = ExecutionInput::Deploy(DeployRequest {
        target: name.clone(),
        repository: target.repository.clone(),
        image_digest: digest,
        image_tag: Some(tag),
        queued: None,
    });
    let exec = format!("manual-{}-{}", function, deployer_core::steps::now_ms());
    let arn = match ctx.executions(&sm).start(&exec, &serde_json::to_string(&request)?).await? {
        StartOutcome::Started { execution_arn } => execution_arn,
        StartOutcome::AlreadyStarted => execution_arn(&sm, &exec),
    };
    say!("started {arn}");
    if no_wait {
        return Ok(Exit::Done);
    }
    let deadline = Instant::now() + FOLLOW;
    let mut arn = arn;
    loop {
        let end = follow(&aws.reader, &arn, deadline.saturating_duration_since(Instant::now())).await?;
        let s = summary(&end);
        say!("{}", s.line);
        let Some((next, function, _)) = s.queued else { return Ok(s.exit) };
        let queued_by = arn.rsplit(':').next().unwrap_or_default().to_string();
        arn = execution_arn(&sm, &next);
        if !wait_in_queue(ctx, &function, &queued_by, &next, &arn, deadline).await? {
            say!(
                "nothing to do: superseded: a newer push replaced {queued_by}'s image in the queue \
                 (`deployctl history {function}` names it)"
            );
            return Ok(Exit::NothingToDo);
        }
        say!("started {arn} (the queued deployment)");
    }
}

/// Wait until `next` (the queued image's deployment) starts: true once it has, false if the image left the
/// queue without it (a newer push replaced it).
async fn wait_in_queue(
    ctx: &Ctx,
    function: &FunctionName,
    queued_by: &str,
    next: &str,
    arn: &str,
    deadline: Instant,
) -> anyhow::Result<bool> {
    let aws = ctx.aws();
    loop {
        if aws.reader.describe(arn).await?.is_some() {
            return Ok(true);
        }
        let lock = aws.ledger.lock_state(function).await?;
        let waiting = lock
            .as_ref()
            .is_some_and(|l| l.owner == next || l.pending.as_ref().is_some_and(|p| p.queued_by == queued_by));
        if !waiting {
            // The hand-over may have started it, and it ended, between the two reads.
            return Ok(aws.reader.describe(arn).await?.is_some());
        }
        if Instant::now() > deadline {
            return Err(ended(
                Exit::Failed,
                format!("still queued after {} s; `deployctl status {function}` shows the queue", FOLLOW.as_secs()),
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
