#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) and runs each for a while on its seed corpus.
# Usage: scripts/fuzz.sh [seconds per target (default 30)] [target...]
#   targets: config manifest footprints raster (default: all)
# Prints executions per second and total executions per target; a finding (crash or timeout) ends with exit 10 and
# leaves the reproducer in $AFTERMATH_FUZZ_DIR/artifacts/ (rerun: build-fuzz/tests/fuzz/fuzz_<t> FILE).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-30}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(config manifest footprints raster)
"$here/scripts/setup.sh" --no-build
pkgs=(clang libclang-rt-14-dev)   # libFuzzer and the sanitizer runtimes for clang 14
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
if ((${#missing[@]})); then
  sudo=""; [[ $(id -u) == 0 ]] || sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
build=${AFTERMATH_FUZZ_BUILD_DIR:-$here/build-fuzz}
work=${AFTERMATH_FUZZ_DIR:-$build/fuzz-work}
flags="-fsanitize=address,undefined,fuzzer-no-link -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g"
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_C_FLAGS="$flags" -DAFTERMATH_FUZZ=ON -DAFTERMATH_BUILD_TESTS=OFF \
  -DAFTERMATH_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" -j"${AFTERMATH_JOBS:-$(nproc)}" --target $(printf 'fuzz_%s ' "${targets[@]}")
mkdir -p "$work/artifacts"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
printf '%-12s %10s %12s %s\n' target exec/s total result
for t in "${targets[@]}"; do
  corpus=$work/corpus-$t; mkdir -p "$corpus"
  log=$work/$t.log
  rc=0
  # A hard stop besides libFuzzer's own limits: on an out-of-memory finding libFuzzer walks the
  # sanitizer heap to print a memory profile, which took more than 10 minutes on a 2.5 GB heap.
  timeout -s KILL $((secs + 120)) "$build/tests/fuzz/fuzz_$t" -max_total_time="$secs" -rss_limit_mb=2560 \
    -malloc_limit_mb=1024 -timeout=20 -max_len=65536 -artifact_prefix="$work/artifacts/$t-" -print_final_stats=1 \
    "$corpus" "$here/tests/fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
  ((rc == 137)) && echo "killed after $((secs + 120)) s (an out-of-memory report taking too long?)" >>"$log"
  execs=$(grep -oP 'stat::number_of_executed_units:\s*\K\d+' "$log" | tail -1 || true)
  rate=$(grep -oP 'exec/s: \K\d+' "$log" | tail -1 || true)
  [[ -n $execs && $secs -gt 0 ]] && rate=$((execs / secs))
  result=ok; ((rc == 0)) || { result="CRASH (see $log, artifacts in $work/artifacts)"; status=10; }
  printf '%-12s %10s %12s %s\n' "$t" "${rate:-?}" "${execs:-?}" "$result"
done
exit $status
