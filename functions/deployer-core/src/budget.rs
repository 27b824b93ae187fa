//! One time budget and one history budget per deployment, derived from its spec.
//!
//! Every stage of a deployment has a longest duration its spec allows (the readiness deadline, the smoke
//! cases at the function's timeout, the acceptance build's timeout, every step of the shift baked and
//! waited out, the rollback). Their sum must fit the state machine's `TimeoutSeconds`, and the deployment
//! lock is taken for that long, so no second deployment can take the function while the first still runs.
//! Every polling loop pass adds events to the execution's history, which Step Functions caps at 25,000:
//! the loops poll less often as they wait longer ([`poll_wait_seconds`]), and the spec's worst case must
//! stay inside [`HISTORY_BUDGET`]. `target validate` and `target apply` refuse a spec that does not fit,
//! with these numbers.

use crate::spec::TargetSpec;

/// The state machine's `TimeoutSeconds` (statemachine/deploy.asl.json; a contract test keeps them equal).
pub const STATE_MACHINE_TIMEOUT_SECONDS: u32 = 21_600;
/// The Smoke Test and Roll Back steps' Lambda timeout (template.yaml; a contract test keeps them equal): all
/// of a spec's smoke cases run in one invocation.
pub const SMOKE_STEP_TIMEOUT_SECONDS: u32 = 900;
/// What the smoke step itself needs beside the cases (reads, the revision check).
const SMOKE_STEP_OVERHEAD_SECONDS: u32 = 30;
/// Step Functions' cap on a standard execution's history.
pub const HISTORY_LIMIT: u32 = 25_000;
/// The share of it the spec's loops may use; the rest is for the fixed states, retries and the rollback.
pub const HISTORY_BUDGET: u32 = 22_000;

/// Prepare: its reads, the lock (or the queue behind it: a busy function no longer makes it wait) and the
/// retries of transient errors; kept generous.
const PREPARE_SECONDS: u32 = 600;
/// Publish, the alias move, Finish and the retries of transient errors along the way.
const OVERHEAD_SECONDS: u32 = 600;
/// The fixed states' events (each Task state: entered, scheduled, started, succeeded, exited).
const FIXED_EVENTS: u32 = 300;
/// Events of one pass of a polling loop: a Wait (2), a Task (5), a Choice (2).
const EVENTS_PER_POLL: u32 = 9;
/// Events of one health check during a shift (the bake's Wait, Check Health, its Choices) and of one step.
const EVENTS_PER_CHECK: u32 = 12;
const EVENTS_PER_STEP: u32 = 12;
/// Readiness and provisioning poll at most every 30 s; an acceptance build at most every 60 s.
pub const READY_POLL_CAP_SECONDS: u32 = 30;
pub const BUILD_POLL_CAP_SECONDS: u32 = 60;

/// How long a polling loop waits before its next look, having waited `elapsed_seconds` so far: a tenth of
/// that (so a change is seen at most about 10% late), at least 1 s, at most `cap`.
pub fn poll_wait_seconds(elapsed_seconds: u64, cap: u32) -> u32 {
    let tenth = u32::try_from(elapsed_seconds / 10).unwrap_or(u32::MAX);
    tenth.clamp(1, cap.max(1))
}

/// How many passes a polling loop makes at most before `limit_seconds` have gone by.
pub fn poll_passes(limit_seconds: u32, cap: u32) -> u32 {
    let (mut elapsed, mut passes) = (0u64, 0u32);
    while elapsed < u64::from(limit_seconds) {
        elapsed += u64::from(poll_wait_seconds(elapsed, cap));
        passes += 1;
    }
    passes.max(1)
}

/// One stage's share of the budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub name: &'static str,
    pub seconds: u32,
    pub events: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    pub stages: Vec<Stage>,
}

impl Budget {
    pub fn of(spec: &TargetSpec) -> Budget {
        let ready = spec.ready_timeout_seconds;
        let ready_events = poll_passes(ready, READY_POLL_CAP_SECONDS) * EVENTS_PER_POLL;
        let smoke = smoke_seconds(spec);
        let mut stages = vec![
            Stage { name: "prepare (reads, the lock, retries)", seconds: PREPARE_SECONDS, events: FIXED_EVENTS },
            // The configuration and the code are two updates, each waited for.
            Stage {
                name: "update and readiness (2 x readyTimeoutSeconds)",
                seconds: 2 * ready,
                events: 2 * ready_events,
            },
            Stage { name: "smoke test", seconds: smoke, events: 0 },
        ];
        if spec.provisioned_concurrency.is_some() {
            stages.push(Stage {
                name: "provisioned concurrency (readyTimeoutSeconds)",
                seconds: ready,
                events: ready_events,
            });
        }
        if let Some(a) = &spec.acceptance {
            let events = poll_passes(a.timeout_seconds, BUILD_POLL_CAP_SECONDS) * EVENTS_PER_POLL;
            stages.push(Stage { name: "acceptance (acceptance.timeoutSeconds)", seconds: a.timeout_seconds, events });
        }
        let steps = spec.strategy.weights().len() as u32;
        if steps > 0 {
            let per_step = spec.strategy.bake_seconds() + spec.gates.metric_lag_seconds + spec.gates.max_wait_seconds;
            let interval = spec.gates.check_interval_seconds.min(spec.strategy.bake_seconds()).max(1);
            let checks = per_step.div_ceil(interval) + 1;
            stages.push(Stage {
                name: "traffic shift (steps x (bake + metricLagSeconds + maxWaitSeconds))",
                seconds: spec.strategy.max_seconds(&spec.gates),
                events: steps.saturating_mul(checks.saturating_mul(EVENTS_PER_CHECK) + EVENTS_PER_STEP),
            });
        }
        stages.push(Stage { name: "rollback (smoke cases through the alias)", seconds: smoke, events: 0 });
        stages.push(Stage { name: "publish, alias, finish, retries", seconds: OVERHEAD_SECONDS, events: 0 });
        Budget { stages }
    }

