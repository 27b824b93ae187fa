#!/usr/bin/env bash
# Deployments of hours, run in minutes: starts a second local AWS on a spare port with a compressed clock
# (LOCAL_AWS_CLOCK_SCALE, default 120: an hour of its clock takes 30 s) and CloudWatch's default ingest lag,
# deploys the stack to it and runs tests/tests/long_run.rs against it. Leaves alone the local AWS on
# LOCAL_AWS_PORT (the one the other tests use).
#
#   bash tests/scripts/long_run.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
target_root=${CARGO_TARGET_DIR:-$ROOT/target}
LOCAL_AWS_PORT=${LONG_RUN_PORT:-4598}
LOCAL_AWS_STATE="$target_root/long-run-aws"
LOCAL_AWS_CLOCK_SCALE=${LOCAL_AWS_CLOCK_SCALE:-120}
export LOCAL_AWS_PORT LOCAL_AWS_STATE LOCAL_AWS_CLOCK_SCALE
unset LOCAL_AWS_METRIC_LAG_SECONDS # AWS's own lag, about a minute
rm -rf "$LOCAL_AWS_STATE"
"$ROOT/scripts/local-aws" start
trap '"$ROOT/scripts/local-aws" stop >/dev/null || true' EXIT
export AWS_ENDPOINT_URL="http://127.0.0.1:$LOCAL_AWS_PORT"
cd "$ROOT"
# --workspace: the features `cargo test --workspace` builds with, so its build is reused (-p would rebuild the SDKs).
cargo test --workspace --test long_run -- --ignored --test-threads 2
