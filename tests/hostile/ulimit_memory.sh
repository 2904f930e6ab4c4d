# Memory stays bounded: `aftermath run` under `ulimit -v` (virtual memory, which is larger than
# RSS: TBB, glibc malloc arenas and GDAL reserve address space). The limit of 1 GiB (with
# --threads 2) is passed by a 2048 px pair (~250 MB RSS) and by a 4096 px pair (4x the pixels: a
# whole-scene copy of both float32 scenes alone would be 400 MB more), so memory follows the tile
# size, not the scene. A far too small limit fails cleanly: one error line, no crash, no file left.
# Usage: bash ulimit_memory.sh AFTERMATH SYNTH SOURCE_DIR
source "$(dirname "$0")/../e2e/lib.sh"
if [[ -n ${AFTERMATH_SANITIZED:-} ]]; then
  echo "skipped: sanitizer builds reserve terabytes of shadow address space; ulimit -v is meaningless there"
  exit 77
fi
limit_kb=$((1024 * 1024))
for size in 2048 4096; do
  mkdir -p "$WORK/s$size" "$WORK/o$size"
  "$SYNTH" --size $size --out-dir "$WORK/s$size" >/dev/null || fail "synth $size"
  err=$(ulimit -v $limit_kb; "$BIN" --log-level error run --threads 2 --pre "$WORK/s$size/pre.tif" \
        --post "$WORK/s$size/post.tif" --footprints "$WORK/s$size/buildings.geojson" --out "$WORK/o$size/o.h5" 2>&1 >/dev/null)
  rc=$?
  [[ $rc == 0 && -s $WORK/o$size/o.h5 ]] && pass "$size px pair under ulimit -v $limit_kb KiB" || fail "$size px: exit $rc: $err"
done
# Too little memory: a clean failure (exit 1, one error line), not a crash, and nothing left.
mkdir -p "$WORK/small"
err=$(ulimit -v $((300 * 1024)); "$BIN" --log-level error run --threads 2 --pre "$WORK/s4096/pre.tif" \
      --post "$WORK/s4096/post.tif" --out "$WORK/small/o.h5" 2>&1 >/dev/null)
rc=$?
[[ $rc == 1 || $rc == 3 ]] && pass "under ulimit -v 300 MiB: clean exit $rc" || fail "under 300 MiB: exit $rc: $err"
[[ $(grep -c '^error' <<<"$err") == 1 ]] && pass "one error line: $err" || fail "message: $err"
[[ -z $(ls -A "$WORK/small") ]] && pass "nothing left" || fail "left: $(ls -A "$WORK/small")"
finish
