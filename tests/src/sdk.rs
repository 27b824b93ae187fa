//! SDK configuration for local AWS.

use aws_config::{retry::RetryConfig, BehaviorVersion, Region, SdkConfig};

pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";

/// The local AWS endpoint the tests talk to.
pub fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:4566".to_string())
}

/// Local AWS's health: its pid, clock scale (`clockScale`), the time on its clock (`nowMs`), CloudWatch's
/// ingest lag (`metricLagSeconds`).
pub async fn health() -> serde_json::Value {
    let url = format!("{}/_local/health", endpoint());
    let r = reqwest::get(&url).await.unwrap_or_else(|e| panic!("local AWS does not answer at {url}: {e}"));
    r.json().await.expect("local AWS's health is JSON")
}

/// How long local AWS holds a CloudWatch datapoint before GetMetricData/GetMetricStatistics see it.
pub async fn metric_lag_seconds() -> f64 {
    health().await["metricLagSeconds"].as_f64().expect("local AWS reports metricLagSeconds")
}

/// Registry host:port of local ECR (the endpoint without its scheme).
pub fn registry() -> String {
    endpoint().trim_start_matches("http://").trim_end_matches('/').to_string()
}

/// SDK config for local AWS. Panics with what to do when local AWS is not running.
pub async fn config() -> SdkConfig {
    let endpoint = endpoint();
    let health = reqwest::get(format!("{endpoint}/_local/health")).await;
    if !matches!(&health, Ok(r) if r.status().is_success()) {
        panic!(
            "local AWS does not answer at {endpoint}: start it with `scripts/local-aws start` \
             (scripts/test.sh does this for you)"
        );
    }
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(Region::new(REGION))
        .credentials_provider(aws_sdk_lambda::config::Credentials::new("test", "test", None, None, "local-aws"))
        .retry_config(RetryConfig::disabled())
        .load()
        .await
}

/// The ECR image URI of `repo:tag` (or `repo@digest`) in local AWS's account and region.
pub fn image_uri(repo: &str, reference: &str) -> String {
    let sep = if reference.starts_with("sha256:") { '@' } else { ':' };
    format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{repo}{sep}{reference}")
}

/// An IAM role Lambda functions and state machines can use (created once per local AWS).
pub async fn role(iam: &aws_sdk_iam::Client, name: &str) -> String {
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":["lambda.amazonaws.com","states.amazonaws.com","events.amazonaws.com"]},"Action":"sts:AssumeRole"}]}"#;
    match iam.create_role().role_name(name).assume_role_policy_document(trust).send().await {
        Ok(out) => out.role().map(|r| r.arn().to_string()).unwrap_or_default(),
        Err(_) => format!("arn:aws:iam::{ACCOUNT}:role/{name}"),
    }
}

/// Give a repository the policy a Lambda image repository has (as template.yaml's ServiceRepository does): the
/// Lambda service may pull images for functions named `e2e-*`. A deployment from a repository without it
/// needs its UpdateCode role to add the statement, which the stack allows only on its AllowedRepositories.
pub async fn let_lambda_pull(ecr: &aws_sdk_ecr::Client, repo: &str) {
    let policy = serde_json::json!({"Version": "2012-10-17", "Statement": [{
        "Sid": "LambdaPullsImagesOfManagedFunctions", "Effect": "Allow",
        "Principal": {"Service": "lambda.amazonaws.com"},
        "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
        "Condition": {"StringLike": {"aws:sourceArn": format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:e2e-*")}}}]});
    ecr.set_repository_policy().repository_name(repo).policy_text(policy.to_string()).send().await.unwrap();
}

/// SDK config signed with a session of `role_arn` (sts:AssumeRole through local AWS).
pub async fn as_role(role_arn: &str) -> aws_config::SdkConfig {
    let admin = config().await;
    let provider = aws_config::sts::AssumeRoleProvider::builder(role_arn)
        .session_name("self-test")
        .configure(&admin)
        .build()
        .await;
    admin.into_builder().credentials_provider(aws_sdk_lambda::config::SharedCredentialsProvider::new(provider)).build()
}

/// Tag an image already in `repo` with `tag`, as `docker push` of the same image under a new tag does: ECR's
/// PutImage of its manifest, which ECR reports as a push of that tag.
pub async fn tag_image(ecr: &aws_sdk_ecr::Client, repo: &str, digest: &str, tag: &str) -> Result<(), String> {
    let id = aws_sdk_ecr::types::ImageIdentifier::builder().image_digest(digest).build();
    let got = ecr.batch_get_image().repository_name(repo).image_ids(id).send().await.map_err(|e| format!("{e:?}"))?;
    let image = got.images().first().ok_or_else(|| format!("{digest} is not in {repo}"))?;
    ecr.put_image()
        .repository_name(repo)
        .image_manifest(image.image_manifest().unwrap_or_default())
        .set_image_manifest_media_type(image.image_manifest_media_type().map(str::to_string))
        .image_tag(tag)
        .send()
        .await
        .map_err(|e| format!("tagging {digest} {tag}: {e:?}"))?;
    Ok(())
}

/// A document IAM answers URL-encoded (GetRole's trust policy, GetRolePolicy's policy), as JSON text.
pub fn percent_decoded(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (b[i], b.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("UTF-8")
}

/// `function`'s answer through its `live` alias to `{"echo": "hello"}` (the fixture's answer names its
/// variant); a function error fails the test.
pub async fn invoke_alias(lambda: &aws_sdk_lambda::Client, function: &str) -> serde_json::Value {
    let out = lambda
        .invoke()
        .function_name(function)
        .qualifier("live")
        .payload(aws_sdk_lambda::primitives::Blob::new(serde_json::json!({"echo": "hello"}).to_string()))
        .send()
        .await
        .unwrap();
    assert_eq!(out.function_error(), None);
    serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap()
}
