//! `deployctl`: the operator's command line.
//!
//! Targets live in the deployer stack's DynamoDB table (`<stack>-targets`); `target apply` validates a
//! spec file and stores it there, which is how a function comes under the deployer's management.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use deployer_aws::watch::ExecutionReader;
use deployer_aws::{step, DynamoLedger, DynamoTargetStore, EcrRegistry, LambdaControlPlane, SfnExecutions};
use deployer_core::ids::{FunctionName, ImageDigest, Version};
use deployer_core::plan::{DeployRequest, ExecutionInput, RollbackRequest};
use deployer_core::ports::{
    Command as PortCommand, DeploymentLedger, Executions, FunctionApi, ImageRegistry, StartOutcome, TargetStore,
};
use deployer_core::{decisions, spec};

#[derive(Parser)]
#[command(name = "deployctl", version, about = "Operate the Lambda deployer")]
struct Cli {
    /// The deployer's CloudFormation stack name; its targets table is `<stack>-targets`.
    #[arg(long, global = true, default_value = "lambda-deployer", env = "DEPLOYER_STACK")]
    stack: String,
    /// The targets table, when it is not `<stack>-targets`.
    #[arg(long, global = true, env = "DEPLOYER_TARGETS_TABLE")]
    table: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Deployment targets: which function is deployed from which repository, and how.
    #[command(subcommand)]
    Target(TargetCommand),
    /// Follow an execution state by state until it ends; exit 0 if it ended as expected.
    Watch {
        /// The execution's ARN.
        #[arg(long, conflicts_with_all = ["function", "digest"])]
        execution: Option<String>,
        /// With --digest: the deployment a push of that image to this function's repository starts.
        #[arg(long, requires = "digest")]
        function: Option<String>,
        #[arg(long, requires = "function")]
        digest: Option<String>,
        /// How the execution must end for a zero exit code.
        #[arg(long, value_enum, default_value = "succeeded")]
        expect: Expect,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
    /// A function's deployments, newest first: outcome, versions, image, who or what started each.
    History {
        function: String,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Deploy an image (by digest, or the image a tag points at) to a target, as a push would; then follow it.
    Deploy {
        function: String,
        #[arg(long, required_unless_present = "tag")]
        digest: Option<String>,
        #[arg(long)]
        tag: Option<String>,
        /// Start it and return, without following it.
        #[arg(long)]
        no_wait: bool,
    },
    /// The running deployment of a function: its state, the alias's traffic split, the last gate readings.
    Status { function: String },
    /// Skip the rest of a canary or linear bake: all traffic moves at the next health check.
    Promote {
        function: String,
        #[arg(long, default_value = "promoted by an operator")]
        reason: String,
    },
    /// Roll the running deployment back now (all traffic to the version it replaces).
    Abort {
        function: String,
        #[arg(long, default_value = "aborted by an operator")]
        reason: String,
    },
    /// Roll a function's alias back (to --to, else to the version it served before) and verify it. A
    /// deployment still running is told to roll back instead (to the version that served before it), once.
    Rollback {
        function: String,
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Expect {
    Succeeded,
    Failed,
    Any,
}

#[derive(Subcommand)]
enum TargetCommand {
    /// Check a spec file, and that the deployer stack's policy allows it, without storing it.
    Validate {
        spec: PathBuf,
        /// Check the spec alone, without reading the stack's policy (its function and role prefixes, its
        /// repositories): for a machine with no access to the account.
        #[arg(long)]
        offline: bool,
    },
    /// Validate a spec file against the stack's policy and store it (creating or replacing the target).
    Apply { spec: PathBuf },
    /// List the targets.
    List,
    /// Print one target's spec.
    Show { function: String },
    /// Stop managing a function (the function itself is left as it is).
    Delete { function: String },
}

fn read_spec(path: &PathBuf) -> anyhow::Result<spec::TargetSpec> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    spec::parse(&text).with_context(|| format!("{} is not a valid target spec", path.display()))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let table = cli.table.clone().unwrap_or_else(|| format!("{}-targets", cli.stack));
    let store = || async {
        let sdk = step::sdk_config().await;
        DynamoTargetStore::from_sdk(&sdk, &table)
    };
    match cli.command {
        Command::Target(TargetCommand::Validate { spec, offline }) => {
            let s = read_spec(&spec)?;
            let checked = if offline {
                "the stack's policy not checked (--offline)".to_string()
            } else {
                check_policy(&cli.stack, &s)
                    .await
                    .with_context(|| format!("{} is not a valid target", spec.display()))?;
                format!("within stack {}'s policy", cli.stack)
            };
            println!(
                "{}: valid target for {} (repository {}, alias {}); {checked}",
                spec.display(),
                s.function,
                s.repository,
                s.alias
            );
        }
        Command::Target(TargetCommand::Apply { spec }) => {
            let s = read_spec(&spec)?;
            check_policy(&cli.stack, &s).await.with_context(|| format!("{} is not a valid target", spec.display()))?;
            store().await.put(&s).await.with_context(|| format!("cannot store the target in {table}"))?;
            println!(
                "target {} applied: pushes to {} matching {:?} deploy to alias {}",
                s.function, s.repository, s.tag_pattern, s.alias
            );
        }
        Command::Target(TargetCommand::List) => {
            let targets = store().await.list().await.with_context(|| format!("cannot list {table}"))?;
            if targets.is_empty() {
                println!("no targets in {table}; add one with `deployctl target apply <spec.json>`");
            }
            for t in targets {
                println!("{}\t{}\t{}\t{}", t.function, t.repository, t.tag_pattern, t.alias);
            }
        }
        Command::Target(TargetCommand::Show { function }) => {
            let name = FunctionName::parse(&function)?;
            match store().await.get(&name).await? {
                Some(t) => println!("{}", serde_json::to_string_pretty(&t)?),
                None => bail!("no target named {function} in {table}"),
            }
        }
        Command::Target(TargetCommand::Delete { function }) => {
            let name = FunctionName::parse(&function)?;
            let store = store().await;
            if store.get(&name).await?.is_none() {
                bail!("no target named {function} in {table}");
            }
            store.delete(&name).await?;
            println!("target {function} deleted; the function and its alias are unchanged");
        }
        Command::Watch { execution, function, digest, expect, timeout } => {
            let sdk = step::sdk_config().await;
            let reader = ExecutionReader::from_sdk(&sdk);
            let arn = match (execution, function, digest) {
                (Some(arn), _, _) => arn,
                (None, Some(f), Some(d)) => {
                    let f = FunctionName::parse(&f)?;
                    let d = ImageDigest::parse(&d)?;
                    let sm = state_machine(&reader, &cli.stack).await?;
                    execution_arn(&sm, &decisions::execution_name(&f, &d))
                }
                _ => bail!("name the execution: --execution ARN, or --function NAME --digest sha256:..."),
            };
            watch(&reader, &arn, expect, timeout).await?;
        }
        Command::History { function, limit } => {
            let sdk = step::sdk_config().await;
            let table = format!("{}-deployments", cli.stack);
            let name = FunctionName::parse(&function)?;
            let records = DynamoLedger::from_sdk(&sdk, &table).history(&name, limit).await?;
            if records.is_empty() {
                println!("no deployments of {function} on record in {table}");
            }
            for r in records {
                let outcome = serde_json::to_value(r.outcome)?.as_str().unwrap_or_default().to_string();
                println!(
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
        }
        Command::Deploy { function, digest, tag, no_wait } => {
            let sdk = step::sdk_config().await;
            let name = FunctionName::parse(&function)?;
            let target = store().await.get(&name).await?.with_context(|| {
                format!("no target named {function} in {table}; register it with `deployctl target apply <spec.json>`")
            })?;
            let registry = EcrRegistry::from_sdk(&sdk);
            // The tag is only a name for the image: Prepare reads the image's tags from ECR and deploys it only
            // if it carries the tag named (or, with none named, a tag the target allows).
            let (digest, tag) = match (digest, tag) {
                (Some(d), Some(t)) => (ImageDigest::parse(&d)?, t),
                (Some(d), None) => {
                    let d = ImageDigest::parse(&d)?;
                    let image = registry
                        .describe_image(&target.repository, &d)
                        .await?
                        .with_context(|| format!("no image {d} in repository {}", target.repository))?;
                    let tag = image.tags.into_iter().find(|t| target.allows_tag(t)).with_context(|| {
                        format!("image {d} has no tag matching {:?}: pass --tag", target.tag_pattern)
                    })?;
                    (d, tag)
                }
                (None, Some(t)) => {
                    let images = registry.list_images(&target.repository).await?;
                    let image = images
                        .into_iter()
                        .find(|i| i.tags.contains(&t))
                        .with_context(|| format!("no image tagged {t} in repository {}", target.repository))?;
                    (image.digest, t)
                }
                (None, None) => bail!("name the image: --digest sha256:... or --tag TAG"),
            };
            let reader = ExecutionReader::from_sdk(&sdk);
            let sm = state_machine(&reader, &cli.stack).await?;
            let request = ExecutionInput::Deploy(DeployRequest {
                target: name.clone(),
                repository: target.repository.clone(),
                image_digest: digest,
                image_tag: Some(tag),
                queued: None,
            });
            let exec = format!("manual-{}-{}", function, deployer_core::steps::now_ms());
            let arn = match SfnExecutions::from_sdk(&sdk, &sm).start(&exec, &serde_json::to_string(&request)?).await? {
                StartOutcome::Started { execution_arn } => execution_arn,
                StartOutcome::AlreadyStarted => execution_arn(&sm, &exec),
            };
            println!("started {arn}");
            if !no_wait {
                watch(&reader, &arn, Expect::Succeeded, 3600).await?;
            }
        }
        Command::Status { function } => {
            let sdk = step::sdk_config().await;
            let name = FunctionName::parse(&function)?;
            let target = store().await.get(&name).await?.with_context(|| format!("no target named {function}"))?;
            let ledger = DynamoLedger::from_sdk(&sdk, &format!("{}-deployments", cli.stack));
            let alias = LambdaControlPlane::from_sdk(&sdk).get_alias(&name, &target.alias).await?;
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
            let lock = ledger.lock_state(&name).await?;
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
                println!("no deployment of {function} is running; {split}");
                println!("{queue}");
                return Ok(());
            };
            let reader = ExecutionReader::from_sdk(&sdk);
            let sm = state_machine(&reader, &cli.stack).await?;
            let arn = execution_arn(&sm, &owner);
            let history = reader.history(&arn, 0).await?;
            let state = history.iter().rev().find_map(|s| s.state.clone()).unwrap_or_else(|| "-".into());
            let verdict = history
                .iter()
                .rev()
                .filter(|s| s.state.as_deref() == Some("Check Health"))
                .find_map(|s| s.output.as_deref())
                .and_then(|o| serde_json::from_str::<serde_json::Value>(o).ok())
                .and_then(|v| v["health"]["value"]["verdict"].as_str().map(str::to_string));
            println!("running: {owner}, in state {state:?}; {split}");
            if let Some(v) = verdict {
                println!("last health check: {v}");
            }
            println!("{queue}");
        }
        Command::Promote { function, reason } => {
            let (ledger, name, owner) = running(&cli.stack, &function).await?;
            ledger.send_command(&name, &owner, &PortCommand::Promote, &reason).await?;
            println!("{owner}: promote sent; all traffic moves at its next health check");
        }
        Command::Abort { function, reason } => {
            let (ledger, name, owner) = running(&cli.stack, &function).await?;
            ledger.send_command(&name, &owner, &PortCommand::Abort, &reason).await?;
            println!("{owner}: abort sent; it rolls back at its next health check");
        }
        Command::Rollback { function, to, reason } => {
            let sdk = step::sdk_config().await;
            let reader = ExecutionReader::from_sdk(&sdk);
            let sm = state_machine(&reader, &cli.stack).await?;
            // A deployment still running is not aborted here: the rollback's own execution tells it to roll
            // back (to the version that served before it), once, as it does for a rollback sent as raw input.
            let request = ExecutionInput::Rollback(RollbackRequest {
                action: None,
                function: FunctionName::parse(&function)?,
                to_version: to.as_deref().map(Version::parse).transpose()?,
                reason,
            });
            let name = format!("rollback-{}-{}", function, deployer_core::steps::now_ms());
            let input = serde_json::to_string(&request)?;
            let arn = match SfnExecutions::from_sdk(&sdk, &sm).start(&name, &input).await? {
                StartOutcome::Started { execution_arn } => execution_arn,
                StartOutcome::AlreadyStarted => execution_arn(&sm, &name),
            };
            println!("started {arn}");
            watch(&reader, &arn, Expect::Succeeded, 600).await?;
        }
    }
    Ok(())
}

/// Refuse a target the deployer stack's policy does not allow (what its Prepare step would refuse).
async fn check_policy(stack: &str, spec: &spec::TargetSpec) -> anyhow::Result<()> {
    let sdk = step::sdk_config().await;
    let policy = deployer_aws::stack::policy(&sdk, stack)
        .await
        .with_context(|| format!("cannot read the policy of deployer stack {stack} (--offline checks the spec alone)"))?
        .with_context(|| {
            format!(
                "no deployer stack {stack} in this account and region (its function {stack}-prepare does not \
                 exist): name it with --stack, or check the spec alone with `target validate --offline`"
            )
        })?;
    policy.check(spec)?;
    Ok(())
}

/// The function's running deployment (the holder of its lock).
async fn running(stack: &str, function: &str) -> anyhow::Result<(DynamoLedger, FunctionName, String)> {
    let sdk = step::sdk_config().await;
    let name = FunctionName::parse(function)?;
    let ledger = DynamoLedger::from_sdk(&sdk, &format!("{stack}-deployments"));
    let (owner, _) = ledger.holder(&name).await?.with_context(|| {
        format!("no deployment of {function} is running (nothing holds its lock); see `deployctl history {function}`")
    })?;
    Ok((ledger, name, owner))
}

async fn state_machine(reader: &ExecutionReader, stack: &str) -> anyhow::Result<String> {
    let name = format!("{stack}-deploy");
    reader
        .state_machine_arn(&name)
        .await?
        .with_context(|| format!("no state machine named {name}: is the deployer stack {stack} deployed? (--stack)"))
}

fn execution_arn(state_machine: &str, name: &str) -> String {
    format!("{}:{name}", state_machine.replacen(":stateMachine:", ":execution:", 1))
}

/// A cause as a person reads it: a step's error comes as Lambda's JSON (`{"errorType", "errorMessage"}`, with
/// the message's quotes escaped); its message alone. Anything else as it is.
fn readable(detail: &str) -> String {
    let (head, json) = match detail.find('{') {
        Some(i) => detail.split_at(i),
        None => return detail.to_string(),
    };
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(v) if v["errorMessage"].is_string() => format!("{head}{}", v["errorMessage"].as_str().unwrap_or_default()),
        _ => detail.to_string(),
    }
}

/// Print each state as the execution enters it, then how it ended.
async fn watch(reader: &ExecutionReader, arn: &str, expect: Expect, timeout: u64) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let limit = std::time::Duration::from_secs(timeout);
    let mut last = 0;
    let mut first_ms = None;
    loop {
        let Some(view) = reader.describe(arn).await? else {
            if started.elapsed() > limit {
                bail!("no execution {arn} after {timeout} s: was the push seen by the deployer?");
            }
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            continue;
        };
        for step in reader.history(arn, last).await? {
            last = step.id;
            let t0 = *first_ms.get_or_insert(step.at_ms);
            let at = (step.at_ms - t0) as f64 / 1000.0;
            match (&step.state, &step.detail) {
                (Some(state), _) if step.kind.ends_with("StateEntered") => println!("  {at:>6.1}s  {state}"),
                (_, Some(detail)) => println!("  {at:>6.1}s    ! {}: {}", step.kind, readable(detail)),
                _ => {}
            }
        }
        if view.status != "RUNNING" {
            let detail = match view.status.as_str() {
                "SUCCEEDED" => {
                    queued_line(arn, view.output.as_deref()).unwrap_or_else(|| view.output.unwrap_or_default())
                }
                _ => format!("{}: {}", view.error.unwrap_or_default(), readable(&view.cause.unwrap_or_default())),
            };
            println!("{}: {detail}", view.status);
            let ok = match expect {
                Expect::Succeeded => view.status == "SUCCEEDED",
                Expect::Failed => view.status == "FAILED",
                Expect::Any => true,
            };
            if !ok {
                bail!(
                    "execution ended {} (expected {})",
                    view.status,
                    match expect {
                        Expect::Succeeded => "SUCCEEDED",
                        Expect::Failed => "FAILED",
                        Expect::Any => "any",
                    }
                );
            }
            return Ok(());
        }
        if started.elapsed() > limit {
            bail!("execution {arn} still running after {timeout} s");
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}

/// For an execution that ended queued (its output is the plan, with `queued`): what it waits behind, and
/// the name its deployment starts under.
fn queued_line(arn: &str, output: Option<&str>) -> Option<String> {
    let plan: serde_json::Value = serde_json::from_str(output?).ok()?;
    let why = plan["queued"]["why"].as_str()?;
    let name = arn.rsplit(':').next().unwrap_or_default();
    let function = FunctionName::parse(plan["target"]["function"].as_str()?).ok()?;
    let digest = ImageDigest::parse(plan["imageDigest"].as_str()?).ok()?;
    let next = decisions::next_attempt(name, &function, &digest);
    Some(format!(
        "queued: {why}. Its deployment starts as {next} (unless a newer push replaces it); `deployctl status \
         {function}` shows the queue"
    ))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("deployctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}
