"""The deployer's benchmark, on local AWS, in one run: writes bench/RESULTS.md (see scripts/bench).

Measures, with the release build of every Lambda:
1. the deploy path (ECR push -> the alias serving the new version), all at once, repeated, against the
   usual way (a shell script of aws CLI calls) on the same local AWS, and both against the fewest calls;
2. the cost of a deployment (API calls by operation, state transitions, step invocations and billed
   duration) for all at once, a canary, and a rollback, against the fewest transitions the flow needs;
3. the footprint of each step Lambda and of the ML service (binary size, cold start, peak memory), and the
   ML service's inference latency and throughput beside scikit-learn's own prediction on the same rows;
4. one push fanning out to 1, 10 and 50 target functions.
Local AWS's /_local/usage counts every call by caller (the access key): the deployer's steps, the state
machine and EventBridge are counted; this script's own calls (key "bench") and the baseline's (key
"baseline") are told apart.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent
ENDPOINT = os.environ["AWS_ENDPOINT_URL"]
REGION = os.environ.get("AWS_REGION", "us-east-1")
ACCOUNT = "123456789012"
STACK = "bench"
# Local AWS's CloudWatch ingest lag (scripts/bench sets it); the canary's gates wait it out.
METRIC_LAG = math.ceil(float(os.environ.get("LOCAL_AWS_METRIC_LAG_SECONDS", "60")))
ML_REPO = "bench-ml"
FAN_OUT = [1, 10, 50]
REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))
TARGET_DIR = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
REGISTRY = ENDPOINT.replace("http://", "")
STEPS = [
    "trigger", "prepare", "update-code", "check-ready", "smoke-test", "publish-version", "provision",
    "acceptance", "shift-traffic", "check-health", "shift-alias", "rollback", "finish",
]  # fmt: skip
# Public prices (us-east-1, 2026): Standard workflows per state transition; Lambda per GB-second (x86) and
# per request; GetMetricData per 1,000 metrics requested.
PRICE_TRANSITION = 0.000025
PRICE_GB_SECOND = 0.0000166667
PRICE_REQUEST = 0.0000002
PRICE_METRICS = 0.01 / 1000
STEP_MEMORY_MB = 128
# Each step Lambda's reserved concurrency in the bench's stack: the fan-out queues on it (and is throttled).
STEP_CONCURRENCY = 4


def client(service: str, caller: str = "bench"):
    return boto3.client(
        service,
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id=caller,
        aws_secret_access_key="bench",
    )


lam, sfn, ddb, iam, cfn, ecr = (
    client(s) for s in ("lambda", "stepfunctions", "dynamodb", "iam", "cloudformation", "ecr")
)


def say(msg: str) -> None:
    print(f"==> {msg}", flush=True)


def usage(reset: bool = False) -> dict:
    req = urllib.request.Request(f"{ENDPOINT}/_local/usage", method="DELETE" if reset else "GET")
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def run(cmd: list[str], env: dict | None = None, quiet: bool = True) -> str:
    out = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[max(0, min(len(s) - 1, int(round(q / 100 * len(s) + 0.5)) - 1))]


def spread(values: list[float]) -> str:
    if len(values) < 2:
        return "-"
    return f"{min(values):.2f}-{max(values):.2f} (sd {statistics.stdev(values):.2f})"


# ----------------------------------------------------------------------------------------------------
# setup
# ----------------------------------------------------------------------------------------------------
def deploy_stack() -> tuple[str, float]:
    repos = ",".join([ML_REPO] + [f"bench-fan-{n}" for n in FAN_OUT])
    say("deploying the deployer stack (release build of every step)")
    t = time.monotonic()
    run(
        ["scripts/deploy-local.sh", "--stack", STACK, "--repositories", repos, "--release",
         "--param", "TargetFunctionPrefix=bench-", "--param", "TargetRolePrefix=bench-",
         "--param", f"StepConcurrency={STEP_CONCURRENCY}"]
    )  # fmt: skip
    seconds = time.monotonic() - t
    print(f"    stack deployed in {seconds:.0f} s")
    outputs = cfn.describe_stacks(StackName=STACK)["Stacks"][0]["Outputs"]
    return next(o["OutputValue"] for o in outputs if o["OutputKey"] == "StateMachineArn"), seconds


def role() -> str:
    doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}  # fmt: skip
    try:
        return iam.create_role(RoleName="bench-service", AssumeRolePolicyDocument=json.dumps(doc))["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        return iam.get_role(RoleName="bench-service")["Role"]["Arn"]


def build_ml(version: str, repo: str, broken: bool = False) -> str:
    """Build the ML service's image (release) with this version and push it; its digest."""
    args = ["scripts/build-ml-image", "--release", "--version", version, "--insecure",
            "--push", f"{REGISTRY}/{repo}:sha-{version}"]  # fmt: skip
    if broken:
        args.append("--broken")
    return run(args).strip().splitlines()[-1]


