#!/usr/bin/env bash
# Sets up if needed, builds (warnings are errors) and runs the test suite with ctest.
# Usage: scripts/test.sh [--all] [--sanitize | --tsan] [-L LABEL] [-R REGEX]
#   --all        also run the long tests (ctest label "long")
#   --sanitize   AddressSanitizer + UndefinedBehaviorSanitizer build (build-asan) running the suite
#   --tsan       ThreadSanitizer build (build-tsan) running the engine pipeline tests
#                (suppressions for TBB-internal frames only: tests/sanitizers/tsan.supp)
#   -L LABEL     only tests with this ctest label (e.g. hostile); -R REGEX only tests matching it
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
all=0 mode=normal label="" regex=""
while (($#)); do
  case $1 in
    --all) all=1 ;;
    --sanitize) mode=asan ;;
    --tsan) mode=tsan ;;
    -L) label=$2; shift ;;
    -R) regex=$2; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "test.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
jobs=${AFTERMATH_JOBS:-$(nproc)}
ctest_args=(--output-on-failure -j"$jobs")
((all)) && ctest_args+=(--timeout 1800) || ctest_args+=(--timeout 600 -LE long)
[[ -n $label ]] && ctest_args+=(-L "$label")
[[ -n $regex ]] && ctest_args+=(-R "$regex")

if [[ $mode == normal ]]; then
  AFTERMATH_WERROR=ON "$here/scripts/setup.sh"
  build=${AFTERMATH_BUILD_DIR:-$here/build}
  cd "$build"
  exec ctest "${ctest_args[@]}"
fi

"$here/scripts/setup.sh" --no-build
export AFTERMATH_SANITIZED=$mode  # tests that cannot run instrumented (ulimit -v) skip themselves
if [[ $mode == asan ]]; then
  build=${AFTERMATH_BUILD_DIR:-$here/build-asan}
  flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
  # Leaks are reported; GDAL/PROJ/HDF5 process-lifetime caches are suppressed by library name.
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=0}
  export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$here/tests/sanitizers/lsan.supp:print_suppressions=0}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:suppressions=$here/tests/sanitizers/ubsan.supp}
else
  build=${AFTERMATH_BUILD_DIR:-$here/build-tsan}
  flags="-fsanitize=thread -fno-omit-frame-pointer"
  export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$here/tests/sanitizers/tsan.supp}
  # The engine pipeline: the engine unit tests, the pipeline acceptance tests and the
  # thread-count determinism test (the binary under TSan).
  [[ -n $regex || -n $label ]] || ctest_args+=(-R '^(EngineRun|Acceptance|Engine/DetectorRun)|e2e_threads_identical')
fi
# Not -Werror here: GCC 12 raises false maybe-uninitialized warnings inside libstdc++ under the
# sanitizers' instrumentation; the normal build keeps warnings as errors.
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAFTERMATH_WERROR=OFF -DAFTERMATH_BUILD_BENCH=OFF \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_C_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" >/dev/null
targets=()
if [[ $label == hostile ]]; then targets=(--target aftermath aftermath-synth test_hostile); fi
if [[ $mode == tsan && -z $label && -z $regex ]]; then targets=(--target aftermath aftermath-synth test_engine test_score); fi
cmake --build "$build" -j"$jobs" "${targets[@]}"
cd "$build"
exec ctest "${ctest_args[@]}"
