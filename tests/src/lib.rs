//! Test harness for the end-to-end and local AWS tests.
//!
//! # Layout
//! - [`sdk`]: SDK clients pointed at local AWS (`AWS_ENDPOINT_URL`, default `http://127.0.0.1:4566`),
//!   with retries off so that every injected fault is seen by the test that injected it.
//! - [`fixture`]: the fixture Lambda (`tests/fixture-fn`) built as a static binary, as a zip and as a
//!   container image pushed to local ECR with `scripts/build-image` (the same script CI and the demo use).
//! - [`faults`]: local AWS's fault injection endpoint.
//! - [`wait`]: polling helpers for the asynchronous parts of AWS (function updates, executions).
//! - [`stack`]: the deployer stack itself, deployed to local AWS from template.yaml.
//! - [`traffic`]: production traffic through an alias while a deployment runs.
//!
//! Tests need local AWS running: `scripts/test.sh` starts it; alone, run `scripts/local-aws start`.

pub mod faults;
pub mod fixture;
pub mod readme;
pub mod sdk;
pub mod stack;
pub mod traffic;
pub mod wait;

use std::sync::atomic::{AtomicU32, Ordering};

/// A name no other test (or earlier run against the same local AWS) uses.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{prefix}-{}-{n}-{:x}", std::process::id(), nanos & 0xffff)
}

/// Keep a test's summary where `scripts/test.sh` prints it at the end of the run (cargo hides the
/// output of passing tests), and print it too.
pub fn report(name: &str, summary: &str) {
    println!("{summary}");
    let dir = fixture::target_dir().join("test-reports");
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = std::fs::write(dir.join(format!("{name}.txt")), format!("{summary}\n"));
    }
}
