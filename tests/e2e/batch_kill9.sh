# kill -9 a batch mid-job, again and again, then re-run: every output is complete and identical
# to an uninterrupted run; no temporary file is ever taken for a finished output.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/batch_lib.sh"
N=4
make_scenes "$WORK/scenes" $N 1024
mkdir -p "$WORK/ref" "$WORK/k"
write_manifest "$WORK/ref/m.yaml" ../scenes $N tiling.tile_size=256
write_manifest "$WORK/k/m.yaml" ../scenes $N tiling.tile_size=256
t0=$(date +%s%N)
"$BIN" --log-level warn batch "$WORK/ref/m.yaml" --threads 2 >/dev/null; rc=$?
echo "uninterrupted run: $((($(date +%s%N) - t0) / 1000000)) ms for $N jobs"
[[ $rc == 0 ]] && pass "uninterrupted run -> exit 0" || fail "reference run exit $rc"

# Every output present in k/out must be complete (identical layers to the reference).
check_complete() {
  local f
  for f in "$WORK"/k/out/*.h5; do
    [[ -e $f ]] || continue
    same_layers "$f" "$WORK/ref/out/$(basename "$f")" || fail "$1: $(basename "$f") exists but is not complete"
  done
}
mid=0
# Rounds 1..N: kill -9 as soon as job jR is writing its temporary output (so every job is killed
# mid-write once, with the jobs before it finished); then two rounds at a random moment.
for round in $(seq 1 $((N + 2))); do
  "$BIN" --log-level warn batch "$WORK/k/m.yaml" --threads 2 >/dev/null 2>&1 &
  pid=$!
  if ((round <= N)); then
    for _ in $(seq 1 1000); do
      compgen -G "$WORK/k/out/.j$round.h5.tmp-$pid-*" >/dev/null && break
      kill -0 $pid 2>/dev/null || break
      sleep 0.01
    done
  else
    sleep "0.$((RANDOM % 9 + 1))"
  fi
  tmp=$(compgen -G "$WORK/k/out/.j*.h5.tmp-$pid-*" | head -1)
  kill -9 $pid 2>/dev/null && killed=yes || killed=no
  wait $pid 2>/dev/null
  if [[ $killed == yes && -n $tmp ]]; then
    mid=$((mid + 1))
    echo "round $round: killed -9 while writing $(basename "$tmp"); complete outputs: $(cd "$WORK/k/out" && ls *.h5 2>/dev/null | tr '\n' ' ')"
  else
    echo "round $round: killed=$killed (no job was writing at that moment)"
  fi
  [[ -z $(compgen -G "$WORK/k/out/j$round.h5") || $round -gt $N ]] || fail "round $round: j$round.h5 exists although killed mid-write"
  check_complete "round $round"
done
((mid >= N)) && pass "$mid kill -9 mid-job (temporary file being written)" || fail "only $mid kills mid-job"
out=$("$BIN" --log-level warn batch "$WORK/k/m.yaml" --threads 2); rc=$?
[[ $rc == 0 ]] && pass "re-run after kill -9 -> exit 0" || fail "re-run exit $rc: $out"
for k in $(seq 1 $N); do
  same_layers "$WORK/k/out/j$k.h5" "$WORK/ref/out/j$k.h5" && pass "j$k identical to the uninterrupted run" || fail "j$k differs"
done
[[ -z $(leftovers "$WORK/k") ]] && pass "no temporary or lock files left" || fail "left: $(leftovers "$WORK/k")"

# --force, killed mid-job: the previous outputs stay byte-identical; the next run cleans up.
sums=$(cd "$WORK/k/out" && sha256sum *.h5)
"$BIN" --log-level warn batch "$WORK/k/m.yaml" --force --threads 2 >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 400); do compgen -G "$WORK/k/out/.j*.h5.tmp-$pid-*" >/dev/null && break; sleep 0.01; done
kill -9 $pid; wait $pid 2>/dev/null
[[ -n $(compgen -G "$WORK/k/out/.j*.h5.tmp-*") ]] && pass "--force killed mid-job left a temporary file" || fail "no temp file at kill"
[[ $(cd "$WORK/k/out" && sha256sum *.h5) == "$sums" ]] && pass "previous outputs byte-identical after kill -9" || fail "outputs changed"
out=$("$BIN" batch "$WORK/k/m.yaml" 2>&1); rc=$?
[[ $rc == 0 && $(grep -c '^up_to_date' <<<"$out") == $N ]] && pass "next run: all up to date" || fail "next run: $rc $out"
grep -q "removed stale temporary file" <<<"$out" && pass "stale temporary file removed" || fail "stale temp not reported: $out"
[[ -z $(leftovers "$WORK/k") ]] && pass "no temporary or lock files left" || fail "left: $(leftovers "$WORK/k")"
finish