def put_target(function: str, repo: str, role_arn: str, **extra) -> dict:
    spec = json.loads((ROOT / "examples/ml-inference/target.json").read_text())
    spec.update(function=function, repository=repo, tagPattern="^sha-[0-9a-z-]+$")
    spec["configuration"]["role"] = role_arn
    spec["configuration"]["logging"].pop("retentionDays", None)
    spec.update(extra)
    ddb.put_item(
        TableName=f"{STACK}-targets",
        Item={"function": {"S": function}, "spec": {"S": json.dumps(spec)}, "updatedAt": {"S": "2026-11-27T00:00:00Z"}},
    )
    return spec


def alias_digest(function: str) -> str | None:
    try:
        v = lam.get_alias(FunctionName=function, Name="live")
    except lam.exceptions.ResourceNotFoundException:
        return None
    if v.get("RoutingConfig", {}).get("AdditionalVersionWeights"):
        return None
    f = lam.get_function_configuration(FunctionName=function, Qualifier=v["FunctionVersion"])
    return "sha256:" + f["CodeSha256"]


def execution_name(function: str, digest: str) -> str:
    return f"deploy-{function}-{digest[len('sha256:') : len('sha256:') + 12]}"


def wait_execution(sm_arn: str, name: str, limit: float = 600) -> dict:
    arn = sm_arn.replace(":stateMachine:", ":execution:") + ":" + name
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            d = sfn.describe_execution(executionArn=arn)
            if d["status"] != "RUNNING":
                return d
        except sfn.exceptions.ExecutionDoesNotExist:
            pass
        time.sleep(0.1)
    sys.exit(f"execution {name} did not end in {limit} s")


def entered(execution_arn: str) -> list[str]:
    """The states an execution entered, in order (Step Functions bills each as a transition)."""
    out, token = [], None
    while True:
        page = sfn.get_execution_history(
            executionArn=execution_arn, maxResults=1000, **({"nextToken": token} if token else {})
        )
        out += [e["stateEnteredEventDetails"]["name"] for e in page["events"] if e["type"].endswith("StateEntered")]
        token = page.get("nextToken")
        if not token:
            return out


def transitions(execution_arn: str) -> int:
    return len(entered(execution_arn))


# The Task states that do a deployment's work; the fewest transitions a path can have is each of those it
# needed entered once (one readiness check, one health check per canary), plus its end state.
ESSENTIAL = {"Prepare", "Update Function", "Check Ready", "Smoke Test", "Publish Version", "Shift Traffic",
             "Check Health", "Shift Alias", "Roll Back", "Finish"}  # fmt: skip


def fewest(states: list[str]) -> int:
    return len({s for s in states if s in ESSENTIAL}) + 1


def deployer_calls(u: dict) -> Counter:
    """The calls the deployer made (its steps, the state machine, EventBridge), by service and operation."""
    c: Counter = Counter()
    for row in u["calls"]:
        if row["caller"] not in ("bench", "baseline", "-"):
            c[f"{row['service']}:{row['operation']}"] += row["count"]
    return c


STEP_FUNCTIONS = {f"{STACK}-{step}" for step in STEPS}


def step_invocations(u: dict) -> tuple[int, int]:
    count = billed = 0
    for fn, s in u["invocations"].items():
        if fn in STEP_FUNCTIONS:
            count += s["count"]
            billed += s["billedMs"]
    return count, billed


def cost(calls: Counter, n_transitions: int, invocations: int, billed_ms: int) -> float:
    metrics = calls.get("monitoring:GetMetricData", 0) * 8  # 4 metrics x 2 versions per call
    gb_s = billed_ms / 1000 * STEP_MEMORY_MB / 1024
    return (
        n_transitions * PRICE_TRANSITION
        + gb_s * PRICE_GB_SECOND
        + invocations * PRICE_REQUEST
        + metrics * PRICE_METRICS
    )


