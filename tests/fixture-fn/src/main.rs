//! A small real Lambda function: local AWS's self-tests run it as the code under test.
//!
//! What it does is chosen by the event, so one binary exercises every path of the Runtime API:
//! `{"echo": x}` answers `x` with the invocation's context; `{"sleepMs": n}` takes n ms (timeouts);
//! `{"fail": {"type": t, "message": m}}` is a handler error of type `t`; `{"exit": code}` ends the process
//! mid-invocation; `{"print": s}` writes `s` to stdout (logs). `FIXTURE_INIT=exit` makes init fail by
//! exiting, `FIXTURE_INIT=report` by reporting to the Runtime API's `/runtime/init/error`, and
//! `FIXTURE_VARIANT` is echoed back so tests can tell two builds or configurations apart, and
//! `FIXTURE_BROKEN` (any value) makes it answer every echo wrongly, as a bad build would.
//! `{"traffic": x}` is production traffic: `FIXTURE_TRAFFIC=fail` fails it (a build that passes its smoke
//! test and breaks on real requests), `FIXTURE_TRAFFIC=slow:<ms>` takes that long to answer it.

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::{json, Value};

#[derive(Debug)]
struct Failure {
    kind: String,
    message: String,
}

impl From<Failure> for Diagnostic {
    fn from(f: Failure) -> Self {
        Diagnostic { error_type: f.kind, error_message: f.message }
    }
}

async fn handle(event: LambdaEvent<Value>) -> Result<Value, Failure> {
    let (payload, ctx) = event.into_parts();
    if let Some(line) = payload.get("print").and_then(Value::as_str) {
        println!("{line}");
    }
    if let Some(ms) = payload.get("sleepMs").and_then(Value::as_u64) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    if let Some(code) = payload.get("exit").and_then(Value::as_i64) {
        std::process::exit(code as i32);
    }
    if let Some(fail) = payload.get("fail") {
        return Err(Failure {
            kind: fail["type"].as_str().unwrap_or("FixtureError").to_string(),
            message: fail["message"].as_str().unwrap_or("failed on request").to_string(),
        });
    }
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if payload.get("traffic").is_some() {
        match env("FIXTURE_TRAFFIC").as_deref() {
            Some("fail") => {
                return Err(Failure { kind: "ModelError".into(), message: "this build fails on real traffic".into() })
            }
            Some(slow) if slow.starts_with("slow:") => {
                let ms = slow["slow:".len()..].parse().unwrap_or(0);
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            }
            _ => {}
        }
    }
    if let Some(n) = payload.get("pad").and_then(Value::as_u64) {
        // An answer of n bytes: Step Functions' state size limit is tested with it.
        return Ok(json!({"pad": "x".repeat(n as usize)}));
    }
    if payload.get("credentials").is_some() {
        // The role session Lambda handed the function: local AWS's IAM tests sign calls with it.
        return Ok(json!({
            "accessKeyId": env("AWS_ACCESS_KEY_ID"),
            "secretAccessKey": env("AWS_SECRET_ACCESS_KEY"),
            "sessionToken": env("AWS_SESSION_TOKEN"),
        }));
    }
    let echo = if env("FIXTURE_BROKEN").is_some() {
        json!("broken build: wrong answer")
    } else {
        payload.get("echo").cloned().unwrap_or(Value::Null)
    };
    tracing::info!(request_id = %ctx.request_id, "fixture handled an event");
    Ok(json!({
        "echo": echo,
        "requestId": ctx.request_id,
        "functionArn": ctx.invoked_function_arn,
        "deadlineMs": ctx.deadline,
        "variant": env("FIXTURE_VARIANT"),
        "functionName": env("AWS_LAMBDA_FUNCTION_NAME"),
        "functionVersion": env("AWS_LAMBDA_FUNCTION_VERSION"),
        "memorySize": env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
        "logFormat": env("AWS_LAMBDA_LOG_FORMAT"),
        "logGroup": env("AWS_LAMBDA_LOG_GROUP_NAME"),
        "region": env("AWS_REGION"),
    }))
}

/// Report a failed init through the Runtime API's `/runtime/init/error`, as a runtime does.
fn report_init_error(kind: &str, message: &str) {
    use std::io::{Read, Write};
    let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API") else { return };
    let body = json!({"errorType": kind, "errorMessage": message}).to_string();
    let request = format!(
        "POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: {api}\r\nLambda-Runtime-Function-Error-Type: {kind}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if let Ok(mut stream) = std::net::TcpStream::connect(&api) {
        let _ = stream.write_all(request.as_bytes());
        let _ = stream.read_to_end(&mut Vec::new());
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    match std::env::var("FIXTURE_INIT").as_deref() {
        Ok("exit") => {
            eprintln!("fixture: FIXTURE_INIT=exit, failing init on purpose");
            std::process::exit(3);
        }
        Ok("report") => {
            report_init_error("Fixture.InitError", "the fixture was told to fail its init");
            std::process::exit(1);
        }
        Ok(slow) if slow.starts_with("slow:") => {
            // A slow init (a model being loaded): Lambda reports it as Init Duration, not in Duration.
            let ms = slow["slow:".len()..].parse().unwrap_or(0);
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        _ => {}
    }
    lambda_runtime::run(service_fn(handle)).await
}
