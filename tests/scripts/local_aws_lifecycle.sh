#!/usr/bin/env bash
# The lifecycle of local AWS as scripts/local-aws manages it, on a spare port and a throwaway state folder:
# status when stopped, start, a second start that reuses the server, stop that leaves no process of its
# session behind (a warm function process included), a second stop, and start refusing a port taken by
# something else, and a start clearing what the last server left (only when it really starts). Leaves alone
# any local AWS on another port.
#
#   bash tests/scripts/local_aws_lifecycle.sh
#
# Prints "ok - ..." or "not ok - ..." per check, then "lifecycle: N passed, M failed"; exits 1 if M > 0.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LOCAL_AWS_PORT=4597
LOCAL_AWS_STATE=$(mktemp -d)
LOCAL_AWS_LAMBDA_UPDATE_DELAY=0
export LOCAL_AWS_PORT LOCAL_AWS_STATE LOCAL_AWS_LAMBDA_UPDATE_DELAY
local_aws="$ROOT/scripts/local-aws"
endpoint="http://127.0.0.1:$LOCAL_AWS_PORT"
pidfile="$LOCAL_AWS_STATE/local-aws.pid"
python="${DEPLOYER_VENV:-$ROOT/.venv}/bin/python"

passed=0
failed=0
squatter="" # pid of the HTTP server this test puts on the port
output=""
rc=0

cleanup() {
  if [[ -n "$squatter" ]]; then
    kill "$squatter" 2>/dev/null || true
    wait "$squatter" 2>/dev/null || true
  fi
  "$local_aws" stop >/dev/null 2>&1 || true
  rm -rf "$LOCAL_AWS_STATE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok() {
  echo "ok - $1"
  passed=$((passed + 1))
}

# not_ok WHAT [DETAIL]: the detail, if any, is printed under the line as "#" comments.
not_ok() {
  echo "not ok - $1"
  failed=$((failed + 1))
  if [[ -n "${2:-}" ]]; then
    local line
    while IFS= read -r line; do echo "#   $line"; done <<<"$2"
  fi
}

# check WHAT DETAIL CMD...: ok if CMD succeeds.
check() {
  local what=$1 detail=$2
  shift 2
  if "$@"; then ok "$what"; else not_ok "$what" "$detail"; fi
}

# run CMD...: its exit status in $rc, its stdout and stderr in $output.
run() {
  if output=$("$@" 2>&1); then rc=0; else rc=$?; fi
}

summary() {
  echo "lifecycle: $passed passed, $failed failed"
  [[ $failed -eq 0 ]]
}

# Processes (not zombies) whose command line contains "localaws serve --port $LOCAL_AWS_PORT".
servers() {
  local f cmd n=0
  local -a args
  for f in /proc/[0-9]*; do
    [[ "$(state_of "$f")" != Z ]] || continue
    mapfile -d '' args 2>/dev/null <"$f/cmdline" || continue
    cmd="${args[*]:-} "
    if [[ "$cmd" == *"localaws serve --port $LOCAL_AWS_PORT "* ]]; then n=$((n + 1)); fi
  done
  echo "$n"
}

# The state letter of a /proc/PID folder (R, S, Z, ...), empty if the process is gone.
state_of() {
  local stat
  read -r stat 2>/dev/null <"$1/stat" || return 0
  stat=${stat##*) }
  echo "${stat%% *}"
}

# "PID COMMAND" of each process (not a zombie) in session $1.
session_members() {
  local sid=$1 f stat
  local -a fields
  for f in /proc/[0-9]*; do
    read -r stat 2>/dev/null <"$f/stat" || continue
    read -r -a fields <<<"${stat##*) }"
    if [[ "${fields[3]}" == "$sid" && "${fields[0]}" != Z ]]; then
      echo "${f#/proc/} $(tr '\0' ' ' 2>/dev/null <"$f/cmdline" || true)"
    fi
  done
}

# The pid /_local/health reports, empty if nothing answers.
health_pid() {
  curl -fsS --max-time 2 "$endpoint/_local/health" 2>/dev/null | sed -n 's/.*"pid": \([0-9]*\).*/\1/p' || true
}

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$LOCAL_AWS_PORT") 2>/dev/null
}

# Make a zip function whose bootstrap is a shell loop over the Runtime API, and invoke it once, so a warm
# function process (and its curl) runs in the server's session.
warm_function() {
  "$python" - "$endpoint" <<'PY'
import io, json, sys, time, zipfile

import boto3

kw = dict(endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
iam, lam = boto3.client("iam", **kw), boto3.client("lambda", **kw)
trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                  "Principal": {"Service": "lambda.amazonaws.com"}}]}
role = iam.create_role(RoleName="lifecycle", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
bootstrap = """#!/bin/sh
api="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
while true; do
  id=$(curl -sS -D - -o /dev/null "$api/invocation/next" | tr -d '\\r' | sed -n 's/^[Ll]ambda-[Rr]untime-[Aa]ws-[Rr]equest-[Ii]d: //p')
  curl -sS -X POST -d '"warm"' "$api/invocation/$id/response" >/dev/null
done
"""
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w") as z:
    info = zipfile.ZipInfo("bootstrap")
    info.external_attr = 0o755 << 16
    z.writestr(info, bootstrap)
lam.create_function(FunctionName="lifecycle", Role=role, Runtime="provided.al2023", Handler="bootstrap",
                    Code={"ZipFile": buf.getvalue()})
for _ in range(150):
    cfg = lam.get_function_configuration(FunctionName="lifecycle")
    if cfg["State"] != "Pending":
        break
    time.sleep(0.1)
if cfg["State"] != "Active":
    sys.exit(f"function is {cfg['State']}: {cfg.get('StateReason')}")
out = lam.invoke(FunctionName="lifecycle", Payload=b"{}")
payload = out["Payload"].read().decode()
if out.get("FunctionError") or payload != '"warm"':
    sys.exit(f"invoke answered {payload}")
PY
}

