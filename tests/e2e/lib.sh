# Helpers for the end-to-end tests. Each test: bash <test>.sh AFTERMATH SYNTH SOURCE_DIR
set -uo pipefail
BIN=$1; SYNTH=$2; SRC=$3
WORK=$(mktemp -d /tmp/aftermath-e2e.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }
# expect_fail NAME CODE PATTERN OUTDIR -- command...: exit code CODE, stderr matching PATTERN,
# exactly one error line, and nothing left in OUTDIR.
expect_fail() {
  local name=$1 code=$2 pattern=$3 outdir=$4; shift 5
  local err rc
  err=$("$@" 2>&1 >/dev/null); rc=$?
  if [[ $rc != "$code" ]]; then fail "$name: exit $rc, expected $code ($err)"; return; fi
  if ! grep -qE -- "$pattern" <<<"$err"; then fail "$name: message '$err' does not match '$pattern'"; return; fi
  if [[ $(grep -c '^error' <<<"$err") != 1 ]]; then fail "$name: expected one error line, got: $err"; return; fi
  if [[ -n $(ls -A "$outdir" 2>/dev/null) ]]; then fail "$name: left files: $(ls -A "$outdir")"; return; fi
  pass "$name -> exit $rc: $err"
}
finish() {
  if ((failures)); then echo "$failures check(s) failed" >&2; exit 1; fi
  echo "all checks passed"
}
