//! `deployctl watch`: follow one execution to its end; exit 0 if it ended as `--expect` says.

use std::time::Duration;

use deployer_core::decisions;
use deployer_core::ids::{FunctionName, ImageDigest};

use super::follow::{follow, summary};
use crate::cli::Expect;
use crate::ctx::{execution_arn, Ctx};
use crate::exit::{ended, usage, Arg, Exit};
use crate::out::say;

pub async fn run(
    ctx: &Ctx,
    execution: Option<String>,
    function: Option<String>,
    digest: Option<String>,
    expect: Expect,
    timeout: u64,
) -> anyhow::Result<Exit> {
    let arn = match (execution, function, digest) {
        (Some(arn), _, _) => arn,
        (None, Some(f), Some(d)) => {
            let f = FunctionName::parse(&f).arg("--function")?;
            let d = ImageDigest::parse(&d).arg("--digest")?;
            execution_arn(&ctx.state_machine().await?, &decisions::execution_name(&f, &d))
        }
        _ => return Err(usage("name the execution: --execution ARN, or --function NAME --digest sha256:...")),
    };
    let end = follow(&ctx.aws().reader, &arn, Duration::from_secs(timeout)).await?;
    say!("{}: {}", end.view.status, summary(&end).line);
    if !expect.allows(&end.view.status) {
        return Err(ended(Exit::Failed, format!("execution ended {} (expected {})", end.view.status, expect.word())));
    }
    Ok(Exit::Done)
}
