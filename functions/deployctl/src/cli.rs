//! The command line: what each verb takes. `deployctl <verb> --help` prints these doc comments.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "deployctl",
    version,
    about = "Operate the Lambda deployer",
    after_help = "Exit codes: 0 done (deployed, rolled back, command sent), 1 failed, 2 bad usage, \
                  3 nothing to do (the image is already live, or a newer one is), 4 refused by the \
                  deployer (bad input, unknown target or image: nothing was changed)."
)]
pub struct Cli {
    /// The deployer's CloudFormation stack name; its tables are `<stack>-targets` and `<stack>-deployments`.
    #[arg(long, global = true, default_value = "lambda-deployer", env = "DEPLOYER_STACK")]
    pub stack: String,
    /// The targets table, when it is not `<stack>-targets`.
    #[arg(long, global = true, env = "DEPLOYER_TARGETS_TABLE")]
    pub table: Option<String>,
    /// On an error, print AWS's full answer as well as the one-line message.
    #[arg(long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
        /// With --function: the image's digest (sha256:...).
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
        /// The managed function (its target's name).
        function: String,
        /// How many records to print (1 to 1000).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
    /// Deploy an image (by digest, or the image a tag points at) to a target, as a push would; then follow
    /// it (and, if it queues behind a running deployment, the deployment that starts when that one ends).
    Deploy {
        /// The managed function (its target's name).
        function: String,
        /// The image's digest (sha256:...) in the target's repository.
        #[arg(long, required_unless_present = "tag")]
        digest: Option<String>,
        /// The image's tag: with --digest, a tag the image must carry; alone, the image it points at.
        #[arg(long)]
        tag: Option<String>,
        /// Start it and return, without following it.
        #[arg(long)]
        no_wait: bool,
    },
    /// The running deployment of a function: its state, the alias's traffic split, the last gate readings,
    /// and the image queued behind it.
    Status {
        /// The managed function (its target's name).
        function: String,
    },
    /// Skip the rest of a canary or linear bake: all traffic moves at the next health check.
    Promote {
        /// The managed function (its target's name).
        function: String,
        /// Recorded with the command, and in the deployment's record.
        #[arg(long, default_value = "promoted by an operator")]
        reason: String,
    },
    /// Roll the running deployment back now (all traffic to the version it replaces).
    Abort {
        /// The managed function (its target's name).
        function: String,
        /// Recorded with the command, and in the deployment's record.
        #[arg(long, default_value = "aborted by an operator")]
        reason: String,
    },
    /// Roll a function's alias back (to --to, else to the version it served before) and verify it. A
    /// deployment still running is told to roll back instead (to the version that served before it), once.
    Rollback {
        /// The managed function (its target's name).
        function: String,
        /// The version to roll back to (one the records show served, whose image is still in ECR); by
        /// default the version that served before the current one. Refused while a deployment runs.
        #[arg(long)]
        to: Option<String>,
        /// Why: recorded in the rollback's record and its notification.
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Expect {
    Succeeded,
    Failed,
    Any,
}

impl Expect {
    pub fn allows(self, status: &str) -> bool {
        match self {
            Expect::Succeeded => status == "SUCCEEDED",
            Expect::Failed => status == "FAILED",
            Expect::Any => true,
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Expect::Succeeded => "SUCCEEDED",
            Expect::Failed => "FAILED",
            Expect::Any => "any",
        }
    }
}

#[derive(Subcommand)]
pub enum TargetCommand {
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
    Show {
        /// The managed function (its target's name).
        function: String,
    },
    /// Stop managing a function (the function itself is left as it is).
    Delete {
        /// The managed function (its target's name).
        function: String,
    },
}