def settle() -> None:
    """Wait until the status-change events of the last execution have been delivered and handled."""
    time.sleep(1.5)


# ----------------------------------------------------------------------------------------------------
# 1. the deploy path
# ----------------------------------------------------------------------------------------------------
def push_and_follow(sm_arn: str, function: str, version: str, broken: bool = False) -> dict:
    usage(reset=True)
    digest = build_ml(version, ML_REPO, broken)
    pushed = time.monotonic()
    live_at = None
    name = execution_name(function, digest)
    if not broken:
        while time.monotonic() - pushed < 300:
            if alias_digest(function) == digest:
                live_at = time.monotonic()
                break
            time.sleep(0.05)
    d = wait_execution(sm_arn, name)
    settle()
    u = usage()
    states = entered(d["executionArn"])
    calls = deployer_calls(u)
    n_inv, billed = step_invocations(u)
    return {
        "digest": digest,
        "status": d["status"],
        "seconds": (live_at - pushed) if live_at else None,
        "execution_seconds": (d["stopDate"] - d["startDate"]).total_seconds(),
        "calls": calls,
        "states": states,
        "transitions": len(states),
        "invocations": n_inv,
        "billed_ms": billed,
        "usage": u,
    }


BASELINE = r"""#!/usr/bin/env bash
# The usual way: five aws CLI calls, one after the other.
set -euo pipefail
fn=$1 image=$2
aws lambda update-function-code --function-name "$fn" --image-uri "$image" >/dev/null
aws lambda wait function-updated --function-name "$fn"
aws lambda invoke --function-name "$fn" --payload "$(cat "$3")" /dev/null >/dev/null
version=$(aws lambda publish-version --function-name "$fn" --query Version --output text)
aws lambda update-alias --function-name "$fn" --name live --function-version "$version" >/dev/null
"""


def baseline_setup(role_arn: str, digest: str) -> str:
    fn = "bench-baseline"
    uri = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{ML_REPO}@{digest}"
    lam.create_function(
        FunctionName=fn, Role=role_arn, PackageType="Image", Code={"ImageUri": uri}, MemorySize=512, Timeout=10,
        Environment={"Variables": {"MODEL_PATH": "/var/task/model.json"}},
    )  # fmt: skip
    while lam.get_function_configuration(FunctionName=fn)["State"] != "Active":
        time.sleep(0.2)
    v = lam.publish_version(FunctionName=fn)["Version"]
    lam.create_alias(FunctionName=fn, Name="live", FunctionVersion=v)
    return fn


