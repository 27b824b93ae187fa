//! deployctl as a new user meets it, with no AWS to talk to: its help, its usage errors, what it says when
//! there is no endpoint or no credentials, and a reader that goes away early. Each failure is one line that
//! says what to do, with the exit code `deployctl --help` documents.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn deployctl() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_deployctl"));
    // Nothing from the machine's own AWS set-up: each test says what it has.
    for var in [
        "AWS_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "DEPLOYER_STACK",
        "DEPLOYER_TARGETS_TABLE",
    ] {
        cmd.env_remove(var);
    }
    let home = scratch("home");
    cmd.env("HOME", &home).env("AWS_EC2_METADATA_DISABLED", "true").env("AWS_REGION", "us-east-1");
    cmd
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("deployctl-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An endpoint nothing listens on, and credentials: every AWS call fails to connect.
fn unreachable(cmd: &mut Command) -> &mut Command {
    cmd.env("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn example_spec() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/ml-inference/target.json")
}

#[test]
fn help_documents_every_option_and_the_exit_codes() {
    let out = deployctl().arg("--help").output().unwrap();
    let (stdout, _) = text(&out);
    assert!(out.status.success(), "{stdout}");
    // The README's exit-code table and --help say the same.
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap();
    let table: Vec<String> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| ")?.split_once(" | "))
        .filter(|(code, _)| code.len() == 1 && code.chars().all(|c| c.is_ascii_digit()))
        .map(|(code, meaning)| format!("{code} {}", meaning.split(':').next().unwrap_or_default()))
        .collect();
    assert_eq!(table, ["0 done", "1 failed", "2 bad usage", "3 nothing to do", "4 refused"], "README's exit codes");
    for code in &table {
        assert!(stdout.contains(code.as_str()), "no {code:?} in --help: {stdout}");
    }
    let out = deployctl().args(["rollback", "--help"]).output().unwrap();
    let (stdout, _) = text(&out);
    for option in ["--to <TO>", "--reason <REASON>", "--stack <STACK>"] {
        let line = stdout.lines().find(|l| l.contains(option)).unwrap_or_else(|| panic!("no {option}: {stdout}"));
        assert!(line.trim().len() > option.len() + 10, "{option} has no description: {line:?}");
    }
    let out = deployctl().args(["deploy", "--help"]).output().unwrap();
    let (stdout, _) = text(&out);
    for option in ["--digest <DIGEST>", "--tag <TAG>", "--no-wait"] {
        let line = stdout.lines().find(|l| l.contains(option)).unwrap_or_else(|| panic!("no {option}: {stdout}"));
        assert!(line.trim().len() > option.len() + 10, "{option} has no description: {line:?}");
    }
}

#[test]
fn a_history_limit_of_zero_is_a_usage_error_and_reads_nothing() {
    // The endpoint is unreachable: had deployctl called AWS, it would say so instead.
    let out = unreachable(&mut deployctl()).args(["history", "ml-inference", "--limit", "0"]).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("--limit") && stderr.contains("1..=1000"), "{stderr}");
    assert!(!stderr.contains("cannot reach"), "{stderr}");
}

#[test]
fn a_malformed_argument_is_a_usage_error_that_names_it() {
    let out = unreachable(&mut deployctl())
        .args(["deploy", "ml-inference", "--digest", "not-a-digest", "--tag", "v1"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with("deployctl: --digest:") && stderr.lines().count() == 1, "{stderr}");
    let out = unreachable(&mut deployctl()).args(["rollback", "ml-inference", "--to", "v7"]).output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with("deployctl: --to:"), "{stderr}");
}

#[test]
fn no_endpoint_to_reach_is_one_line_that_names_the_endpoint_and_how_to_start_local_aws() {
    for args in [vec!["history", "ml-inference"], vec!["status", "ml-inference"], vec!["target", "list"]] {
        let out = unreachable(&mut deployctl()).args(&args).output().unwrap();
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stdout}{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: not one line: {stderr}");
        assert!(
            stderr.contains("cannot reach")
                && stderr.contains("http://127.0.0.1:1")
                && stderr.contains("AWS_ENDPOINT_URL"),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("DispatchFailure") && !stderr.contains("ConnectorError"), "{args:?}: {stderr}");
    }
    // --verbose adds AWS's (the SDK's) own answer
    let out = unreachable(&mut deployctl()).args(["--verbose", "history", "ml-inference"]).output().unwrap();
    let (_, stderr) = text(&out);
    assert!(stderr.contains("cannot reach") && stderr.contains("detail:"), "{stderr}");
}

#[test]
fn no_credentials_is_one_line_that_says_where_to_set_them() {
    let out = deployctl().env("AWS_ENDPOINT_URL", "http://127.0.0.1:1").args(["history", "ml-inference"]).output();
    let out = out.unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no AWS credentials") && stderr.contains("AWS_PROFILE"), "{stderr}");
}

#[test]
fn offline_validation_needs_no_aws_and_a_bad_spec_is_refused() {
    // No endpoint, no credentials: --offline reads the file alone.
    let out = deployctl().args(["target", "validate", "--offline"]).arg(example_spec()).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("valid target for ml-inference") && stdout.contains("--offline"), "{stdout}");

    let bad = scratch("spec").join("bad.json");
    std::fs::write(&bad, r#"{"function": "ml-inference", "repository": "ml-inference"}"#).unwrap();
    let out = deployctl().args(["target", "validate", "--offline"]).arg(&bad).output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("is not a valid target spec"), "{stderr}");

    let missing = scratch("spec").join("missing.json");
    let out = deployctl().args(["target", "validate", "--offline"]).arg(&missing).output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot read") && stderr.contains("missing.json"), "{stderr}");
}

#[test]
fn a_reader_that_goes_away_early_ends_deployctl_quietly() {
    // `deployctl ... | head`: the pipe's reading end is closed before deployctl writes its first line.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = deployctl()
        .args(["target", "validate", "--offline"])
        .arg(example_spec())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
