//! `deployctl target ...`: the targets table, where a function comes under the deployer's management.

use std::path::Path;

use anyhow::Context as _;
use deployer_core::ids::FunctionName;
use deployer_core::ports::TargetStore;
use deployer_core::spec;

use crate::cli::TargetCommand;
use crate::ctx::Ctx;
use crate::exit::{ended, usage, Arg, Exit};
use crate::out::say;

pub async fn run(ctx: &Ctx, command: TargetCommand) -> anyhow::Result<Exit> {
    let table = &ctx.targets_table;
    match command {
        TargetCommand::Validate { spec, offline } => {
            let s = read_spec(&spec)?;
            let checked = if offline {
                "the stack's policy not checked (--offline)".to_string()
            } else {
                check_policy(ctx, &s, &spec).await?;
                format!("within stack {}'s policy", ctx.stack)
            };
            say!(
                "{}: valid target for {} (repository {}, alias {}); {checked}",
                spec.display(),
                s.function,
                s.repository,
                s.alias
            );
        }
        TargetCommand::Apply { spec } => {
            let s = read_spec(&spec)?;
            check_policy(ctx, &s, &spec).await?;
            ctx.aws().store.put(&s).await.with_context(|| format!("cannot store the target in {table}"))?;
            say!(
                "target {} applied: pushes to {} matching {:?} deploy to alias {}",
                s.function,
                s.repository,
                s.tag_pattern,
                s.alias
            );
        }
        TargetCommand::List => {
            let targets = ctx.aws().store.list().await.with_context(|| format!("cannot list {table}"))?;
            if targets.is_empty() {
                say!("no targets in {table}; add one with `deployctl target apply <spec.json>`");
            }
            for t in targets {
                say!("{}\t{}\t{}\t{}", t.function, t.repository, t.tag_pattern, t.alias);
            }
        }
        TargetCommand::Show { function } => {
            let name = FunctionName::parse(&function).arg("the function")?;
            let t = ctx.aws().store.get(&name).await?.ok_or_else(|| unknown(&function, table))?;
            say!("{}", serde_json::to_string_pretty(&t)?);
        }
        TargetCommand::Delete { function } => {
            let name = FunctionName::parse(&function).arg("the function")?;
            let store = &ctx.aws().store;
            store.get(&name).await?.ok_or_else(|| unknown(&function, table))?;
            store.delete(&name).await?;
            say!("target {function} deleted; the function and its alias are unchanged");
        }
    }
    Ok(Exit::Done)
}

fn unknown(function: &str, table: &str) -> anyhow::Error {
    ended(Exit::Refused, format!("no target named {function} in {table}; `deployctl target list` lists them"))
}

/// A file that cannot be read is a usage error; one that is not a valid spec is refused.
fn read_spec(path: &Path) -> anyhow::Result<spec::TargetSpec> {
    let text = std::fs::read_to_string(path).map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
    spec::parse(&text).map_err(|e| ended(Exit::Refused, format!("{} is not a valid target spec: {e}", path.display())))
}

/// Refuse a target the deployer stack's policy does not allow (what its Prepare step would refuse).
async fn check_policy(ctx: &Ctx, spec: &spec::TargetSpec, path: &Path) -> anyhow::Result<()> {
    let stack = &ctx.stack;
    let policy = deployer_aws::stack::policy(&ctx.aws().sdk, stack)
        .await
        .with_context(|| format!("cannot read the policy of deployer stack {stack} (--offline checks the spec alone)"))?
        .ok_or_else(|| {
            ended(
                Exit::Failed,
                format!(
                    "no deployer stack {stack} in this account and region (its function {stack}-prepare does not \
                     exist): name it with --stack or DEPLOYER_STACK, or check the spec alone with `target validate \
                     --offline`"
                ),
            )
        })?;
    policy.check(spec).map_err(|e| ended(Exit::Refused, format!("{} is not a valid target: {e}", path.display())))
}
