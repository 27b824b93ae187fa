use crate::decisions::{code_matches, config_drift, started_by_trigger, superseded_by};
use crate::ids::Version;
use crate::model::{ImageInfo, LockOutcome, PendingImage};
use crate::plan::{ExecutionInput, Plan, PrepareInput, Queued};
use crate::policy::StackPolicy;
use crate::ports::{DeploymentLedger, FunctionApi, ImageRegistry, TargetStore};
use crate::spec::{Strategy, TargetSpec};
use crate::steps::input;
use crate::steps::{queue_behind, QueueResult};
use crate::DeployError;

const INDEX_TYPES: &[&str] =
    &["application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"];

/// Check the request against the target and the image, take the function's deployment lock, and read
/// where the function stands. Bad input is refused before anything is written (the lock included).
pub async fn prepare(
    store: &impl TargetStore,
    policy: &StackPolicy,
    registry: &impl ImageRegistry,
    lambda: &impl FunctionApi,
    ledger: &impl DeploymentLedger,
    prepare_input: PrepareInput,
    now_ms: i64,
) -> Result<Plan, DeployError> {
    let request = match input::<ExecutionInput>("execution", prepare_input.request)? {
        ExecutionInput::Deploy(r) => r,
        ExecutionInput::Rollback(_) => {
            return Err(DeployError::invalid("a rollback request reached Prepare; the state machine routes it"))
        }
    };
    if let Some(tag) = &request.image_tag {
        if tag.is_empty() || tag.len() > 128 {
            return Err(DeployError::invalid(format!("imageTag is {} characters; ECR tags are 1 to 128", tag.len())));
        }
    }
    let target = store.get(&request.target).await?.ok_or_else(|| {
        DeployError::invalid(format!(
            "no deployment target named {}; register it with `deployctl target apply <spec.json>`",
            request.target
        ))
    })?;
    policy.check(&target)?;
    if target.repository != request.repository {
        return Err(DeployError::invalid(format!(
            "target {} deploys images from repository {}, not {}",
            target.function, target.repository, request.repository
        )));
    }
    if let Some(tag) = request.image_tag.as_deref().filter(|t| !target.allows_tag(t)) {
        return Err(DeployError::invalid(format!(
            "tag {tag:?} is not allowed for {}: it must match {:?}",
            target.function, target.tag_pattern
        )));
    }
    let image =
        registry.describe_image(&request.repository, &request.image_digest).await?.ok_or_else(|| {
            match &request.queued {
                Some(q) => DeployError::invalid(format!(
                    "image {} is no longer in repository {}: it was deleted while it waited in {}'s queue (queued by \
                 {}, behind {}), so it is skipped and nothing was deployed",
                    request.image_digest, request.repository, request.target, q.queued_by, q.after
                )),
                None => DeployError::invalid(format!(
                    "image {} is not in repository {}",
                    request.image_digest, request.repository
                )),
            }
        })?;
    let image_tag = ecr_tag(&target, &image, request.image_tag.as_deref())?;
    if image.manifest_media_type.as_deref().is_some_and(|m| INDEX_TYPES.contains(&m)) {
        return Err(DeployError::invalid(format!(
            "image {} is a multi-architecture index; Lambda runs a single-architecture image: push the {} image \
             and deploy its digest",
            request.image_digest,
            target.configuration.architecture.as_str()
        )));
    }
    let image_uri = format!("{}@{}", image.repository_uri, request.image_digest);
    let owner = &prepare_input.execution.name;
    let by_hand = !started_by_trigger(&prepare_input.execution.name);
    // The lock outlives the longest deployment the spec allows (acceptance and provisioning included).
    let expires = now_ms + crate::budget::Budget::of(&target).lock_ttl_ms();
    let mut plan = Plan {
        image_uri,
        image_digest: request.image_digest.clone(),
        image_tag,
        function_exists: false,
        previous_version: None,
        already_live: false,
        superseded_by: None,
        superseded_why: None,
        image_pushed_at_ms: image.pushed_at_ms,
        all_at_once_why: None,
        queued: None,
        target,
    };
    let function = plan.target.function.clone();
    // Another deployment of the function running: queue the image behind it (newest wins) and end.
    let mut races = 0;
    while let LockOutcome::Held { owner: holder, .. } = ledger.acquire(&function, owner, now_ms, expires).await? {
        let history = ledger.history(&function, 20).await?;
        if let Some((by, why)) = superseded_by(&history, &request.image_digest, image.pushed_at_ms, by_hand) {
            // Older than the live image: never deployed over it, so not queued either.
            (plan.superseded_by, plan.superseded_why) = (Some(by), Some(why));
            return Ok(plan);
        }
        let pending = PendingImage {
            repository: request.repository.clone(),
            image_digest: request.image_digest.clone(),
            image_tag: plan.image_tag.clone(),
            pushed_at_ms: image.pushed_at_ms,
            queued_by: owner.clone(),
            queued_at_ms: now_ms,
        };
        match queue_behind(ledger, &function, &holder, &pending, now_ms).await? {
            QueueResult::LockMoved if races < 5 => races += 1,
            QueueResult::LockMoved => {
                return Err(DeployError::PreconditionFailed {
                    resource: format!("{function}'s lock"),
                    message: format!("it changed hands {races} times while this push was being queued"),
                })
            }
            QueueResult::Queued { replaced } => {
                let why = match &replaced {
                    Some(r) => format!(
                        "{function} is being deployed by {holder}: {} is queued behind it and deploys when it                          ends, in place of {} (queued by {}), which it replaces",
                        request.image_digest, r.image_digest, r.queued_by
                    ),
                    None => format!(
                        "{function} is being deployed by {holder}: {} is queued behind it and deploys when it ends",
                        request.image_digest
                    ),
                };
                tracing::info!(%function, digest = %request.image_digest, %holder, "queued");
                plan.queued = Some(Queued { behind: holder, replaced, why });
                return Ok(plan);
            }
            QueueResult::AlreadyQueued { by } => {
                let why = format!(
                    "{function} is being deployed by {holder}; {} is already queued behind it (by {by}) and                      deploys when it ends",
                    request.image_digest
                );
                plan.queued = Some(Queued { behind: holder, replaced: None, why });
                return Ok(plan);
            }
            QueueResult::Outranked { by } => {
                let when = match (by.pushed_at_ms, image.pushed_at_ms) {
                    (Some(b), Some(i)) if b > i => format!("pushed {} ms later", b - i),
                    _ => "pushed in the same second, with the lower digest (the tie rule)".to_string(),
                };
                plan.superseded_why = Some(format!(
                    "{function} is being deployed by {holder}, and {} ({when}, queued by {}) waits behind it: the                      newest push deploys, so {} is not queued",
                    by.image_digest, by.queued_by, request.image_digest
                ));
                plan.superseded_by = Some(by.image_digest);
                return Ok(plan);
            }
        }
    }
    let history = ledger.history(&function, 20).await?;
    let (superseded, superseded_why) =
        superseded_by(&history, &request.image_digest, image.pushed_at_ms, by_hand).unzip();
    let target = &plan.target;
    let current = lambda.get_function(&target.function, None).await?;
    let alias = match &current {
        Some(_) => lambda.get_alias(&target.function, &target.alias).await?,
        None => None,
    };
    if let Some(a) = &alias {
        if Version::parse(&a.version).is_err() {
            return Err(DeployError::invalid(format!(
                "alias {} of {} points at {:?}, not a published version: updating $LATEST would put the untested \
                 image behind it. Point the alias at a published version (aws lambda update-alias) and deploy again",
                target.alias, target.function, a.version
            )));
        }
    }
    let previous_version = alias.as_ref().and_then(|a| Version::parse(&a.version).ok());
    let mut already_live = false;
    let mut all_at_once_why = None;
    if let (Some(a), Some(v)) = (&alias, &previous_version) {
        if a.additional.is_none() {
            if let Some(serving) = lambda.get_function(&target.function, Some(v.as_str())).await? {
                already_live =
                    code_matches(&serving, &request.image_digest, target.configuration.architecture.as_str())
                        && config_drift(&target.configuration, &serving, &target.log_group()).is_empty();
                all_at_once_why = role_change(target, v, &serving.config.role);
            }
        }
    }
    tracing::info!(
        function = %target.function,
        digest = %request.image_digest,
        tag = %plan.image_tag,
        previous = ?previous_version.as_ref().map(Version::as_str),
        exists = current.is_some(),
        already_live,
        superseded = ?superseded.as_ref().map(|d| d.to_string()),
        "deployment prepared"
    );
    plan.function_exists = current.is_some();
    plan.previous_version = previous_version;
    plan.already_live = already_live;
    plan.superseded_by = superseded;
    plan.superseded_why = superseded_why;
    plan.all_at_once_why = all_at_once_why;
    Ok(plan)
}

