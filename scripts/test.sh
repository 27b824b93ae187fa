#!/usr/bin/env bash
# Runs every test on this machine: installs what is missing (pinned Python tools, buildah), starts local
# AWS, runs the linters and `cargo test --workspace`, then the long runs on a second local AWS with a
# compressed clock (tests/scripts/long_run.sh), and stops local AWS even on failure.
# Exits non-zero if any step failed; the summary at the end says which.
#
#   scripts/test.sh            everything
#   scripts/test.sh -- ARGS    extra arguments for cargo test (e.g. -- -- local_aws)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

cargo_args=()
if [[ "${1:-}" == "--" ]]; then
  shift
  cargo_args=("$@")
fi

# A full run from a clean clone writes about NEEDED_GB (the target dir, buildah's storage, local AWS's
# registry): say so now, not when a build or an image push fails with "no space left on device".
NEEDED_GB=8
target_root=${CARGO_TARGET_DIR:-$ROOT/target}
# Most of it goes to the target dir (buildah's storage included); the rest to $ROOT/.local-aws.
target_disk=$target_root
while [[ ! -e "$target_disk" ]]; do target_disk=$(dirname "$target_disk"); done
for place in "$target_disk" "$ROOT"; do
  read -r device free_gb < <(df -Pk "$place" | awk 'NR == 2 { print $1, int($4 / 1048576) }')
  [[ "$device" == "${seen_device:-}" ]] && continue
  seen_device=$device
  if [[ -n "$free_gb" && $free_gb -lt $NEEDED_GB ]]; then
    echo "warning: only ${free_gb} GB free on the disk of $place; a full run from scratch needs about" \
      "${NEEDED_GB} GB (free some, or point CARGO_TARGET_DIR at a larger disk)" >&2
  fi
done

ensure_debian_packages buildah curl
ensure_venv

# Images earlier runs left in buildah's storage (scripts/build-image keeps one when another build is running):
# nothing needs them, and a reused CARGO_TARGET_DIR would collect them. The exclusive lock waits for any build.
buildah_root=${BUILDAH_ROOT:-$target_root/buildah}
if [[ -d "$buildah_root/root" ]]; then
  flock --exclusive "$buildah_root/build-image.lock" buildah --root "$buildah_root/root" \
    --runroot "$buildah_root/run" --storage-driver vfs rmi --all --force >/dev/null 2>&1 || true
fi
ensure_checkov
local_aws_env

failed=()
passed=()
step() {
  local name=$1
  shift
  say "$name"
  local started=$SECONDS
  if "$@"; then
    passed+=("$name ($((SECONDS - started)) s)")
  else
    failed+=("$name")
    echo "FAILED: $name" >&2
  fi
}

step "rustfmt" cargo fmt --all -- --check
step "shellcheck" shellcheck -x scripts/*.sh scripts/local-aws scripts/build-image scripts/build-ml-image scripts/bench \
  .ci/run tests/scripts/*.sh
step "ruff (Python)" bash -c "ruff check --quiet scripts/localaws scripts/bench.py examples && ruff format --check --quiet scripts/localaws scripts/bench.py examples"
step "cfn-lint (template.yaml)" cfn-lint template.yaml
step "checkov (IaC, workflows, Dockerfiles)" "$VENV/checkov/bin/checkov" -d . --framework cloudformation,github_actions,dockerfile \
  --quiet --compact --skip-download --skip-path '^\./(target|\.venv|\.local-aws)$'
step "actionlint (.github/workflows)" actionlint
step "hadolint (Dockerfiles)" hadolint examples/ml-inference/Dockerfile tests/fixture-fn/Dockerfile
step "model files = a fresh training" python examples/ml-inference/model/train.py --check
step "clippy" cargo clippy --workspace --all-targets --quiet -- -D warnings

# Local AWS on the spare port first: its own start/stop behaviour.
step "local AWS lifecycle" bash tests/scripts/local_aws_lifecycle.sh

# CloudWatch's ingest lag, compressed for the suite's local AWS (AWS's own minute is what
# tests/scripts/long_run.sh runs with); the tests read it from local AWS and size their gates to it.
export LOCAL_AWS_METRIC_LAG_SECONDS=${LOCAL_AWS_METRIC_LAG_SECONDS:-3}
scripts/local-aws start
trap 'scripts/local-aws stop >/dev/null || true' EXIT
# The test binaries share one deployment of the e2e stack per run and endpoint (tests/src/stack.rs, ensure).
DEPLOYER_E2E_RUN="$(date +%s)-$$"
export DEPLOYER_E2E_RUN
reports="$target_root/test-reports"
rm -rf "$reports"
step "cargo test" cargo test --workspace --no-fail-fast "${cargo_args[@]}"
# Hours of deployment on a second local AWS with a compressed clock (after the build above, which it reuses).
step "long runs (compressed clock)" bash tests/scripts/long_run.sh

echo
say "summary"
for r in "$reports"/*.txt; do [[ -f "$r" ]] && sed 's/^/  /' "$r"; done
for p in "${passed[@]}"; do echo "  ok      $p"; done
for f in "${failed[@]}"; do echo "  FAILED  $f"; done
# What the run left on disk (the figure NEEDED_GB above comes from).
echo "  disk: $(du -sh "$target_root" 2>/dev/null | cut -f1) target dir, $(du -sh "$LOCAL_AWS_STATE" 2>/dev/null | cut -f1)" \
  "local AWS state, $(df -Ph "$ROOT" | awk 'NR == 2 { print $4 }') free"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "${#failed[@]} step(s) failed; the local AWS log is $LOCAL_AWS_STATE/server.log" >&2
  exit 1
fi
