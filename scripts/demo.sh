#!/usr/bin/env bash
# The main job, end to end on local AWS: install what is missing, build, start a fresh local AWS, deploy
# the deployer stack from template.yaml, register a target, push image v1 then v2 (each deployed and
# shown state by state), push a broken v3 (its smoke test fails and the alias stays), roll back by hand
# with `aws stepfunctions start-execution`, and print a summary. Exits non-zero if anything did not
# happen as shown.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

STACK=lambda-deployer
FUNCTION=demo-service
REPO=demo-service
SPEC=examples/demo/target.json
target_dir=${CARGO_TARGET_DIR:-$ROOT/target}
failures=0
summary=()

check() { # what, actual, expected
  if [[ "$2" == "$3" ]]; then
    printf '   ok: %s (%s)\n' "$1" "$2"
  else
    printf '   NOT OK: %s: got %s, expected %s\n' "$1" "$2" "$3" >&2
    failures=$((failures + 1))
  fi
}

say "1/8 installing what is missing (buildah, pinned Python tools)"
ensure_debian_packages buildah curl
ensure_venv
local_aws_env

say "2/8 building the deployer and the service image's binary"
cargo build --quiet --bins
RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet -p fixture-fn --target x86_64-unknown-linux-gnu
context="$target_dir/demo-context"
mkdir -p "$context"
cp "$target_dir/x86_64-unknown-linux-gnu/debug/fixture-fn" "$context/fixture-fn"
deployctl="$target_dir/debug/deployctl"

say "3/8 starting a fresh local AWS"
scripts/local-aws stop >/dev/null
scripts/local-aws start

say "4/8 deploying the deployer stack ($STACK) from template.yaml"
scripts/deploy-local.sh --stack "$STACK" --repositories "$REPO" | sed 's/^/   /'
state_machine=$(aws cloudformation describe-stacks --stack-name "$STACK" \
  --query "Stacks[0].Outputs[?OutputKey=='StateMachineArn'].OutputValue" --output text)

say "5/8 registering the target: ECR repository, the service's role, the spec"
aws ecr create-repository --repository-name "$REPO" --image-tag-mutability IMMUTABLE \
  --image-scanning-configuration scanOnPush=true >/dev/null
aws iam create-role --role-name "$FUNCTION" --assume-role-policy-document \
  '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}' >/dev/null
"$deployctl" --stack "$STACK" target apply "$SPEC"

alias_version() { aws lambda get-alias --function-name "$FUNCTION" --name live --query FunctionVersion --output text 2>/dev/null || echo none; }
served_variant() {
  aws lambda invoke --function-name "$FUNCTION" --qualifier live --payload '{"echo":"hi"}' /tmp/demo-answer.json >/dev/null
  python -c 'import json; print(json.load(open("/tmp/demo-answer.json"))["variant"])'
}
push() { # tag, expect, build args...
  local tag=$1 expect=$2
  shift 2
  local args=()
  for a in "$@"; do args+=(--build-arg "$a"); done
  local digest
  digest=$(scripts/build-image --file tests/fixture-fn/Dockerfile --context "$context" --name "$REPO:$tag" \
    "${args[@]}" --push "127.0.0.1:$LOCAL_AWS_PORT/$REPO:$tag" --insecure)
  echo "   pushed $REPO:$tag = $digest; the ECR event starts the deployment:"
  "$deployctl" --stack "$STACK" watch --function "$FUNCTION" --digest "$digest" --expect "$expect" --timeout 180 \
    | sed 's/^/   /'
  summary+=("$(printf '%-22s %-10s alias live -> version %-4s %s' "push $tag" "($expect)" "$(alias_version)" "$digest")")
}

say "6/8 pushing v1, then v2"
push sha-0000001 succeeded VARIANT=v1
check "alias after v1" "$(alias_version)" 1
check "v1 serves" "$(served_variant)" v1
push sha-0000002 succeeded VARIANT=v2
check "alias after v2" "$(alias_version)" 2
check "v2 serves" "$(served_variant)" v2

say "7/8 pushing a broken v3: its smoke test fails, the alias stays on v2"
push sha-0000003 failed VARIANT=v3 BROKEN=1
check "alias after broken v3" "$(alias_version)" 2
check "v2 still serves" "$(served_variant)" v2

say "8/8 rolling back by hand: aws stepfunctions start-execution"
echo "   aws stepfunctions start-execution --state-machine-arn $state_machine \\"
echo "       --input '{\"action\":\"rollback\",\"function\":\"$FUNCTION\"}'"
rollback_arn=$(aws stepfunctions start-execution --state-machine-arn "$state_machine" --name "demo-rollback-$(date +%s)" \
  --input "{\"action\":\"rollback\",\"function\":\"$FUNCTION\"}" --query executionArn --output text)
"$deployctl" --stack "$STACK" watch --execution "$rollback_arn" | sed 's/^/   /'
summary+=("$(printf '%-22s %-10s alias live -> version %-4s' "manual rollback" "" "$(alias_version)")")
check "alias after rollback" "$(alias_version)" 1
check "v1 serves again" "$(served_variant)" v1

echo
say "summary"
printf '   %s\n' "${summary[@]}"
echo "   versions:"
aws lambda list-versions-by-function --function-name "$FUNCTION" \
  --query 'Versions[?Version!=`$LATEST`].[Version,Description]' --output text | sed 's/^/     /'
if [[ $failures -gt 0 ]]; then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "demo passed: every deployment, the rollback and every check happened as shown"
