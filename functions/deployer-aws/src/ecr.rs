//! [`ImageRegistry`] over ECR.

use aws_sdk_ecr::types::ImageIdentifier;
use deployer_core::ids::{ImageDigest, RepositoryName};
use deployer_core::model::ImageInfo;
use deployer_core::ports::{ImageRegistry, Result};
use deployer_core::DeployError;

use crate::errors::{aws_message, is_not_found, to_deploy_error, Call, ECR};

/// The account's ECR registry in one region.
#[derive(Debug, Clone)]
pub struct EcrRegistry {
    client: aws_sdk_ecr::Client,
    /// The region in image URIs (`<account>.dkr.ecr.<region>.amazonaws.com/<repository>`).
    region: String,
}

impl EcrRegistry {
    pub fn new(client: aws_sdk_ecr::Client, region: impl Into<String>) -> Self {
        EcrRegistry { client, region: region.into() }
    }
}

/// A repository's URI, in the DNS suffix of the region's partition: `amazonaws.com`, or `amazonaws.com.cn`
/// in the China regions (ECR's endpoints in the AWS General Reference).
fn repository_uri(registry: &str, region: &str, repository: &RepositoryName) -> String {
    let suffix = if region.starts_with("cn-") { "amazonaws.com.cn" } else { "amazonaws.com" };
    format!("{registry}.dkr.ecr.{region}.{suffix}/{repository}")
}

impl ImageRegistry for EcrRegistry {
    async fn describe_image(&self, repository: &RepositoryName, digest: &ImageDigest) -> Result<Option<ImageInfo>> {
        let result = self
            .client
            .describe_images()
            .repository_name(repository.as_str())
            .image_ids(ImageIdentifier::builder().image_digest(digest.as_str()).build())
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => match e.as_service_error() {
                Some(s) if s.is_repository_not_found_exception() => {
                    return Err(DeployError::invalid(format!(
                        "repository {repository} does not exist in this account/region ({}): {}",
                        self.region,
                        aws_message(s)
                    )))
                }
                _ => {
                    let resource = format!("{repository}@{digest}");
                    return Err(to_deploy_error(
                        e,
                        Call { service: ECR, operation: "DescribeImages", resource: &resource },
                    ));
                }
            },
        };
        let Some(detail) = out.image_details().first() else {
            return Ok(None);
        };
        let registry = detail.registry_id().ok_or_else(|| DeployError::AwsRefused {
            service: ECR,
            operation: "DescribeImages",
            message: format!("{repository}@{digest}: the answer has no registryId"),
        })?;
        Ok(Some(ImageInfo {
            digest: digest.clone(),
            tags: detail.image_tags().to_vec(),
            manifest_media_type: detail.image_manifest_media_type().map(str::to_string),
            repository_uri: repository_uri(registry, &self.region, repository),
            pushed_at_ms: detail.image_pushed_at().and_then(|t| t.to_millis().ok()),
        }))
    }

    async fn list_images(&self, repository: &RepositoryName) -> Result<Vec<ImageInfo>> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .describe_images()
                .repository_name(repository.as_str())
                .filter(
                    aws_sdk_ecr::types::DescribeImagesFilter::builder()
                        .tag_status(aws_sdk_ecr::types::TagStatus::Tagged)
                        .build(),
                )
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| {
                    to_deploy_error(
                        e,
                        Call { service: ECR, operation: "DescribeImages", resource: repository.as_str() },
                    )
                })?;
            for d in page.image_details() {
                let (Some(digest), Some(registry)) = (d.image_digest(), d.registry_id()) else { continue };
                let Ok(digest) = ImageDigest::parse(digest) else { continue };
                out.push(ImageInfo {
                    digest,
                    tags: d.image_tags().to_vec(),
                    manifest_media_type: d.image_manifest_media_type().map(str::to_string),
                    repository_uri: repository_uri(registry, &self.region, repository),
                    pushed_at_ms: d.image_pushed_at().and_then(|t| t.to_millis().ok()),
                });
            }
            token = page.next_token().map(str::to_string);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    async fn tag_image(&self, repository: &RepositoryName, digest: &ImageDigest, tag: &str) -> Result<()> {
        let resource = format!("{repository}@{digest}");
        let got = self
            .client
            .batch_get_image()
            .repository_name(repository.as_str())
            .image_ids(ImageIdentifier::builder().image_digest(digest.as_str()).build())
            .send()
            .await
            .map_err(|e| to_deploy_error(e, Call { service: ECR, operation: "BatchGetImage", resource: &resource }))?;
        let Some(image) = got.images().first() else {
            return Err(DeployError::invalid(format!("image {resource} is no longer in the repository")));
        };
        if image.image_id().and_then(|i| i.image_tag()) == Some(tag) {
            return Ok(());
        }
        let put = self
            .client
            .put_image()
            .repository_name(repository.as_str())
            .image_manifest(image.image_manifest().unwrap_or_default())
            .set_image_manifest_media_type(image.image_manifest_media_type().map(str::to_string))
            .image_digest(digest.as_str())
            .image_tag(tag)
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            // Already tagged so (a re-run): nothing to do.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_image_already_exists_exception()) => Ok(()),
            Err(e) => Err(to_deploy_error(e, Call { service: ECR, operation: "PutImage", resource: &resource })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_uris_use_the_partitions_dns_suffix() {
        let repo = RepositoryName::parse("ml/inference").unwrap();
        let cases = [
            ("us-east-1", "123456789012.dkr.ecr.us-east-1.amazonaws.com/ml/inference"),
            ("us-gov-west-1", "123456789012.dkr.ecr.us-gov-west-1.amazonaws.com/ml/inference"),
            ("cn-north-1", "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/ml/inference"),
        ];
        for (region, want) in cases {
            assert_eq!(repository_uri("123456789012", region, &repo), want, "{region}");
        }
    }
}
