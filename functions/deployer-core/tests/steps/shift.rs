//! Shift Alias: point the alias at the new version, guarded by the alias's RevisionId; a re-run moves
//! nothing.

use deployer_core::decisions::previous_from_description;
use deployer_core::plan::{Deployed, Published, ShiftInput};
use deployer_core::steps::shift_alias;
use deployer_core::DeployError;

use crate::fakes::*;

fn input(version_published: &str, previous: Option<&str>) -> ShiftInput {
    ShiftInput {
        plan: plan(spec(), v2(), true, previous),
        published: Published { version: version(version_published), code_sha256: v2().hex().into() },
        execution: EXECUTION.into(),
        drift: vec![],
    }
}

/// Version 1 (v1) behind the alias, version 2 (v2) just published.
fn two_versions() -> FakeLambda {
    let lambda = FakeLambda::new();
    let one = lambda.seed_release(&spec(), &v1());
    lambda.seed_alias(&spec(), &one, "deployer previous=none image=111111111111 execution=first");
    lambda.seed_release(&spec(), &v2());
    lambda
}

#[tokio::test]
async fn the_first_deploy_creates_the_alias() {
    // GIVEN the function's first version was just published, and it has no alias
    let lambda = FakeLambda::new();
    lambda.seed_release(&spec(), &v2());

    // WHEN the alias is shifted
    let deployed = shift_alias(&lambda, &FakeLedger::held(), input("1", None), NOW_MS).await.unwrap();

    // THEN the alias is created on version 1, recording that nothing was served before
    assert_eq!(
        deployed,
        Deployed {
            function: fname(FN),
            alias: "live".into(),
            version: version("1"),
            previous_version: None,
            image_digest: v2(),
            image_tag: "sha-2222222".into(),
            moved: true,
            drift: vec![],
        }
    );
    let alias = lambda.alias(FN, "live").unwrap();
    assert_eq!(alias.version, "1");
    assert_eq!(alias.description, format!("deployer previous=none image=222222222222 execution={EXECUTION}"));
    assert_eq!(lambda.ops(), ["GetAlias", "CreateAlias"]);
}

#[tokio::test]
async fn the_alias_moves_with_its_revision_id_and_records_the_previous_version() {
    // GIVEN the alias serves version 1, and version 2 was just published
    let lambda = two_versions();
    let before = lambda.alias(FN, "live").unwrap();

    // WHEN the alias is shifted
    let deployed = shift_alias(&lambda, &FakeLedger::held(), input("2", Some("1")), NOW_MS).await.unwrap();

    // THEN it moves to version 2, guarded by the RevisionId it had, and records previous=1
    assert!(deployed.moved);
    assert_eq!(deployed.version, version("2"));
    assert_eq!(deployed.previous_version, Some(version("1")));
    let description = format!("deployer previous=1 image=222222222222 execution={EXECUTION}");
    assert_eq!(
        lambda.writes(),
        [format!("UpdateAlias ml-inference:live -> 2 rev={} description={description}", before.revision_id)]
    );
    let after = lambda.alias(FN, "live").unwrap();
    assert_eq!(after.version, "2");
    assert_eq!(after.description, description);
    assert_eq!(previous_from_description(&after.description), Some(version("1")));
    assert_ne!(after.revision_id, before.revision_id);
}

#[tokio::test]
async fn a_re_run_on_the_version_already_served_moves_nothing() {
    // GIVEN the alias was already moved to version 2 by an earlier attempt
    let lambda = two_versions();
    shift_alias(&lambda, &FakeLedger::held(), input("2", Some("1")), NOW_MS).await.unwrap();
    let moved = lambda.alias(FN, "live").unwrap();
    lambda.clear_calls();

    // WHEN the step runs again
    let deployed = shift_alias(&lambda, &FakeLedger::held(), input("2", Some("1")), NOW_MS).await.unwrap();

    // THEN nothing moves, and the previous version is still reported from the plan
    assert!(!deployed.moved);
    assert_eq!(deployed.version, version("2"));
    assert_eq!(deployed.previous_version, Some(version("1")));
    assert_eq!(lambda.ops(), ["GetAlias"]);
    assert_eq!(lambda.alias(FN, "live").unwrap(), moved);
}

