# Shared by the project's scripts: paths, the pinned Python tools, system packages, local AWS settings.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export ROOT
VENV=${DEPLOYER_VENV:-$ROOT/.venv}
export LOCAL_AWS_PORT=${LOCAL_AWS_PORT:-4566}
export LOCAL_AWS_STATE=${LOCAL_AWS_STATE:-$ROOT/.local-aws}

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Install the pinned Python tools into the project's virtualenv, once per version of requirements.txt.
ensure_venv() {
  install_pinned "$VENV" "$ROOT/scripts/requirements.txt"
}

# checkov (tests only) has a virtualenv of its own, $VENV/checkov: it pins boto3==1.35.49, whose botocore
# would replace the one whose service models moto serves (local AWS would lose CloudWatch's JSON protocol).
ensure_checkov() {
  install_pinned "$VENV/checkov" "$ROOT/scripts/requirements-checkov.txt"
}

# install_pinned VENV REQUIREMENTS: create VENV if needed and install REQUIREMENTS, once per version of the file.
install_pinned() {
  local venv=$1 requirements=$2 stamp want
  stamp="$venv/.requirements.sha256"
  want=$(sha256sum "$requirements" | cut -d' ' -f1)
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  command -v python3 >/dev/null || die "python3 is needed (3.11 or newer) to run local AWS"
  say "installing pinned Python tools into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  echo "$want" > "$stamp"
}

# Install Debian packages that are missing (buildah builds the container images).
ensure_debian_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  local sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  say "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Point the AWS SDKs and the aws CLI at local AWS, with the region and dummy credentials it expects.
local_aws_env() {
  export AWS_ENDPOINT_URL="http://127.0.0.1:$LOCAL_AWS_PORT"
  export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
  unset AWS_SESSION_TOKEN AWS_PROFILE
  export PATH="$VENV/bin:$PATH"
}
