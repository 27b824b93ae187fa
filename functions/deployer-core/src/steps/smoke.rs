use crate::decisions::judge_case;
use crate::ids::FunctionName;
use crate::plan::{CaseResult, PlanInput, SmokeOutput};
use crate::ports::FunctionApi;
use crate::spec::SmokeTest;
use crate::DeployError;

/// The outcome of running a target's smoke cases against one qualifier.
#[derive(Debug, Clone, PartialEq)]
pub struct SmokeRun {
    pub warmup_ms: u64,
    pub cases: Vec<CaseResult>,
    pub failures: Vec<String>,
}

/// One warm-up invocation (not judged: it pays the cold start, and the first case runs again warm),
/// then every case, each judged for its answer and its latency. Every case runs, so the report names
/// every mismatch.
pub async fn run_cases(
    lambda: &impl FunctionApi,
    function: &FunctionName,
    qualifier: &str,
    smoke: &SmokeTest,
) -> Result<SmokeRun, DeployError> {
    let mut failures = Vec::new();
    let mut warmup_ms = 0;
    if let Some(first) = smoke.cases.first() {
        let body = serde_json::to_vec(&first.payload).unwrap_or_default();
        warmup_ms = lambda.invoke(function, qualifier, &body).await?.latency_ms;
    }
    let mut cases = Vec::new();
    for case in &smoke.cases {
        let body = serde_json::to_vec(&case.payload).unwrap_or_default();
        let got = lambda.invoke(function, qualifier, &body).await?;
        failures.extend(judge_case(case, &got, smoke.latency_budget_ms));
        cases.push(CaseResult { name: case.name.clone(), latency_ms: got.latency_ms });
    }
    Ok(SmokeRun { warmup_ms, cases, failures })
}

/// Smoke-test the candidate ($LATEST), and report exactly which revision passed.
pub async fn smoke_test(lambda: &impl FunctionApi, input: PlanInput) -> Result<SmokeOutput, DeployError> {
    let plan = &input.plan;
    let t = &plan.target;
    let missing = || DeployError::NotFound { what: "function", message: t.function.to_string() };
    let before = lambda.get_function(&t.function, None).await?.ok_or_else(missing)?;
    if before.code_sha256 != plan.image_digest.hex() {
        return Err(DeployError::PreconditionFailed {
            resource: t.function.to_string(),
            message: format!(
                "$LATEST runs {} instead of the image under test {}",
                before.code_sha256, plan.image_digest
            ),
        });
    }
    let run = run_cases(lambda, &t.function, "$LATEST", &t.smoke_test).await?;
    if !run.failures.is_empty() {
        tracing::warn!(function = %t.function, failures = ?run.failures, "smoke test failed");
        return Err(DeployError::SmokeTestFailed {
            function: t.function.to_string(),
            report: summarize(&run.failures),
        });
    }
    let after = lambda.get_function(&t.function, None).await?.ok_or_else(missing)?;
    if after.revision_id != before.revision_id {
        return Err(DeployError::PreconditionFailed {
            resource: t.function.to_string(),
            message: "the function changed while it was being smoke-tested".into(),
        });
    }
    tracing::info!(function = %t.function, cases = run.cases.len(), warmup_ms = run.warmup_ms, "smoke test passed");
    Ok(SmokeOutput {
        revision_id: before.revision_id,
        code_sha256: before.code_sha256,
        warmup_ms: run.warmup_ms,
        cases: run.cases,
    })
}

/// The first problems in full, then a count: a cause stays readable (and under Step Functions' limits)
/// when a bad model gets every number wrong.
pub(crate) fn summarize(failures: &[String]) -> String {
    const SHOWN: usize = 8;
    let mut out = format!("{} problem(s): {}", failures.len(), failures[..failures.len().min(SHOWN)].join("; "));
    if failures.len() > SHOWN {
        out.push_str(&format!("; and {} more", failures.len() - SHOWN));
    }
    out
}
