# The catalogue's procedures for `aftermath run` (docs/hostile.md): kill -9 half-way through
# writing over a previous output, SIGTERM during a write, two processes writing one output, a full
# disk (a small tmpfs when mounting is possible, else a simulated write failure: RLIMIT_FSIZE with
# SIGXFSZ ignored, so write() fails with EFBIG), and a re-run after success.
# Usage: bash procedures.sh AFTERMATH SYNTH SOURCE_DIR
source "$(dirname "$0")/../e2e/lib.sh"
source "$(dirname "$0")/../e2e/batch_lib.sh"
"$SYNTH" --size 2048 --out-dir "$WORK" >/dev/null || fail "synth"
out=$WORK/out; mkdir -p "$out"
args=(--log-level warn run --threads 2 --set tiling.tile_size=128 --set output.deflate_level=9
      --pre "$WORK/pre.tif" --post "$WORK/post.tif" --footprints "$WORK/buildings.geojson")
temps() { find "$1" -name '.*.tmp-*' 2>/dev/null; }

# ---- the previous output (also: a re-run after success) ----------------------------------------
"$BIN" "${args[@]}" --out "$out/o.h5" >/dev/null 2>"$WORK/err0" || fail "reference run: $(cat "$WORK/err0")"
ref=$(sha256sum <"$out/o.h5")
cp "$out/o.h5" "$WORK/ref.h5"
err=$("$BIN" "${args[@]}" --out "$out/o.h5" 2>&1 >/dev/null); rc=$?
[[ $rc == 3 && $err == *"$out/o.h5"*"--overwrite"* && $(sha256sum <"$out/o.h5") == "$ref" ]] &&
  pass "re-run without --overwrite: exit 3, output untouched" || fail "re-run: $rc $err"
"$BIN" "${args[@]}" --out "$out/o.h5" --overwrite >/dev/null 2>&1 || fail "re-run --overwrite"
same_layers "$out/o.h5" "$WORK/ref.h5" && pass "re-run with --overwrite: identical layers" || fail "re-run layers differ"
cp "$out/o.h5" "$WORK/ref.h5"; ref=$(sha256sum <"$out/o.h5")

# wait_for_temp DIR PID: until PID has a temporary output in DIR (the write stage has started).
wait_for_temp() {
  for _ in $(seq 1 2000); do
    [[ -n $(temps "$1") ]] && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.005
  done
  return 1
}

# ---- kill -9 half-way through writing (three times) ---------------------------------------------
for round in 1 2 3; do
  "$BIN" "${args[@]}" --out "$out/o.h5" --overwrite >/dev/null 2>&1 &
  pid=$!
  wait_for_temp "$out" $pid || { fail "kill -9 round $round: no temporary file seen"; wait $pid; continue; }
  sleep "0.0$((RANDOM % 5))"
  kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
  [[ $(sha256sum <"$out/o.h5") == "$ref" ]] && pass "kill -9 round $round: previous output byte-identical" ||
    fail "kill -9 round $round: the previous output changed"
  [[ $(ls "$out" | grep -v '^o.h5$' | wc -l) == 0 ]] || fail "kill -9 round $round: visible extra files: $(ls "$out")"
done
n=$(temps "$out" | wc -l)
((n >= 1)) && pass "kill -9 leaves only dot-named temporaries ($n), never promoted" || fail "no temporary left by kill -9?"
# The next run ignores the stale temporaries (O06) and writes a complete output.
"$BIN" "${args[@]}" --out "$out/o.h5" --overwrite >/dev/null 2>&1 || fail "run after kill -9"
same_layers "$out/o.h5" "$WORK/ref.h5" && pass "run after kill -9: identical layers" || fail "after kill -9: layers differ"
temps "$out" | xargs -r rm -f
ref=$(sha256sum <"$out/o.h5")

# ---- SIGTERM during a write: clean exit, temporary removed, previous output kept ---------------
"$BIN" "${args[@]}" --out "$out/o.h5" --overwrite >/dev/null 2>"$WORK/err.term" &
pid=$!
wait_for_temp "$out" $pid || fail "SIGTERM: no temporary file seen"
kill -TERM $pid; wait $pid; rc=$?
[[ $rc == 1 ]] && grep -q interrupted "$WORK/err.term" && pass "SIGTERM: exit 1, 'interrupted'" || fail "SIGTERM: exit $rc $(cat "$WORK/err.term")"
[[ -z $(temps "$out") ]] && pass "SIGTERM: temporary removed" || fail "SIGTERM left $(temps "$out")"
[[ $(sha256sum <"$out/o.h5") == "$ref" ]] && pass "SIGTERM: previous output byte-identical" || fail "SIGTERM: output changed"

# ---- two processes writing the same output ------------------------------------------------------
"$BIN" "${args[@]}" --out "$out/o.h5" --overwrite >/dev/null 2>"$WORK/err.a" & a=$!
"$BIN" "${args[@]}" --out "$out/o.h5" --overwrite >/dev/null 2>"$WORK/err.b" & b=$!
wait $a; ra=$?; wait $b; rb=$?
[[ $ra == 0 && $rb == 0 ]] && pass "two writers: both exit 0" || fail "two writers: exit $ra/$rb $(cat "$WORK/err.a" "$WORK/err.b")"
same_layers "$out/o.h5" "$WORK/ref.h5" && pass "two writers: the output is one complete run" || fail "two writers: output corrupt"
[[ -z $(temps "$out") ]] && pass "two writers: no temporary left" || fail "two writers left $(temps "$out")"

# ---- full disk ----------------------------------------------------------------------------------
small=$WORK/small; mkdir -p "$small"
if mount -t tmpfs -o size=512k tmpfs "$small" 2>/dev/null; then
  mode="tmpfs of 512 KiB"
  err=$("$BIN" "${args[@]}" --out "$small/o.h5" 2>&1 >/dev/null); rc=$?
  umount_after=1
else
  mode="simulated (ulimit -f 512 KiB, SIGXFSZ ignored: write() fails with EFBIG)"
  err=$(trap '' XFSZ; ulimit -f 512; exec "$BIN" "${args[@]}" --out "$small/o.h5" 2>&1 >/dev/null); rc=$?
  umount_after=0
fi
echo "full disk: $mode"
[[ $rc == 3 ]] && pass "full disk: exit 3" || fail "full disk: exit $rc ($err)"
[[ $err == *"$small/o.h5"* && $(grep -c '^error' <<<"$err") == 1 ]] && pass "full disk: one error line naming the output: $err" ||
  fail "full disk message: $err"
[[ -z $(ls -A "$small") ]] && pass "full disk: nothing left (no output, no temporary)" || fail "full disk left: $(ls -A "$small")"
((umount_after)) && umount "$small"
finish
