//! The acceptance stage: the team's integration suite, run in CodeBuild against the candidate version
//! (by its version number, not the alias: no traffic has moved yet). Its result gates the deployment.

use crate::budget::{poll_wait_seconds, BUILD_POLL_CAP_SECONDS};
use crate::plan::{AcceptanceInput, AcceptanceState, AcceptanceStatus};
use crate::ports::Builds;
use crate::DeployError;

/// Start the build (once), then report it: running, passed, or an AcceptanceFailed error saying which
/// phase failed, why, and where its output is.
pub async fn acceptance(
    builds: &impl Builds,
    input: AcceptanceInput,
    now_ms: i64,
) -> Result<AcceptanceState, DeployError> {
    let plan = &input.plan;
    let t = &plan.target;
    let Some(stage) = &t.acceptance else {
        return Ok(AcceptanceState {
            status: AcceptanceStatus::None,
            build_id: None,
            started_at_ms: now_ms,
            wait_seconds: 0,
        });
    };
    let started = input.acceptance.as_ref().map_or(now_ms, |a| a.started_at_ms);
    let elapsed_s = u64::try_from((now_ms - started).max(0) / 1000).unwrap_or(0);
    let wait_seconds = poll_wait_seconds(elapsed_s, BUILD_POLL_CAP_SECONDS);
    let Some(id) = input.acceptance.as_ref().and_then(|a| a.build_id.clone()) else {
        let version = &input.published.version;
        let mut environment: Vec<(String, String)> = vec![
            ("DEPLOY_FUNCTION".into(), t.function.to_string()),
            ("DEPLOY_QUALIFIER".into(), version.to_string()),
            ("DEPLOY_ALIAS".into(), t.alias.to_string()),
            (
                "DEPLOY_PREVIOUS_VERSION".into(),
                plan.previous_version.as_ref().map(|v| v.to_string()).unwrap_or_default(),
            ),
            ("DEPLOY_IMAGE_DIGEST".into(), plan.image_digest.to_string()),
            ("DEPLOY_IMAGE_TAG".into(), plan.image_tag.clone()),
        ];
        environment.extend(stage.environment.iter().map(|(k, v)| (k.clone(), v.clone())));
        let build = builds.start(&stage.project, &environment).await?;
        tracing::info!(function = %t.function, %version, project = %stage.project, build = %build.id, "acceptance build started");
        return Ok(AcceptanceState {
            status: AcceptanceStatus::Running,
            build_id: Some(build.id),
            started_at_ms: now_ms,
            wait_seconds,
        });
    };
    let build = builds.get(&id).await?.ok_or_else(|| DeployError::AcceptanceFailed {
        function: t.function.to_string(),
        report: format!("build {id} of project {} is gone", stage.project),
    })?;
    let running = AcceptanceState {
        status: AcceptanceStatus::Running,
        build_id: Some(id.clone()),
        started_at_ms: started,
        wait_seconds,
    };
    let logs = build.logs.as_deref().map(|l| format!("; output in CloudWatch Logs {l}")).unwrap_or_default();
    match build.status.as_str() {
        "SUCCEEDED" => {
            tracing::info!(function = %t.function, build = %id, "acceptance passed");
            Ok(AcceptanceState { status: AcceptanceStatus::Passed, ..running })
        }
        "IN_PROGRESS" if now_ms - started <= i64::from(stage.timeout_seconds) * 1000 => Ok(running),
        "IN_PROGRESS" => Err(DeployError::AcceptanceFailed {
            function: t.function.to_string(),
            report: format!(
                "build {id} still running after {} s (acceptance.timeoutSeconds {}){logs}",
                (now_ms - started) / 1000,
                stage.timeout_seconds
            ),
        }),
        status => {
            let at =
                build.failed_phase.as_ref().map(|(phase, why)| format!(" in phase {phase}: {why}")).unwrap_or_default();
            Err(DeployError::AcceptanceFailed {
                function: t.function.to_string(),
                report: format!(
                    "build {id} of project {} against version {} ended {status}{at}{logs}",
                    stage.project, input.published.version
                ),
            })
        }
    }
}