def baseline_run(fn: str, digest: str, payload: Path, script: Path) -> dict:
    uri = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{ML_REPO}@{digest}"
    usage(reset=True)
    env = {
        "AWS_ACCESS_KEY_ID": "baseline",
        "AWS_SECRET_ACCESS_KEY": "baseline",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    t = time.monotonic()
    run(["bash", str(script), fn, uri, str(payload)], env=env)
    seconds = time.monotonic() - t
    calls: Counter = Counter()
    for row in usage()["calls"]:
        if row["caller"] == "baseline":
            calls[f"{row['service']}:{row['operation']}"] += row["count"]
    assert alias_digest(fn) == digest, "the baseline did not move the alias"
    return {"seconds": seconds, "calls": calls}


# ----------------------------------------------------------------------------------------------------
# 3. footprint and inference
# ----------------------------------------------------------------------------------------------------
def footprint(us: list[dict]) -> list[tuple]:
    rows = []
    for step in STEPS:
        binary = TARGET_DIR / "release" / step
        zip_file = TARGET_DIR / "lambda-zips" / "release" / f"{step}.zip"
        inits, mems, durations = [], [], []
        for u in us:
            s = u["invocations"].get(f"{STACK}-{step}")
            if s:
                inits += s["initMs"]
                mems.append(s["maxMemoryMb"])
                durations += s["durationsMs"]
        rows.append(
            (
                step,
                binary.stat().st_size / 1e6 if binary.exists() else float("nan"),
                zip_file.stat().st_size / 1e6 if zip_file.exists() else float("nan"),
                statistics.median(inits) if inits else float("nan"),
                max(mems) if mems else 0,
                pct(durations, 50),
                len(durations),
            )
        )
    return rows


def inference(function: str) -> dict:
    golden = json.loads((ROOT / "examples/ml-inference/model/golden.json").read_text())
    rows = golden["rows"] if "rows" in golden else [c["row"] for c in golden["cases"]]
    batch = (rows * (120 // len(rows) + 1))[:120]
    out = {}
    for label, payload_rows, n in (("1 row", rows[:1], 300), ("120 rows", batch, 100)):
        usage(reset=True)
        body = json.dumps({"rows": payload_rows}).encode()
        lam.invoke(FunctionName=function, Qualifier="live", Payload=body)  # warm
        usage(reset=True)
        client_ms = []
        for _ in range(n):
            t = time.perf_counter()
            r = lam.invoke(FunctionName=function, Qualifier="live", Payload=body)
            r["Payload"].read()
            client_ms.append((time.perf_counter() - t) * 1000)
        durations = usage()["invocations"][function]["durationsMs"]
        out[label] = {
            "rows": len(payload_rows),
            "p50": pct(durations, 50),
            "p99": pct(durations, 99),
            "rows_per_s": len(payload_rows) / (statistics.median(durations) / 1000),
            "client_p50": pct(client_ms, 50),
        }
    # scikit-learn, the training framework, on the same rows, in this process.
    sys.path.insert(0, str(ROOT / "examples/ml-inference/model"))
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer()
    x_train, _, y_train, _ = train_test_split(
        data.data, data.target, test_size=0.25, random_state=7, stratify=data.target
    )
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, C=1.0)).fit(x_train, y_train)
    for label, payload_rows, n in (("1 row", rows[:1], 300), ("120 rows", batch, 100)):
        x = np.array(payload_rows)
        pipeline.predict_proba(x)
        times = []
        for _ in range(n):
            t = time.perf_counter()
            pipeline.predict_proba(x)
            times.append((time.perf_counter() - t) * 1000)
        out[label]["sk_p50"] = pct(times, 50)
        out[label]["sk_p99"] = pct(times, 99)
        out[label]["sk_rows_per_s"] = len(payload_rows) / (statistics.median(times) / 1000)
    return out


# ----------------------------------------------------------------------------------------------------
# 4. fan-out
# ----------------------------------------------------------------------------------------------------
def fan_out(sm_arn: str, role_arn: str, n: int, version: str) -> dict:
    repo = f"bench-fan-{n}"
    functions = [f"bench-fan{n}-{i:02d}" for i in range(n)]
    for f in functions:
        # 50 cold starts at once on 2 cores: the smoke test's 1 s latency budget is not what is measured here.
        spec = put_target(f, repo, role_arn)
        spec["smokeTest"]["latencyBudgetMs"] = 10_000
        put_target(f, repo, role_arn, smokeTest=spec["smokeTest"])
    results = {}
    for phase, v in (("create", f"{version}-a"), ("update", f"{version}-b")):
        usage(reset=True)
        digest = build_ml(v, repo)
        pushed = time.monotonic()
        ends = [wait_execution(sm_arn, execution_name(f, digest), limit=900) for f in functions]
        seconds = time.monotonic() - pushed
        settle()
        u = usage()
        failed = [
            f"{e['name']}: {e.get('error')}: {(e.get('cause') or '')[:300]}" for e in ends if e["status"] != "SUCCEEDED"
        ]
        for f in failed:
            print(f"    FAILED {f}")
        n_inv, billed = step_invocations(u)
        throttles = sum(s["throttles"] for f, s in u["invocations"].items() if f in STEP_FUNCTIONS)
        target_throttles = sum(s["throttles"] for f, s in u["invocations"].items() if f in functions)
        results[phase] = {
            "seconds": seconds,
            "failed": failed,
            "calls": sum(deployer_calls(u).values()),
            "transitions": sum(transitions(e["executionArn"]) for e in ends),
            "invocations": n_inv,
            "throttles": throttles + target_throttles,
            "served": sum(1 for f in functions if alias_digest(f) == digest),
        }
    return results


# ----------------------------------------------------------------------------------------------------
def main() -> None:
    started = time.monotonic()
    sm_arn, setup = deploy_stack()
    role_arn = role()
    ecr.create_repository(repositoryName=ML_REPO)
    for n in FAN_OUT:
        ecr.create_repository(repositoryName=f"bench-fan-{n}")
    target = "bench-ml-service"
    put_target(target, ML_REPO, role_arn)

    say("1. deploy path: the first deployment (creates the function), then repeated all-at-once deployments")
    first = push_and_follow(sm_arn, target, "b0")
    assert first["status"] == "SUCCEEDED", first["status"]
    runs = []
    for i in range(1, REPEATS + 1):
        r = push_and_follow(sm_arn, target, f"b{i}")
        assert r["status"] == "SUCCEEDED" and r["seconds"], (r["status"], r["seconds"])
        runs.append(r)
        print(f"    run {i}: {r['seconds']:.2f} s push -> live ({r['execution_seconds']:.2f} s in the state machine)")

    say("   the usual way: aws CLI calls against the same local AWS, on the same images")
    script = TARGET_DIR / "bench-baseline.sh"
    script.write_text(BASELINE)
    payload = TARGET_DIR / "bench-payload.json"
    spec = json.loads((ROOT / "examples/ml-inference/target.json").read_text())
    payload.write_text(json.dumps(spec["smokeTest"]["cases"][0]["payload"]))
    base_fn = baseline_setup(role_arn, first["digest"])
    baseline = []
    for i, r in enumerate(runs, 1):
        b = baseline_run(base_fn, r["digest"], payload, script)
        baseline.append(b)
        print(f"    run {i}: {b['seconds']:.2f} s")

    say("2. cost: a canary (traffic through the alias while it bakes) and a rollback")
    canary_fn = "bench-canary"
    put_target(canary_fn, ML_REPO, role_arn)
    # The canary target takes the images of the repository too: first deploy it all at once.
    c0 = push_and_follow(sm_arn, target, "c0")  # also deploys canary_fn (same repository)
    wait_execution(sm_arn, execution_name(canary_fn, c0["digest"]))
    put_target(
        canary_fn, ML_REPO, role_arn,
        strategy={"type": "canary", "percent": 50, "bakeSeconds": 2},
        # Loose latency gates: on a shared 2-core machine a p99 of a few dozen calls is noise.
        gates={"minInvocations": 5, "checkIntervalSeconds": 1, "metricLagSeconds": METRIC_LAG, "maxWaitSeconds": 20,
               "p99Margin": 2.0, "p99ToleranceMs": 500},
    )  # fmt: skip
    ddb.delete_item(TableName=f"{STACK}-targets", Key={"function": {"S": target}})
    stop = threading.Event()
    golden = json.dumps({"rows": spec["smokeTest"]["cases"][0]["payload"]["rows"][:1]}).encode()

    def traffic():
        while not stop.is_set():
            try:
                lam.invoke(FunctionName=canary_fn, Qualifier="live", Payload=golden)
            except Exception:
                pass
            time.sleep(0.05)

    thread = threading.Thread(target=traffic, daemon=True)
    thread.start()
    canary = push_and_follow(sm_arn, canary_fn, "c1")
    stop.set()
    thread.join()
    if canary["status"] != "SUCCEEDED":
        d = sfn.describe_execution(
            executionArn=sm_arn.replace(":stateMachine:", ":execution:")
            + ":"
            + execution_name(canary_fn, canary["digest"])
        )
        sys.exit(f"the canary failed: {d.get('error')}: {d.get('cause')}")
    rollback = push_and_follow(sm_arn, canary_fn, "c2", broken=True)
    assert rollback["status"] == "FAILED", rollback["status"]

    say("3. footprint, and the ML service's inference beside scikit-learn's")
    steps = footprint([first["usage"], *[r["usage"] for r in runs], canary["usage"], rollback["usage"]])
    ml_binary = TARGET_DIR / "x86_64-unknown-linux-gnu/release/ml-inference"
    ml_usage = first["usage"]["invocations"].get(target, {})
    inf = inference(canary_fn)

    say("4. fan-out: one push, 1, 10 and 50 target functions")
    fan = {}
    for n in FAN_OUT:
        fan[n] = fan_out(sm_arn, role_arn, n, f"f{n}")
        print(f"    {n}: create {fan[n]['create']['seconds']:.1f} s, update {fan[n]['update']['seconds']:.1f} s")

    write_results(
        runs, baseline, first, canary, rollback, steps, ml_binary, ml_usage, inf, fan, time.monotonic() - started, setup
    )


# ----------------------------------------------------------------------------------------------------
def write_results(runs, baseline, first, canary, rollback, steps, ml_binary, ml_usage, inf, fan, total, setup):
    d = [r["seconds"] for r in runs]
    b = [x["seconds"] for x in baseline]
    e = [r["execution_seconds"] for r in runs]
    deployer_calls_n = [sum(r["calls"].values()) for r in runs]
    baseline_calls_n = [sum(x["calls"].values()) for x in baseline]
    cases = 2  # the ML target's smoke cases
    fewest_calls = (
        4 + cases
    )  # UpdateFunctionCode, GetFunction (once ready), Invoke per case, PublishVersion, UpdateAlias
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    L = []
    w = L.append
    w("# Benchmarks\n")
    w(f"Written by `scripts/bench` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, in {total / 60:.1f} min "
      f"({setup / 60:.1f} of them building the step Lambdas in release and deploying the stack). "
      f"Machine: {os.cpu_count()} cores ({cpu}), {mem_gb:.0f} GiB, {platform.system()} {platform.release()}; "
      f"local AWS (moto + this project's extensions) on the same machine, its simulated Lambda update taking "
      f"{os.environ.get('LOCAL_AWS_LAMBDA_UPDATE_DELAY', '1.0')} s. Every Lambda is the release build. Times "
      f"are wall-clock on a shared 2-core machine: expect ±20% between runs; the spread columns show this run's.\n")  # fmt: skip
    w("## 1. Deploy path: ECR push to the alias serving the new version (all at once)\n")
    w(f"{len(runs)} deployments of the ML service (a new image each), each timed from the end of the push to the "
      f"first moment the alias serves the new image; the baseline does the same with the same images on a twin "
      f"function, timed from the script's start to its end.\n")  # fmt: skip
    w("| | median (s) | spread (s) | API calls per deployment | calls over the fewest |")
    w("|---|---|---|---|---|")
    w(f"| deployer (event -> trigger -> state machine) | {statistics.median(d):.2f} | {spread(d)} | "
      f"{statistics.median(deployer_calls_n):.0f} | {statistics.median(deployer_calls_n) / fewest_calls:.1f}x |")  # fmt: skip
    w(f"| of which inside the state machine | {statistics.median(e):.2f} | {spread(e)} | | |")
    w(f"| usual way (`aws lambda` CLI script) | {statistics.median(b):.2f} | {spread(b)} | "
      f"{statistics.median(baseline_calls_n):.0f} | {statistics.median(baseline_calls_n) / fewest_calls:.1f}x |")  # fmt: skip
    w(f"\n**Ratio**: the deployer takes {statistics.median(d) / statistics.median(b):.2f}x the usual way's time. "
      f"The fewest calls that can do this are {fewest_calls}: UpdateFunctionCode, one GetFunction that finds it ready, "
      f"one Invoke per smoke case ({cases}), PublishVersion, UpdateAlias. The usual way makes one "
      f"smoke Invoke only, polls with `aws lambda wait` (every 5 s), has no lock, no record, no rollback, no "
      f"drift repair; the deployer's extra calls are those (the table below lists them).\n")  # fmt: skip
    w("Calls by operation, median deployment:\n")
    w("| operation | deployer | usual way |")
    w("|---|---|---|")
    ops = sorted(set().union(*[r["calls"] for r in runs], *[x["calls"] for x in baseline]))
    mid = sorted(range(len(runs)), key=lambda i: sum(runs[i]["calls"].values()))[len(runs) // 2]
    for op in ops:
        w(f"| {op} | {runs[mid]['calls'].get(op, 0)} | {baseline[mid]['calls'].get(op, 0)} |")
    w("\n## 2. Cost per deployment\n")
    w(f"Step Functions Standard at ${PRICE_TRANSITION} per transition, Lambda at ${PRICE_GB_SECOND}/GB-s "
      f"({STEP_MEMORY_MB} MB steps) and ${PRICE_REQUEST * 1e6:.2f}/M requests, GetMetricData at $0.01 per 1,000 "
      f"metrics. API calls other than GetMetricData are free. The fewest transitions: each Task state doing a "
      f"deployment's work (Prepare, Update Function, Check Ready, Smoke Test, Publish Version, Shift Traffic and "
      f"Check Health for a canary, Shift Alias, Roll Back, Finish) entered once, plus the end state.\n")  # fmt: skip
    w("| deployment | transitions | fewest transitions | step invocations | billed step ms | API calls | cost (USD) |")
    w("|---|---|---|---|---|---|---|")
    for label, r in (
        ("all at once (median)", runs[mid]),
        ("canary 50% (2 s bake, 1 s checks)", canary),
        ("rollback (smoke test fails)", rollback),
    ):
        c = cost(r["calls"], r["transitions"], r["invocations"], r["billed_ms"])
        w(f"| {label} | {r['transitions']} | {fewest(r['states'])} | {r['invocations']} | {r['billed_ms']} | "
          f"{sum(r['calls'].values())} | {c:.6f} |")  # fmt: skip
    w("\nStates entered, all at once: " + " -> ".join(runs[mid]["states"]) + "\n")
    w("\n## 3. Footprint\n")
    w("Step Lambdas (release, static, `provided.al2023`), from every invocation in this run:\n")
    w(
        "| step | binary (MB) | zip (MB) | cold start init (ms, median) | peak memory (MB) | duration p50 (ms) | invocations |"
    )
    w("|---|---|---|---|---|---|---|")
    for step, size, zsize, init, mem, p50, n in steps:
        if n == 0:  # Provision and Acceptance Test run only for specs that ask for them
            w(f"| {step} | {size:.2f} | {zsize:.2f} | not run | - | - | 0 |")
            continue
        init_ms = f"{init:.1f}" if init == init else "no cold start seen"
        w(f"| {step} | {size:.2f} | {zsize:.2f} | {init_ms} | {mem} | {p50:.1f} | {n} |")
    w("\nThe ML service:\n")
    w("| | value |")
    w("|---|---|")
    w(f"| binary (MB) | {ml_binary.stat().st_size / 1e6:.2f} |" if ml_binary.exists() else "| binary | - |")
    if ml_usage.get("initMs"):
        w(f"| cold start init (ms, median) | {statistics.median(ml_usage['initMs']):.1f} |")
    w(f"| peak memory (MB) | {ml_usage.get('maxMemoryMb', 0)} |")
    w("\nInference: the service's own duration per invocation (Lambda's Duration, warm) beside scikit-learn's "
      "`predict_proba` on the same rows in one Python process; client round trip through local AWS for scale.\n")  # fmt: skip
    w(
        "| batch | service p50 (ms) | service p99 (ms) | service rows/s | scikit-learn p50 (ms) | scikit-learn p99 (ms) | scikit-learn rows/s | client round trip p50 (ms) |"
    )
    w("|---|---|---|---|---|---|---|---|")
    for label, x in inf.items():
        w(f"| {label} | {x['p50']:.3f} | {x['p99']:.3f} | {x['rows_per_s']:.0f} | {x['sk_p50']:.3f} | "
          f"{x['sk_p99']:.3f} | {x['sk_rows_per_s']:.0f} | {x['client_p50']:.1f} |")  # fmt: skip
    w("\n## 4. Fan-out: one push, many target functions\n")
    w("Every target deploys the pushed repository; the trigger starts one execution per target. `create` is the "
      f"first push (the functions are created), `update` the second. The stack reserves (and so limits) "
      f"{STEP_CONCURRENCY} concurrent executions per step Lambda (`StepConcurrency`): step throttles are the "
      f"Lambda 429s Step Functions got invoking them, each retried by the Task with backoff and jitter. The "
      f"targets' smoke-test latency budget is 10 s here (1 s in the service's spec): 50 new versions starting "
      f"at once on 2 cores take 1.5-2.5 s for their first answers, and a 1 s budget rolls some of them back, "
      f"as it should.\n")  # fmt: skip
    w(
        "| targets | phase | push -> all done (s) | per target (s) | API calls | transitions | step invocations | throttles | failed |"
    )
    w("|---|---|---|---|---|---|---|---|---|")
    for n, phases in fan.items():
        for phase, r in phases.items():
            w(f"| {n} | {phase} | {r['seconds']:.1f} | {r['seconds'] / n:.2f} | {r['calls']} | {r['transitions']} | "
              f"{r['invocations']} | {r['throttles']} | {len(r['failed'])} |")  # fmt: skip
    out = ROOT / "bench" / "RESULTS.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(L) + "\n")
    say(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
