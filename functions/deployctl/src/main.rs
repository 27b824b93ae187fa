//! `deployctl`: the operator's command line.
//!
//! Targets live in the deployer stack's DynamoDB table (`<stack>-targets`); `target apply` validates a
//! spec file and stores it there, which is how a function comes under the deployer's management. Each
//! verb is a module of [`cmd`]; every outcome has its exit code ([`exit::Exit`]), every error one line
//! that says what to do.

mod cli;
mod cmd;
mod ctx;
mod exit;
mod out;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Command, TargetCommand};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let with_aws = !matches!(cli.command, Command::Target(TargetCommand::Validate { offline: true, .. }));
    let ctx = ctx::Ctx::new(cli.stack, cli.table, with_aws).await;
    let exit = match cmd::run(&ctx, cli.command).await {
        Ok(exit) => exit,
        Err(e) => {
            let place = exit::Place { stack: &ctx.stack, endpoint: ctx.endpoint() };
            let (exit, line) = exit::report(&e, &place, cli.verbose);
            eprintln!("deployctl: {line}");
            exit
        }
    };
    ExitCode::from(exit as u8)
}
