//! `deployctl rollback`: start a rollback execution and follow it. A deployment still running is not
//! aborted here: the rollback's own execution tells it to roll back (to the version that served before it),
//! once, as it does for a rollback sent as raw input.

use std::time::Duration;

use deployer_core::ids::{FunctionName, Version};
use deployer_core::model::StartOutcome;
use deployer_core::plan::{ExecutionInput, RollbackRequest};
use deployer_core::ports::Executions;

use super::follow::{follow, summary};
use crate::ctx::{execution_arn, Ctx};
use crate::exit::{Arg, Exit};
use crate::out::say;

pub async fn run(ctx: &Ctx, function: &str, to: Option<String>, reason: Option<String>) -> anyhow::Result<Exit> {
    let request = ExecutionInput::Rollback(RollbackRequest {
        action: None,
        function: FunctionName::parse(function).arg("the function")?,
        to_version: to.as_deref().map(Version::parse).transpose().arg("--to")?,
        reason,
    });
    let sm = ctx.state_machine().await?;
    let name = format!("rollback-{}-{}", function, deployer_core::steps::now_ms());
    let arn = match ctx.executions(&sm).start(&name, &serde_json::to_string(&request)?).await? {
        StartOutcome::Started { execution_arn } => execution_arn,
        StartOutcome::AlreadyStarted => execution_arn(&sm, &name),
    };
    say!("started {arn}");
    let s = summary(&follow(&ctx.aws().reader, &arn, Duration::from_secs(600)).await?);
    say!("{}", s.line);
    Ok(s.exit)
}
