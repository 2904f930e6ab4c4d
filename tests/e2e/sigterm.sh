# SIGTERM during a run: clean exit (1, "interrupted"), the temporary output removed, nothing left.
source "$(dirname "$0")/lib.sh"
"$SYNTH" --size 4096 --out-dir "$WORK" >/dev/null || fail "synth"
out=$WORK/out; mkdir -p "$out"
"$BIN" --log-level warn run --threads 2 --set tiling.tile_size=256 --pre "$WORK/pre.tif" --post "$WORK/post.tif" \
  --out "$out/o.h5" 2> "$WORK/err.txt" >/dev/null &
pid=$!
# Signal once the temporary output exists (the write stage has started).
for _ in $(seq 1 600); do
  compgen -G "$out/.o.h5.tmp-*" >/dev/null && break
  sleep 0.05
done
kill -TERM $pid
wait $pid; rc=$?
[[ $rc == 1 ]] && pass "exit 1 after SIGTERM" || fail "exit $rc after SIGTERM"
grep -q "interrupted" "$WORK/err.txt" && pass "says interrupted" || fail "message: $(cat "$WORK/err.txt")"
[[ -z $(ls -A "$out") ]] && pass "no output or temporary file left" || fail "left: $(ls -A "$out")"
finish
