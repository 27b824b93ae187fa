#!/usr/bin/env bash
# The main job, end to end on local AWS: install what is missing, build, start a fresh local AWS, deploy
# the deployer stack from template.yaml, register the ML service's target, push its image v1 then v2
# (built from examples/ml-inference/Dockerfile; each deployed and shown state by state), push a broken
# v3 (a mismatched model: its smoke test fails and the alias stays), roll back by hand with
# `aws stepfunctions start-execution`, and print a summary. Exits non-zero if anything did not happen as
# shown.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

STACK=lambda-deployer
FUNCTION=ml-inference
REPO=ml-inference
SPEC=examples/ml-inference/target.json
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

say "2/8 building the deployer"
cargo build --quiet --bins
deployctl="$target_dir/debug/deployctl"

say "3/8 starting a fresh local AWS"
scripts/local-aws stop >/dev/null
scripts/local-aws start

say "4/8 deploying the deployer stack ($STACK) from template.yaml"
scripts/deploy-local.sh --stack "$STACK" --repositories "$REPO" --param "ServiceRepositoryName=$REPO" \
  --param TargetFunctionPrefix=ml- --param TargetRolePrefix=ml- | sed 's/^/   /'
state_machine=$(aws cloudformation describe-stacks --stack-name "$STACK" \
  --query "Stacks[0].Outputs[?OutputKey=='StateMachineArn'].OutputValue" --output text)

say "5/8 registering the target: the service's role and its spec (the stack made its ECR repository)"
aws ecr describe-repositories --repository-names "$REPO" \
  --query 'repositories[0].[repositoryName,imageTagMutability]' --output text | sed 's/^/   repository: /'
aws iam create-role --role-name "$FUNCTION" --assume-role-policy-document \
  '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}' >/dev/null
"$deployctl" --stack "$STACK" target apply "$SPEC"

alias_version() { aws lambda get-alias --function-name "$FUNCTION" --name live --query FunctionVersion --output text 2>/dev/null || echo none; }
answer="$target_dir/demo-answer.json"
served_version() { # which build answers through the alias, and what it answers for two golden rows
  python - examples/ml-inference/model/golden.json > "$answer.request" <<'PY'
import json, sys
print(json.dumps({"rows": json.load(open(sys.argv[1]))["rows"][:2]}))
PY
  aws lambda invoke --function-name "$FUNCTION" --qualifier live --payload "file://$answer.request" "$answer" >/dev/null
  python -c 'import json,sys; a=json.load(open(sys.argv[1])); print(a["serviceVersion"])' "$answer"
}
push() { # version, expect, extra build-ml-image args...
  local version=$1 expect=$2
  shift 2
  local tag="sha-$version" digest
  digest=$(scripts/build-ml-image --version "$version" "$@" --push "127.0.0.1:$LOCAL_AWS_PORT/$REPO:$tag" --insecure)
  echo "   pushed $REPO:$tag = $digest; the ECR event starts the deployment:"
  "$deployctl" --stack "$STACK" watch --function "$FUNCTION" --digest "$digest" --expect "$expect" --timeout 180 \
    | sed 's/^/   /'
  summary+=("$(printf '%-22s %-10s alias live -> version %-4s %s' "push $tag" "($expect)" "$(alias_version)" "$digest")")
}

say "6/8 pushing v1, then v2 (scripts/build-ml-image: the same build GitHub Actions runs)"
push 0000001 succeeded
check "alias after v1" "$(alias_version)" 1
check "v1 serves" "$(served_version)" 0000001
echo "   the alias answers two golden rows: $(python -c 'import json,sys; a=json.load(open(sys.argv[1])); print(a["labels"], a["probabilities"])' "$answer")"
push 0000002 succeeded
check "alias after v2" "$(alias_version)" 2
check "v2 serves" "$(served_version)" 0000002

say "7/8 pushing a broken v3 (a mismatched model): its smoke test fails, the alias stays on v2"
push 0000003 failed --broken
check "alias after broken v3" "$(alias_version)" 2
check "v2 still serves" "$(served_version)" 0000002

say "8/8 rolling back by hand: aws stepfunctions start-execution"
echo "   aws stepfunctions start-execution --state-machine-arn $state_machine \\"
echo "       --input '{\"action\":\"rollback\",\"function\":\"$FUNCTION\"}'"
rollback_arn=$(aws stepfunctions start-execution --state-machine-arn "$state_machine" --name "demo-rollback-$(date +%s)" \
  --input "{\"action\":\"rollback\",\"function\":\"$FUNCTION\"}" --query executionArn --output text)
"$deployctl" --stack "$STACK" watch --execution "$rollback_arn" | sed 's/^/   /'
summary+=("$(printf '%-22s %-10s alias live -> version %-4s' "manual rollback" "" "$(alias_version)")")
check "alias after rollback" "$(alias_version)" 1
check "v1 serves again" "$(served_version)" 0000001

echo
say "summary"
printf '   %s\n' "${summary[@]}"
echo "   versions:"
# shellcheck disable=SC2016  # a JMESPath literal, not a shell expansion
aws lambda list-versions-by-function --function-name "$FUNCTION" \
  --query 'Versions[?Version!=`$LATEST`].[Version,Description]' --output text | sed 's/^/     /'
if [[ $failures -gt 0 ]]; then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "demo passed: every deployment, the rollback and every check happened as shown"
