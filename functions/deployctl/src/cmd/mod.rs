//! One module per verb. Each returns the exit code of what happened; errors end deployctl through
//! [`crate::exit::report`].

mod deploy;
mod follow;
mod history;
mod rollback;
mod status;
mod steer;
mod target;
mod watch;

use deployer_core::model::Command as Steer;

use crate::cli::Command;
use crate::ctx::Ctx;
use crate::exit::Exit;

pub async fn run(ctx: &Ctx, command: Command) -> anyhow::Result<Exit> {
    match command {
        Command::Target(c) => target::run(ctx, c).await,
        Command::Watch { execution, function, digest, expect, timeout } => {
            watch::run(ctx, execution, function, digest, expect, timeout).await
        }
        Command::History { function, limit } => history::run(ctx, &function, limit).await,
        Command::Deploy { function, digest, tag, no_wait } => deploy::run(ctx, &function, digest, tag, no_wait).await,
        Command::Status { function } => status::run(ctx, &function).await,
        Command::Promote { function, reason } => steer::run(ctx, &function, Steer::Promote, &reason).await,
        Command::Abort { function, reason } => steer::run(ctx, &function, Steer::Abort, &reason).await,
        Command::Rollback { function, to, reason } => rollback::run(ctx, &function, to, reason).await,
    }
}
