//! The deployer's domain, free of any AWS SDK type.
//!
//! # Layout
//! - [`ids`]: newtypes for the identifiers that flow through every step (function, version, digest, ...).
//! - [`spec`]: the deployment target a team declares (function, repository, configuration, smoke tests),
//!   and its validation.
//! - [`budget`]: the longest each stage of a deployment may take and the history events its polling may
//!   write, derived from the spec: what must fit the state machine's timeout, its history cap and the lock.
//! - [`policy`]: the stack's own policy (function and role prefixes, allowed repositories, alarm prefix),
//!   checked on every target before it is stored and before it is deployed.
//! - [`event`]: the ECR "ECR Image Action" event as the trigger receives it, and its validation.
//! - [`model`]: the deployer's data: what AWS reports (function, alias, image, build, alarm, version
//!   statistics), the lock and its queue, operator commands, an execution's record and outcome, drift.
//! - [`plan`]: what the state machine carries from step to step (inputs and outputs, camelCase JSON).
//! - [`decisions`]: pure functions that decide (is the function ready, what drifted, did the smoke
//!   test pass, which version to roll back to). Table-tested, no I/O.
//! - [`ports`]: the small traits the steps need from AWS (traits only, over [`model`]); `deployer-aws`
//!   implements them.
//! - [`steps`]: one async function per Task state, over the ports.
//! - [`error`]: [`DeployError`] and its stable error names, which the state machine's Retry and
//!   Catch match.

pub mod budget;
pub mod decisions;
pub mod error;
pub mod event;
pub mod ids;
pub mod model;
pub mod plan;
pub mod policy;
pub mod ports;
pub mod spec;
pub mod steps;

pub use error::DeployError;