#[tokio::test]
async fn a_weighted_alias_on_the_new_version_loses_its_weights() {
    // GIVEN the alias is on version 2 with 10% still routed to version 1
    let lambda = two_versions();
    lambda.world().move_alias(FN, "live", "2");
    lambda.world().function_mut(FN).aliases.get_mut("live").unwrap().additional = Some(("1".into(), 0.1));

    // WHEN the alias is shifted to version 2
    let deployed = shift_alias(&lambda, &FakeLedger::held(), input("2", Some("1")), NOW_MS).await.unwrap();

    // THEN it is updated to serve version 2 alone
    assert!(deployed.moved);
    assert_eq!(lambda.count("UpdateAlias"), 1);
    let alias = lambda.alias(FN, "live").unwrap();
    assert_eq!((alias.version.as_str(), alias.additional), ("2", None));
}

#[tokio::test]
async fn an_alias_moved_by_someone_else_meanwhile_is_a_precondition_failure() {
    // GIVEN someone moves the alias between our read and our write
    let lambda = two_versions();
    lambda.before_call("UpdateAlias", 1, |w| w.move_alias(FN, "live", "1"));

    // WHEN the alias is shifted
    let err = shift_alias(&lambda, &FakeLedger::held(), input("2", Some("1")), NOW_MS).await.unwrap_err();

    // THEN Lambda refuses the stale RevisionId and the alias stays where the other writer put it
    assert!(matches!(err, DeployError::PreconditionFailed { .. }), "{err:?}");
    assert_eq!(lambda.alias(FN, "live").unwrap().version, "1");
}

#[tokio::test]
async fn a_throttled_alias_update_propagates() {
    // GIVEN Lambda throttles UpdateAlias
    let lambda = two_versions();
    let throttled = DeployError::Throttled { service: "lambda", message: "Rate exceeded".into() };
    lambda.fail_next("UpdateAlias", 1, throttled.clone());

    // WHEN the alias is shifted
    let err = shift_alias(&lambda, &FakeLedger::held(), input("2", Some("1")), NOW_MS).await.unwrap_err();

    // THEN the throttle propagates and the alias has not moved
    assert_eq!(err, throttled);
    assert_eq!(lambda.alias(FN, "live").unwrap().version, "1");
}

#[tokio::test]
async fn a_rollback_asked_for_before_the_alias_moved_moves_nothing() {
    // GIVEN an operator's rollback reached the running deployment (an abort for it) before its shift
    let lambda = two_versions();
    let ledger = FakeLedger::held();
    ledger.seed_command(FN, EXECUTION, deployer_core::model::Command::Abort, "an operator asked for a rollback");
    let writes = lambda.writes().len();

    // WHEN the shift runs, THEN it is Aborted and the alias stays on version 1
    let err = shift_alias(&lambda, &ledger, input("2", Some("1")), NOW_MS).await.unwrap_err();
    assert_eq!(err.name(), "Aborted", "{err}");
    assert!(err.to_string().contains("before the alias moved"), "{err}");
    assert_eq!(lambda.writes().len(), writes);
    assert_eq!(lambda.alias(FN, "live").unwrap().version, "1");
}

#[tokio::test]
async fn an_execution_that_no_longer_holds_the_lock_moves_nothing() {
    // GIVEN the lock is another execution's (this one ended, the lock went on, and it was redriven)
    let lambda = two_versions();
    let ledger = FakeLedger::new();
    ledger.seed_lock(FN, "deploy-ml-inference-333333333333", NOW_MS + 60_000);
    let writes = lambda.writes().len();

    // WHEN the shift runs, THEN it fails LockLost naming the holder, and the alias is untouched
    let err = shift_alias(&lambda, &ledger, input("2", Some("1")), NOW_MS).await.unwrap_err();
    assert_eq!(err.name(), "LockLost", "{err}");
    assert!(err.to_string().contains("deploy-ml-inference-333333333333 holds it"), "{err}");
    assert_eq!(lambda.writes().len(), writes);
    // AND a free lock is no better: nobody handed it to this execution
    let err = shift_alias(&lambda, &FakeLedger::new(), input("2", Some("1")), NOW_MS).await.unwrap_err();
    assert!(err.to_string().contains("nobody holds it"), "{err}");
}
