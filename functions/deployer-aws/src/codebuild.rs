//! [`Builds`] over AWS CodeBuild: StartBuild with the deployment's environment, BatchGetBuilds to follow it.

use aws_sdk_codebuild::types::{EnvironmentVariable, EnvironmentVariableType};
use deployer_core::model::BuildState;
use deployer_core::ports::{Builds, Result};

use crate::errors::{to_deploy_error, Call};

const CODEBUILD: &str = "CodeBuild";

#[derive(Debug, Clone)]
pub struct CodeBuildProjects {
    client: aws_sdk_codebuild::Client,
}

impl CodeBuildProjects {
    pub fn from_sdk(sdk: &aws_config::SdkConfig) -> Self {
        CodeBuildProjects { client: aws_sdk_codebuild::Client::new(sdk) }
    }
}

fn state(b: &aws_sdk_codebuild::types::Build) -> BuildState {
    let failed_phase = b
        .phases()
        .iter()
        .find(|p| p.phase_status().is_some_and(|s| !matches!(s.as_str(), "SUCCEEDED" | "IN_PROGRESS")));
    BuildState {
        id: b.id().unwrap_or_default().to_string(),
        status: b.build_status().map(|s| s.as_str().to_string()).unwrap_or_else(|| "IN_PROGRESS".into()),
        failed_phase: failed_phase.map(|p| {
            let why = p.contexts().iter().filter_map(|c| c.message()).collect::<Vec<_>>().join("; ");
            (p.phase_type().map(|t| t.as_str().to_string()).unwrap_or_default(), why)
        }),
        logs: b.logs().and_then(|l| Some(format!("{}/{}", l.group_name()?, l.stream_name()?))),
    }
}

impl Builds for CodeBuildProjects {
    async fn start(&self, project: &str, environment: &[(String, String)]) -> Result<BuildState> {
        let vars: Vec<EnvironmentVariable> = environment
            .iter()
            .filter_map(|(k, v)| {
                EnvironmentVariable::builder().name(k).value(v).r#type(EnvironmentVariableType::Plaintext).build().ok()
            })
            .collect();
        let out = self
            .client
            .start_build()
            .project_name(project)
            .set_environment_variables_override(Some(vars))
            .send()
            .await
            .map_err(|e| to_deploy_error(e, Call { service: CODEBUILD, operation: "StartBuild", resource: project }))?;
        Ok(out.build_value().map(state).unwrap_or_else(|| BuildState {
            id: String::new(),
            status: "FAULT".into(),
            failed_phase: Some(("SUBMITTED".into(), "StartBuild answered no build".into())),
            logs: None,
        }))
    }

    async fn get(&self, id: &str) -> Result<Option<BuildState>> {
        let out =
            self.client.batch_get_builds().ids(id).send().await.map_err(|e| {
                to_deploy_error(e, Call { service: CODEBUILD, operation: "BatchGetBuilds", resource: id })
            })?;
        Ok(out.builds().iter().find(|b| b.id() == Some(id)).map(state))
    }
}
