//! The deployer's ports ([`deployer_core::ports`]) implemented over the AWS SDK. This is the only crate
//! that imports `aws_sdk_*`: no SDK type crosses into `deployer-core`, and the function crates only
//! build these adapters from clients.
//!
//! # Layout
//! - [`lambda`]: [`LambdaControlPlane`], the `FunctionApi` (read, create, reconfigure, update code,
//!   publish, aliases, invoke), with `RevisionId` / `CodeSha256` guards on every write that has one.
//! - [`ecr`]: [`EcrRegistry`], the `ImageRegistry` (an image by digest, a repository's images, tags).
//! - [`codebuild`]: [`CodeBuildProjects`], the `Builds` port (the acceptance suite's build: start, read).
//! - [`metrics`]: [`CloudWatchTelemetry`], the `Telemetry` port (per-version invocation statistics and
//!   the gates' alarms).
//! - [`dynamodb`]: [`DynamoTargetStore`], the `TargetStore` (one item per target, the spec as JSON).
//! - [`ledger`]: [`DynamoLedger`], the `DeploymentLedger`: each function's deployment lock (conditional
//!   writes with expiry) and the record of every execution.
//! - [`logs`]: [`CloudWatchLogGroups`], the `LogGroups` port (the managed function's log group and
//!   its retention).
//! - [`sfn`]: [`SfnExecutions`], the `Executions` port (StartExecution; a duplicate name is not an error).
//! - [`stack`]: the deployer stack's own policy, read from its Prepare function (for `deployctl`).
//! - [`step`]: what each step binary's `main` needs: SDK config, static settings, `StepError` (a
//!   `DeployError` reaching Step Functions under its stable name), `from_sdk` constructors.
//! - [`watch`]: reading executions and their history back, for operators (`deployctl watch`).
//! - `errors`: every SDK error to a `DeployError`, through the generated `is_*_exception()` predicates:
//!   conflicts, precondition failures, throttling and AWS-side failures each get their stable name, and
//!   every message carries AWS's own.
//!
//! Clients come from the caller (`aws_sdk_lambda::Client::new(&sdk_config)`), so the same adapters run
//! against AWS, local AWS (`AWS_ENDPOINT_URL`) and `aws-smithy-mocks` in the tests.

pub mod codebuild;
pub mod dynamodb;
pub mod ecr;
mod errors;
pub mod lambda;
pub mod ledger;
pub mod logs;
pub mod metrics;
pub mod sfn;
pub mod stack;
pub mod step;
pub mod watch;

pub use codebuild::CodeBuildProjects;
pub use dynamodb::DynamoTargetStore;
pub use ecr::EcrRegistry;
pub use lambda::LambdaControlPlane;
pub use ledger::DynamoLedger;
pub use logs::CloudWatchLogGroups;
pub use metrics::CloudWatchTelemetry;
pub use sfn::SfnExecutions;