/// The tag the deployment goes by, from what ECR says the image carries, never from the request alone: a
/// request (a hand-made push event, an operator's input) may name any tag, and the tag policy is about the
/// image. A tag the request names must be one of the image's and allowed; with none named, the image's
/// first allowed tag. An image with no allowed tag is refused.
fn ecr_tag(target: &TargetSpec, image: &ImageInfo, requested: Option<&str>) -> Result<String, DeployError> {
    let carried = if image.tags.is_empty() { "none".to_string() } else { image.tags.join(", ") };
    match requested {
        Some(tag) if image.tags.iter().any(|t| t == tag) => Ok(tag.to_string()),
        Some(tag) => Err(DeployError::invalid(format!(
            "image {} does not carry the tag {tag:?} in repository {} (its tags in ECR: {carried}); the deployer \
             goes by the tags ECR gives an image, not by the request's",
            image.digest, target.repository
        ))),
        None => {
            let mut allowed: Vec<&String> = image.tags.iter().filter(|t| target.allows_tag(t)).collect();
            allowed.sort();
            allowed.first().map(|t| t.to_string()).ok_or_else(|| {
                DeployError::invalid(format!(
                    "image {} carries no tag that {} allows (tagPattern {:?}; its tags in ECR: {carried}): tag \
                     it in ECR, and the push deploys it",
                    image.digest, target.function, target.tag_pattern
                ))
            })
        }
    }
}

/// Lambda routes an alias only between versions with the same execution role: a canary or linear shift to
/// a version with another role would be refused at its first step, so it moves all traffic at once, and
/// says why.
fn role_change(target: &TargetSpec, serving: &Version, serving_role: &str) -> Option<String> {
    let kind = match target.strategy {
        Strategy::AllAtOnce => return None,
        Strategy::Canary { .. } => "canary",
        Strategy::Linear { .. } => "linear",
    };
    (serving_role != target.configuration.role).then(|| {
        format!(
            "version {serving} runs as {serving_role} and the new one as {}: Lambda routes an alias only between \
             versions with the same execution role, so all traffic moves at once (no {kind} shift)",
            target.configuration.role
        )
    })
}
