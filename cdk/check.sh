#!/usr/bin/env bash
# The CDK app's checks, from a clean checkout of cdk/, offline and without AWS credentials:
#   npm ci, tsc --noEmit, jest, cdk synth (with cdk-nag's AwsSolutions checks), cfn-lint.
# The last line is "N passed, M failed": jest's tests, plus one each for tsc, synth and cfn-lint.
# Exits non-zero if anything failed.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
CDK_DIR=$(pwd)
REPO=$(cd .. && pwd)
VENV=${AUTOHEAL_VENV:-$REPO/.venv}
CFN_LINT_VERSION=1.58.0
FUNCTIONS=(detect lease diagnose decide drain restart_service cleanup reboot replace quarantine verify restore record notify trigger)
SSM_FILES=(diagnostics.yml restart_services.yml verify_health.yml)

# Offline and credential-free: no AWS settings from the caller reach the CDK or cfn-lint.
while IFS= read -r name; do unset "$name"; done < <(env | sed -n 's/^\(AWS_[A-Za-z0-9_]*\)=.*/\1/p')
export CDK_DISABLE_VERSION_CHECK=true
export CI=${CI:-true}

passed=0
failed=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step() { printf '\n== %s\n' "$*"; }
ok() { passed=$((passed + 1)); echo "ok: $1"; }
bad() { failed=$((failed + 1)); echo "FAILED: $1"; }
finish() {
  echo
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}

step "npm ci"
if ! npm ci --no-audit --no-fund --loglevel=error; then
  bad "npm ci"
  finish
fi

step "tsc --noEmit"
if npx --no-install tsc --noEmit; then ok "tsc"; else bad "tsc"; fi

step "jest"
npx --no-install jest --ci --json --outputFile="$work/jest.json"
jest_rc=$?
if [ -s "$work/jest.json" ]; then
  read -r jp jf < <(node -e 'const r=require(process.argv[1]); console.log(r.numPassedTests, r.numFailedTests + r.numRuntimeErrorTestSuites)' "$work/jest.json")
  passed=$((passed + jp))
  failed=$((failed + jf))
  echo "jest: $jp passed, $jf failed"
  if [ "$jest_rc" -ne 0 ] && [ "$jf" -eq 0 ]; then bad "jest exited $jest_rc"; fi
else
  bad "jest wrote no results (exit $jest_rc)"
fi

step "cdk synth"
synth_args=()
code_dir="$REPO/target/lambda"
missing=0
for f in "${FUNCTIONS[@]}"; do [ -f "$code_dir/$f/bootstrap" ] || missing=1; done
if [ "$missing" -eq 1 ]; then
  # The Lambdas are built by `make build-lambdas`; synth checks the stack with stand-ins.
  echo "note: $code_dir lacks some <name>/bootstrap: synthesizing with stand-in binaries"
  for f in "${FUNCTIONS[@]}"; do
    mkdir -p "$work/lambda/$f"
    printf '#!/bin/sh\n# stand-in: build the real one with make build-lambdas\nexit 1\n' >"$work/lambda/$f/bootstrap"
  done
  synth_args+=(-c "lambdaCodeDir=$work/lambda")
fi
for f in "${SSM_FILES[@]}"; do
  if [ ! -f "$REPO/ssm/$f" ]; then
    echo "note: $REPO/ssm/$f does not exist yet: synthesizing with the test fixtures in test/fixtures/ssm"
    synth_args+=(-c "ssmDir=$CDK_DIR/test/fixtures/ssm")
    break
  fi
done
rm -rf cdk.out
if npx --no-install cdk synth --quiet ${synth_args[@]+"${synth_args[@]}"}; then ok "cdk synth"; else bad "cdk synth"; fi

step "cfn-lint"
if [ ! -x "$VENV/bin/cfn-lint" ]; then
  echo "installing cfn-lint $CFN_LINT_VERSION into $VENV"
  { [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"; } &&
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "cfn-lint==$CFN_LINT_VERSION"
fi
shopt -s nullglob
templates=(cdk.out/AutoHeal*.template.json)
shopt -u nullglob
if [ "${#templates[@]}" -eq 0 ]; then
  bad "cfn-lint: no cdk.out/AutoHeal*.template.json to lint"
elif "$VENV/bin/cfn-lint" "${templates[@]}" --ignore-checks W3005; then
  # W3005 (redundant DependsOn) is how CDK orders Lambda functions after their role's policy: README.md.
  ok "cfn-lint"
else
  bad "cfn-lint"
fi

finish