    pub fn seconds(&self) -> u32 {
        self.stages.iter().map(|s| s.seconds).fold(0u32, u32::saturating_add)
    }

    pub fn events(&self) -> u32 {
        self.stages.iter().map(|s| s.events).fold(0u32, u32::saturating_add)
    }

    /// The stages as `name N s` (or events), largest first: what to shorten.
    pub fn breakdown(&self, by_events: bool) -> String {
        let mut stages: Vec<&Stage> = self.stages.iter().collect();
        stages.sort_by_key(|s| std::cmp::Reverse(if by_events { s.events } else { s.seconds }));
        stages
            .iter()
            .filter(|s| if by_events { s.events > 0 } else { s.seconds > 0 })
            .map(|s| if by_events { format!("{} {}", s.name, s.events) } else { format!("{} {} s", s.name, s.seconds) })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// How long the deployment lock is taken for: the whole budget, so it outlives the longest deployment
    /// the spec allows (an execution that ends sooner releases it; a stopped one, through Finish).
    pub fn lock_ttl_ms(&self) -> i64 {
        i64::from(self.seconds()) * 1000
    }
}

/// The smoke step's longest run: every case and one warm-up, each up to the function's timeout.
pub fn smoke_seconds(spec: &TargetSpec) -> u32 {
    let invocations = spec.smoke_test.cases.len() as u32 + 1;
    invocations.saturating_mul(spec.configuration.timeout_seconds) + SMOKE_STEP_OVERHEAD_SECONDS
}

/// Every way the spec does not fit: (field, why), for the validator.
pub fn problems(spec: &TargetSpec) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let smoke = smoke_seconds(spec);
    if smoke > SMOKE_STEP_TIMEOUT_SECONDS {
        out.push((
            "smokeTest.cases",
            format!(
                "{} case(s) and a warm-up at configuration.timeoutSeconds {} could take {smoke} s; the Smoke Test \
                 and Roll Back steps run them in one invocation of at most {SMOKE_STEP_TIMEOUT_SECONDS} s: use \
                 fewer cases or a shorter timeout",
                spec.smoke_test.cases.len(),
                spec.configuration.timeout_seconds
            ),
        ));
    }
    let budget = Budget::of(spec);
    if budget.seconds() > STATE_MACHINE_TIMEOUT_SECONDS {
        out.push((
            "(stages)",
            format!(
                "the deployment could take {} s, more than the state machine's {STATE_MACHINE_TIMEOUT_SECONDS} s \
                 timeout: {}. Shorten the longest stages",
                budget.seconds(),
                budget.breakdown(false)
            ),
        ));
    }
    if budget.events() > HISTORY_BUDGET {
        out.push((
            "(stages)",
            format!(
                "the deployment's polling could write {} history events, more than the {HISTORY_BUDGET} this \
                 deployer allows of Step Functions' {HISTORY_LIMIT}: {}. Use fewer steps or a longer \
                 gates.checkIntervalSeconds",
                budget.events(),
                budget.breakdown(true)
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_back_off_to_a_tenth_of_the_wait_within_their_cap() {
        let cases = [(0, 30, 1), (9, 30, 1), (20, 30, 2), (150, 30, 15), (299, 30, 29), (3600, 30, 30), (3600, 60, 60)];
        for (elapsed, cap, want) in cases {
            assert_eq!(poll_wait_seconds(elapsed, cap), want, "after {elapsed} s, cap {cap}");
        }
    }

    #[test]
    fn the_longest_waits_take_a_few_hundred_passes_not_thousands() {
        // Without back-off: 3600 passes of 1 s (32,400 events) and 9,600 of 3 s.
        let ready = poll_passes(3600, READY_POLL_CAP_SECONDS);
        let build = poll_passes(28_800, BUILD_POLL_CAP_SECONDS);
        assert!((100..=200).contains(&ready), "readiness, 1 h: {ready} passes");
        assert!((450..=600).contains(&build), "acceptance, 8 h: {build} passes");
        assert!(poll_passes(300, READY_POLL_CAP_SECONDS) <= 60);
        assert_eq!(poll_passes(0, READY_POLL_CAP_SECONDS), 1);
    }
}
