#!/usr/bin/env bash
# Deploy the deployer (template.yaml) to local AWS, as `sam build && sam deploy` does to AWS:
# build the step binaries, zip each as `bootstrap`, upload them to S3, translate the SAM template offline,
# and create (or update) the CloudFormation stack.
#
#   scripts/deploy-local.sh [--stack NAME] --repositories repo1,repo2 [--param KEY=VALUE]... [--release]
#                           [--build-tests]
#
# A debug build is one `cargo build --workspace --bins`, the demo's own build, so the two share every compiled
# dependency. --build-tests adds the test targets, as `cargo test --workspace` builds them: the tests pass it, so
# a test run compiles the AWS SDK once (a build of only some packages, or without the dev-dependencies, resolves
# other features and compiles the SDK again).
# Needs local AWS running (scripts/local-aws start). Prints the stack's outputs as KEY=VALUE lines.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

stack=lambda-deployer repositories="" profile=debug extra=() with_tests=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --stack) stack=$2; shift 2 ;;
    --repositories) repositories=$2; shift 2 ;;
    --release) profile=release; shift ;;
    --build-tests) with_tests=(--tests); shift ;;
    --param) extra+=("$2"); shift 2 ;;
    *) die "unknown argument $1 (see the header of scripts/deploy-local.sh)" ;;
  esac
done
[[ -n "$repositories" ]] || die "--repositories is required: the ECR repositories whose pushes deploy (comma-separated)"
ensure_venv
local_aws_env
scripts/local-aws status >/dev/null || die "local AWS is not running: scripts/local-aws start"

binaries=(trigger prepare update-code check-ready smoke-test publish-version provision acceptance shift-traffic
  check-health shift-alias rollback finish)
target_dir=${CARGO_TARGET_DIR:-$ROOT/target}
say "building the step functions ($profile)"
pkgs=()
for b in "${binaries[@]}"; do pkgs+=(-p "$b"); done
if [[ $profile == release ]]; then
  cargo build --quiet --release "${pkgs[@]}"  # only what ships: the step functions
else
  cargo build --quiet --workspace --bins "${with_tests[@]}"
fi

zips="$target_dir/lambda-zips/$profile"
mkdir -p "$zips"
bucket="$stack-artifacts"
aws s3api head-bucket --bucket "$bucket" 2>/dev/null || aws s3api create-bucket --bucket "$bucket" >/dev/null
code_keys=()
for b in "${binaries[@]}"; do
  python - "$target_dir/$profile/$b" "$zips/$b.zip" <<'PY'
import sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
info = zipfile.ZipInfo("bootstrap", date_time=(2020, 1, 1, 0, 0, 0))
info.external_attr = 0o100755 << 16
info.compress_type = zipfile.ZIP_DEFLATED  # writestr takes a ZipInfo's own type (stored), not the archive's
with zipfile.ZipFile(dst, "w") as z, open(src, "rb") as f:
    z.writestr(info, f.read())
PY
  # A key per content: a changed binary changes the template, so an update replaces the code.
  key="$b-$(sha256sum "$zips/$b.zip" | cut -c1-12).zip"
  aws s3 cp --quiet "$zips/$b.zip" "s3://$bucket/$key"
  code_keys+=(--code-key "$b=$key")
done

say "translating template.yaml (aws-sam-translator)"
out="$target_dir/local-stack"
mkdir -p "$out"
params=(--param "AllowedRepositories=$repositories")
for p in "${extra[@]}"; do params+=(--param "$p"); done
(cd scripts && python -m localaws.sam --template "$ROOT/template.yaml" --bucket "$bucket" "${params[@]}" "${code_keys[@]}") > "$out/$stack.json"

cfn_params=("ParameterKey=AllowedRepositories,ParameterValue=\"$repositories\"")
for p in "${extra[@]}"; do cfn_params+=("ParameterKey=${p%%=*},ParameterValue=${p#*=}"); done
if aws cloudformation describe-stacks --stack-name "$stack" >/dev/null 2>&1; then
  say "updating stack $stack"
  aws cloudformation update-stack --stack-name "$stack" --template-body "file://$out/$stack.json" \
    --parameters "${cfn_params[@]}" --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND >/dev/null
  aws cloudformation wait stack-update-complete --stack-name "$stack"
else
  say "creating stack $stack"
  aws cloudformation create-stack --stack-name "$stack" --template-body "file://$out/$stack.json" \
    --parameters "${cfn_params[@]}" --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND >/dev/null
  aws cloudformation wait stack-create-complete --stack-name "$stack"
fi
status=$(aws cloudformation describe-stacks --stack-name "$stack" --query 'Stacks[0].StackStatus' --output text)
[[ $status == *_COMPLETE && $status != *ROLLBACK* ]] || die "stack $stack ended in $status"
aws cloudformation describe-stacks --stack-name "$stack" \
  --query 'Stacks[0].Outputs[].[OutputKey,OutputValue]' --output text | awk '{print $1 "=" $2}'
