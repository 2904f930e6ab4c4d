# --shard 0/3, 1/3, 2/3 (run at once, as a job array would) produce exactly the outputs of one
# unsharded run; the shards partition the jobs.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/batch_lib.sh"
N=7
make_scenes "$WORK/scenes" $N 256
mkdir -p "$WORK/u" "$WORK/s"
write_manifest "$WORK/u/m.yaml" ../scenes $N
write_manifest "$WORK/s/m.yaml" ../scenes $N
"$BIN" --log-level warn batch "$WORK/u/m.yaml" >/dev/null || fail "unsharded run"
pids=()
for i in 0 1 2; do
  "$BIN" --log-level warn batch "$WORK/s/m.yaml" --shard $i/3 >"$WORK/shard$i.out" 2>&1 &
  pids+=($!)
done
for i in 0 1 2; do wait ${pids[$i]} || fail "shard $i/3 exit $?"; done
for i in 0 1 2; do
  rep=$WORK/s/aftermath-report.shard-$i-of-3.json
  names=$(jq -r '[.jobs[].name] | join(" ")' "$rep")
  want=$(for k in $(seq 1 $N); do (((k - 1) % 3 == i)) && printf 'j%s ' $k; done)
  [[ "$names " == "$want" ]] && pass "shard $i/3 ran: $names" || fail "shard $i/3 ran '$names', expected '$want'"
done
[[ $(cd "$WORK/u/out" && ls) == $(cd "$WORK/s/out" && ls) ]] && pass "same output files: $(cd "$WORK/s/out" && ls | tr '\n' ' ')" || fail "file sets differ"
for k in $(seq 1 $N); do
  same_layers "$WORK/s/out/j$k.h5" "$WORK/u/out/j$k.h5" && pass "j$k identical to the unsharded run" || fail "j$k differs"
done
# Sharded re-run after the unsharded outputs exist: nothing to do in any shard.
for i in 0 1 2; do
  "$BIN" --log-level error batch "$WORK/s/m.yaml" --shard $i/3 >/dev/null || fail "re-run shard $i"
  [[ $(jq -r '[.jobs[].status] | unique | join(",")' "$WORK/s/aftermath-report.shard-$i-of-3.json") == "up_to_date" ]] || fail "re-run shard $i not all up to date"
done
pass "sharded re-run: every job up to date"
finish
