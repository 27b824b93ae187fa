//! Polling for the asynchronous parts of AWS. Tests may poll; Lambda steps never do.

use std::time::{Duration, Instant};

use aws_sdk_lambda::types::{FunctionConfiguration, LastUpdateStatus, State};

/// Poll until the function's update (or creation) is over; returns the final configuration.
pub async fn function_settled(lambda: &aws_sdk_lambda::Client, name: &str) -> FunctionConfiguration {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let cfg =
            lambda.get_function_configuration().function_name(name).send().await.expect("GetFunctionConfiguration");
        let pending =
            cfg.state() == Some(&State::Pending) || cfg.last_update_status() == Some(&LastUpdateStatus::InProgress);
        if !pending {
            return to_config(cfg);
        }
        assert!(Instant::now() < deadline, "{name} still updating after 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn to_config(
    out: aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput,
) -> FunctionConfiguration {
    FunctionConfiguration::builder()
        .set_function_name(out.function_name().map(str::to_string))
        .set_state(out.state().cloned())
        .set_state_reason(out.state_reason().map(str::to_string))
        .set_state_reason_code(out.state_reason_code().cloned())
        .set_last_update_status(out.last_update_status().cloned())
        .set_last_update_status_reason(out.last_update_status_reason().map(str::to_string))
        .set_last_update_status_reason_code(out.last_update_status_reason_code().cloned())
        .set_revision_id(out.revision_id().map(str::to_string))
        .set_code_sha256(out.code_sha256().map(str::to_string))
        .build()
}

/// Poll until the execution has ended; returns (status, output or cause).
pub async fn execution_done(sfn: &aws_sdk_sfn::Client, arn: &str, limit: Duration) -> (String, String) {
    let deadline = Instant::now() + limit;
    loop {
        let d = sfn.describe_execution().execution_arn(arn).send().await.expect("DescribeExecution");
        let status = d.status().as_str().to_string();
        if status != "RUNNING" {
            let detail = d
                .output()
                .map(str::to_string)
                .or_else(|| d.cause().map(|c| format!("{}: {c}", d.error().unwrap_or(""))))
                .unwrap_or_default();
            return (status, detail);
        }
        assert!(Instant::now() < deadline, "execution {arn} still running after {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
