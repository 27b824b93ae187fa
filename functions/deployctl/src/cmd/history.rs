//! `deployctl history`: a function's deployments, newest first.

use deployer_core::ids::FunctionName;
use deployer_core::ports::DeploymentLedger;

use crate::ctx::Ctx;
use crate::exit::{Arg, Exit};
use crate::out::say;

pub async fn run(ctx: &Ctx, function: &str, limit: u32) -> anyhow::Result<Exit> {
    let name = FunctionName::parse(function).arg("the function")?;
    let records = ctx.aws().ledger.history(&name, limit as usize).await?;
    if records.is_empty() {
        say!("no deployments of {function} on record in {}", ctx.deployments_table);
    }
    for r in records {
        let outcome = serde_json::to_value(r.outcome)?.as_str().unwrap_or_default().to_string();
        say!(
            "{}  {:<16} {:>4} -> {:<4} {:<10} {}  {}{}",
            r.started_at,
            outcome,
            r.version_before.as_deref().unwrap_or("-"),
            r.version_after.as_deref().unwrap_or("-"),
            r.trigger,
            r.image_digest.as_ref().map(|d| &d.as_str()[..19]).unwrap_or("-"),
            r.execution,
            r.cause.map(|c| format!("\n      {}", c.chars().take(200).collect::<String>())).unwrap_or_default(),
        );
    }
    Ok(Exit::Done)
}
