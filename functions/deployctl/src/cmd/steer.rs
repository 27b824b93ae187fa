//! `deployctl promote` and `deployctl abort`: a command for the running deployment, which acts on it at its
//! next health check.

use deployer_core::ids::FunctionName;
use deployer_core::model::Command;
use deployer_core::ports::DeploymentLedger;

use crate::ctx::Ctx;
use crate::exit::{ended, Arg, Exit};
use crate::out::say;

pub async fn run(ctx: &Ctx, function: &str, command: Command, reason: &str) -> anyhow::Result<Exit> {
    let ledger = &ctx.aws().ledger;
    let name = FunctionName::parse(function).arg("the function")?;
    let (owner, _) = ledger.holder(&name).await?.ok_or_else(|| {
        ended(
            Exit::NothingToDo,
            format!(
                "no deployment of {function} is running (nothing holds its lock): nothing to {}; see `deployctl \
                 history {function}`",
                word(&command)
            ),
        )
    })?;
    ledger.send_command(&name, &owner, &command, reason).await?;
    match command {
        Command::Promote => say!("{owner}: promote sent; all traffic moves at its next health check"),
        Command::Abort => say!("{owner}: abort sent; it rolls back at its next health check"),
    }
    Ok(Exit::Done)
}

fn word(command: &Command) -> &'static str {
    match command {
        Command::Promote => "promote",
        Command::Abort => "abort",
    }
}
