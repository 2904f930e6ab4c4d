#!/usr/bin/env bash
# Sets up if needed, builds (warnings are errors) and runs the test suite with ctest.
# Usage: scripts/test.sh [--all]     --all also runs the long tests (ctest label "long")
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
all=0
for a in "$@"; do
  case $a in
    --all) all=1 ;;
    -h|--help) sed -n '2,3p' "$0"; exit 0 ;;
    *) echo "test.sh: unknown option $a" >&2; exit 2 ;;
  esac
done
AFTERMATH_WERROR=ON "$here/scripts/setup.sh"
build=${AFTERMATH_BUILD_DIR:-$here/build}
cd "$build"
if ((all)); then
  ctest --output-on-failure -j"$(nproc)" --timeout 1800
else
  ctest --output-on-failure -j"$(nproc)" --timeout 600 -LE long
fi