# -- stopped -------------------------------------------------------------------------------------
if port_open; then
  not_ok "port $LOCAL_AWS_PORT is free before the test" "something already listens on 127.0.0.1:$LOCAL_AWS_PORT"
  summary || exit 1
fi
ok "port $LOCAL_AWS_PORT is free before the test"

run "$local_aws" status
check "status exits 3 when stopped" "exit $rc: $output" test "$rc" -eq 3

# -- start ---------------------------------------------------------------------------------------
run "$local_aws" start
check "start exits 0" "exit $rc: $output" test "$rc" -eq 0
pid=$(cat "$pidfile" 2>/dev/null || true)
got=$(health_pid)
check "/_local/health answers with the pid start recorded" "pidfile: '$pid', health: '$got'" \
  test -n "$pid" -a "$got" = "$pid"

run "$local_aws" start
check "a second start exits 0 and says it is already running" "exit $rc: $output" \
  grep -q "already running (pid $pid)" <<<"$output"
again=$(cat "$pidfile" 2>/dev/null || true)
check "a second start keeps the same pid" "before: '$pid', after: '$again', health: '$(health_pid)'" \
  test -n "$pid" -a "$again" = "$pid" -a "$(health_pid)" = "$pid"
n=$(servers)
check "one server process for port $LOCAL_AWS_PORT after two starts" "found $n" test "$n" -eq 1

run "$local_aws" status
check "status exits 0 when running" "exit $rc: $output" test "$rc" -eq 0

run warm_function
members=$(session_members "$pid")
check "a warm function process runs in the server's session" "$output"$'\n'"session $pid: $members" \
  test "$rc" -eq 0 -a "$(grep -c . <<<"$members")" -gt 1

# -- stop ----------------------------------------------------------------------------------------
run "$local_aws" stop
check "stop exits 0" "exit $rc: $output" test "$rc" -eq 0
for _ in $(seq 1 50); do
  [[ "$(servers)" -eq 0 && -z "$(session_members "$pid")" ]] && break
  sleep 0.1
done
n=$(servers)
check "no server process for port $LOCAL_AWS_PORT after stop" "found $n" test "$n" -eq 0
members=$(session_members "$pid")
check "no process left in the server's session after stop" "session $pid: $members" test -z "$members"
check "nothing answers on port $LOCAL_AWS_PORT after stop" "health answered pid $(health_pid)" test -z "$(health_pid)"

run "$local_aws" stop
check "stop again exits 0 and says it is not running" "exit $rc: $output" \
  test "$rc" -eq 0 -a "$output" = "local AWS is not running"
run "$local_aws" status
check "status exits 3 after stop" "exit $rc: $output" test "$rc" -eq 3

# -- a start clears what the last server left (its images and functions died with it) -----------
blob="$LOCAL_AWS_STATE/registry/blobs/sha256/left-by-the-last-run"
tree="$LOCAL_AWS_STATE/cache/rootfs/left-by-the-last-run"
mkdir -p "$(dirname "$blob")" "$tree"
echo old >"$blob"
echo old >"$tree/bootstrap"
run "$local_aws" start
check "a start after a stop exits 0" "exit $rc: $output" test "$rc" -eq 0
check "that start cleared the registry blobs and unpacked code the last server left" \
  "left: $(ls "$(dirname "$blob")" "$(dirname "$tree")" 2>&1)" test ! -e "$blob" -a ! -e "$tree"
echo live >"$blob"
run "$local_aws" start
check "a start that finds the server running clears nothing" "exit $rc: $output" test "$rc" -eq 0 -a -e "$blob"
"$local_aws" stop >/dev/null

# -- a port taken by something else -------------------------------------------------------------
"$python" -m http.server "$LOCAL_AWS_PORT" --bind 127.0.0.1 --directory "$LOCAL_AWS_STATE" >/dev/null 2>&1 &
squatter=$!
for _ in $(seq 1 50); do
  port_open && break
  sleep 0.1
done
run "$local_aws" start
check "start fails when another process holds the port" "exit $rc: $output" test "$rc" -ne 0
check "start says the port is taken" "$output" grep -q "port $LOCAL_AWS_PORT is taken by another process" <<<"$output"
n=$(servers)
check "start started no server and left the other process running" \
  "servers: $n, pidfile: $(cat "$pidfile" 2>/dev/null || echo none)" \
  test "$n" -eq 0 -a ! -e "$pidfile" -a -d "/proc/$squatter"
check "a start that fails clears nothing" "$(ls "$(dirname "$blob")" 2>&1)" test -e "$blob"
kill "$squatter" 2>/dev/null || true
wait "$squatter" 2>/dev/null || true
squatter=""

summary
