//! `deployctl status`: the running deployment, the alias's traffic split, the last gate reading, the queue.
//! An error reading any of them is an error, never "nothing running".

use deployer_core::ids::FunctionName;
use deployer_core::ports::{DeploymentLedger, FunctionApi, TargetStore};

use crate::ctx::{execution_arn, Ctx};
use crate::exit::{ended, Arg, Exit};
use crate::out::say;

pub async fn run(ctx: &Ctx, function: &str) -> anyhow::Result<Exit> {
    let aws = ctx.aws();
    let name = FunctionName::parse(function).arg("the function")?;
    let target = aws.store.get(&name).await?.ok_or_else(|| {
        ended(
            Exit::Refused,
            format!("no target named {function} in {}; `deployctl target list` lists them", ctx.targets_table),
        )
    })?;
    let alias = aws.lambda.get_alias(&name, &target.alias).await?;
    let split = match &alias {
        None => format!("alias {} does not exist", target.alias),
        Some(a) => match &a.additional {
            Some((v, w)) => format!(
                "alias {}: version {} {:.0}%, version {v} {:.0}%",
                target.alias,
                a.version,
                (1.0 - w) * 100.0,
                w * 100.0
            ),
            None => format!("alias {}: version {} 100%", target.alias, a.version),
        },
    };
    let lock = aws.ledger.lock_state(&name).await?;
    let queue = match lock.as_ref().and_then(|l| l.pending.as_ref()) {
        Some(p) => format!(
            "pending: {} (tag {}, queued by {} at {}): deploys when the running deployment ends",
            p.image_digest,
            p.image_tag,
            p.queued_by,
            deployer_core::steps::iso_from_ms(p.queued_at_ms)
        ),
        None => "pending: nothing queued".to_string(),
    };
    let Some(owner) = lock.map(|l| l.owner) else {
        say!("no deployment of {function} is running; {split}");
        say!("{queue}");
        return Ok(Exit::Done);
    };
    let arn = execution_arn(&ctx.state_machine().await?, &owner);
    let history = aws.reader.history(&arn, 0).await?;
    let state = history.iter().rev().find_map(|s| s.state.clone()).unwrap_or_else(|| "-".into());
    let verdict = history
        .iter()
        .rev()
        .filter(|s| s.state.as_deref() == Some("Check Health"))
        .find_map(|s| s.output.as_deref())
        .and_then(|o| serde_json::from_str::<serde_json::Value>(o).ok())
        .and_then(|v| v["health"]["value"]["verdict"].as_str().map(str::to_string));
    say!("running: {owner}, in state {state:?}; {split}");
    if let Some(v) = verdict {
        say!("last health check: {v}");
    }
    say!("{queue}");
    Ok(Exit::Done)
}
