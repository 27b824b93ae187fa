//! Provision: provisioned concurrency on the new version, READY before traffic moves; and none left on
//! versions the alias no longer serves.

use deployer_core::model::Provisioned;
use deployer_core::plan::{ProvisionInput, ProvisionState, ProvisionStatus, Published};
use deployer_core::spec::TargetSpec;
use deployer_core::steps::{provision, release_provisioned};

use crate::fakes::*;

fn with_pc(n: u32) -> TargetSpec {
    TargetSpec { provisioned_concurrency: Some(n), ..spec() }
}

fn input(t: TargetSpec, state: Option<ProvisionState>) -> ProvisionInput {
    ProvisionInput {
        plan: plan(t, v2(), true, Some("1")),
        published: Published { version: version("2"), code_sha256: v2().hex().into() },
        provision: state,
    }
}

fn two_versions() -> FakeLambda {
    let lambda = FakeLambda::new();
    let one = lambda.seed_release(&spec(), &v1());
    lambda.seed_alias(&spec(), &one, "");
    lambda.seed_release(&spec(), &v2());
    lambda
}

fn set_status(lambda: &FakeLambda, qualifier: &str, status: &str, reason: Option<&str>) {
    let mut w = lambda.world();
    let p = w.function_mut(FN).provisioned.get_mut(qualifier).expect("configured");
    p.status = status.into();
    p.allocated = if status == "READY" { p.requested } else { 0 };
    p.reason = reason.map(str::to_string);
}

#[tokio::test]
async fn without_provisioned_concurrency_in_the_spec_nothing_is_asked() {
    let lambda = two_versions();
    let s = provision(&lambda, input(spec(), None), NOW_MS).await.unwrap();
    assert_eq!(s.status, ProvisionStatus::None);
    assert!(lambda.calls().iter().all(|c| !c.contains("Provisioned")), "{:?}", lambda.calls());
}

#[tokio::test]
async fn the_new_version_is_provisioned_once_and_reported_ready_when_lambda_says_so() {
    let lambda = two_versions();
    let first = provision(&lambda, input(with_pc(5), None), NOW_MS).await.unwrap();
    assert_eq!((first.status, first.requested, first.started_at_ms), (ProvisionStatus::Pending, 5, NOW_MS));
    assert_eq!(lambda.writes(), [format!("PutProvisionedConcurrencyConfig {FN}:2 5")]);
    // Still allocating: ask again later, without asking Lambda twice.
    let again = provision(&lambda, input(with_pc(5), Some(first.clone())), NOW_MS + 2_000).await.unwrap();
    assert_eq!((again.status, again.started_at_ms), (ProvisionStatus::Pending, NOW_MS));
    set_status(&lambda, "2", "READY", None);
    let ready = provision(&lambda, input(with_pc(5), Some(again)), NOW_MS + 4_000).await.unwrap();
    assert_eq!((ready.status, ready.allocated), (ProvisionStatus::Ready, 5));
    assert_eq!(lambda.writes().len(), 1);
}

#[tokio::test]
async fn a_failed_or_slow_allocation_fails_the_step_with_the_reason() {
    let lambda = two_versions();
    let first = provision(&lambda, input(with_pc(5), None), NOW_MS).await.unwrap();
    set_status(&lambda, "2", "FAILED", Some("FUNCTION_ERROR_INIT_FAILURE: init crashed"));
    let err = provision(&lambda, input(with_pc(5), Some(first.clone())), NOW_MS + 2_000).await.unwrap_err();
    assert_eq!(err.name(), "UpdateFailed");
    assert!(err.to_string().contains("init crashed") && err.to_string().contains("no traffic was moved"), "{err}");

    set_status(&lambda, "2", "IN_PROGRESS", None);
    let late = NOW_MS + i64::from(spec().ready_timeout_seconds) * 1000 + 1;
    let err = provision(&lambda, input(with_pc(5), Some(first)), late).await.unwrap_err();
    assert!(err.to_string().contains("was not READY after 120 s"), "{err}");
}

#[tokio::test]
async fn only_the_served_version_keeps_provisioned_concurrency() {
    let lambda = two_versions();
    {
        let mut w = lambda.world();
        let f = w.function_mut(FN);
        for q in ["1", "2", "live"] {
            let p =
                Provisioned { qualifier: q.into(), requested: 2, allocated: 2, status: "READY".into(), reason: None };
            f.provisioned.insert(q.into(), p);
        }
    }
    let released = release_provisioned(&lambda, &fname(FN), &version("2")).await.unwrap();
    assert_eq!(released, ["1"]);
    let left: Vec<String> = lambda.world().function(FN).provisioned.keys().cloned().collect();
    assert_eq!(left, ["2", "live"], "the served version and the alias's own configuration stay");
}
