//! Layer-2 tests: every step of the deployer over hand-written fakes of its ports.
//! One module per area; the fakes and fixtures are in `tests/fakes`.

#[path = "../fakes/mod.rs"]
mod fakes;

mod acceptance;
mod check_ready;
mod finish;
mod prepare;
mod provision;
mod publish;
mod queue;
mod reconcile;
mod rollback;
mod shift;
mod smoke;
mod traffic;
mod trigger;
mod update;
