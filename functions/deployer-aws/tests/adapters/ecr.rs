use aws_sdk_ecr::operation::describe_images::{DescribeImagesError, DescribeImagesOutput};
use aws_sdk_ecr::types::error::{ImageNotFoundException, RepositoryNotFoundException, ServerException};
use aws_sdk_ecr::types::ImageDetail;
use aws_sdk_ecr::Client;
use aws_smithy_mocks::mock;
use deployer_aws::EcrRegistry;
use deployer_core::ids::{ImageDigest, RepositoryName};
use deployer_core::model::ImageInfo;
use deployer_core::ports::ImageRegistry;
use deployer_core::DeployError;

use crate::meta;

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

fn repo() -> RepositoryName {
    RepositoryName::parse("team/ml-inference").unwrap()
}

fn digest() -> ImageDigest {
    ImageDigest::parse(DIGEST).unwrap()
}

fn registry(client: Client) -> EcrRegistry {
    EcrRegistry::new(client, "eu-west-1")
}

#[tokio::test]
async fn describe_image_asks_for_the_digest_and_builds_the_repository_uri() {
    let rule = mock!(Client::describe_images)
        .match_requests(|r| {
            r.repository_name() == Some("team/ml-inference")
                && r.image_ids().len() == 1
                && r.image_ids()[0].image_digest() == Some(DIGEST)
                && r.image_ids()[0].image_tag().is_none()
        })
        .then_output(|| {
            DescribeImagesOutput::builder()
                .image_details(
                    ImageDetail::builder()
                        .registry_id("123456789012")
                        .repository_name("team/ml-inference")
                        .image_digest(DIGEST)
                        .image_tags("sha-0123abc")
                        .image_tags("latest")
                        .image_manifest_media_type(MEDIA_TYPE)
                        .image_pushed_at(aws_smithy_types::DateTime::from_millis(1_795_000_000_123))
                        .build(),
                )
                .build()
        });
    let ecr = registry(client!(aws_sdk_ecr, &rule));

    let got = ecr.describe_image(&repo(), &digest()).await.unwrap();

    assert_eq!(
        got,
        Some(ImageInfo {
            digest: digest(),
            tags: vec!["sha-0123abc".into(), "latest".into()],
            manifest_media_type: Some(MEDIA_TYPE.into()),
            repository_uri: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/ml-inference".into(),
            pushed_at_ms: Some(1_795_000_000_123),
        })
    );
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn a_missing_image_is_none() {
    let rule = mock!(Client::describe_images).then_error(|| {
        let message = "The image with imageId {imageDigest:'sha256:0123...'} does not exist";
        DescribeImagesError::ImageNotFoundException(
            ImageNotFoundException::builder().message(message).meta(meta("ImageNotFoundException", message)).build(),
        )
    });

    assert_eq!(registry(client!(aws_sdk_ecr, &rule)).describe_image(&repo(), &digest()).await.unwrap(), None);
}

#[tokio::test]
async fn a_missing_repository_is_invalid_input_naming_it() {
    let rule = mock!(Client::describe_images).then_error(|| {
        let message =
            "The repository with name 'team/ml-inference' does not exist in the registry with id '123456789012'";
        DescribeImagesError::RepositoryNotFoundException(
            RepositoryNotFoundException::builder()
                .message(message)
                .meta(meta("RepositoryNotFoundException", message))
                .build(),
        )
    });

    let got = registry(client!(aws_sdk_ecr, &rule)).describe_image(&repo(), &digest()).await.unwrap_err();

    let DeployError::InvalidInput { message } = &got else { panic!("expected InvalidInput, got {got:?}") };
    assert!(
        message.contains("repository team/ml-inference does not exist in this account/region (eu-west-1)"),
        "{message}"
    );
    assert!(message.contains("registry with id '123456789012'"), "AWS's own message: {message}");
}

#[tokio::test]
async fn unmodeled_throttling_and_server_errors_keep_their_class() {
    // ECR does not model throttling for DescribeImages: it arrives as a generic error with its code.
    let throttled = mock!(Client::describe_images)
        .match_requests(|r| r.repository_name() == Some("throttled"))
        .then_error(|| DescribeImagesError::generic(meta("ThrottlingException", "Rate exceeded")));
    let server =
        mock!(Client::describe_images).match_requests(|r| r.repository_name() == Some("broken")).then_error(|| {
            DescribeImagesError::ServerException(
                ServerException::builder().message("internal").meta(meta("ServerException", "internal")).build(),
            )
        });
    let ecr = registry(client!(aws_sdk_ecr, &throttled, &server));

    let repo = |r: &str| RepositoryName::parse(r).unwrap();
    let got = ecr.describe_image(&repo("throttled"), &digest()).await.unwrap_err();
    assert_eq!(got.name(), "Throttled", "{got}");
    assert!(got.to_string().contains("ThrottlingException: Rate exceeded"), "{got}");
    let got = ecr.describe_image(&repo("broken"), &digest()).await.unwrap_err();
    assert_eq!(got.name(), "AwsUnavailable", "{got}");
    assert!(got.to_string().contains("ServerException: internal"), "{got}");
}
