use crate::decisions::version_description;
use crate::plan::{PublishInput, Published};
use crate::ports::FunctionApi;
use crate::DeployError;

/// Publish exactly what passed the smoke test: Lambda refuses if the code (CodeSha256) or anything else
/// (RevisionId) changed since. Publishing an unchanged $LATEST again returns the same version.
pub async fn publish_version(lambda: &impl FunctionApi, input: PublishInput) -> Result<Published, DeployError> {
    let plan = &input.plan;
    let description = version_description(&plan.image_digest, &plan.image_tag, &input.execution);
    let version = lambda
        .publish_version(&plan.target.function, &input.smoke.code_sha256, &input.smoke.revision_id, &description)
        .await?;
    tracing::info!(function = %plan.target.function, version = %version, digest = %plan.image_digest, "version published");
    Ok(Published { version, code_sha256: input.smoke.code_sha256 })
}
