# `mpirun -np 2 aftermath batch`: the ranks share out the manifest's jobs (each job runs alone on
# its rank), together they run every job once, and the outputs equal a one-process batch's.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/batch_lib.sh"
source "$(dirname "$0")/mpi_lib.sh"
N=5
make_scenes "$WORK/scenes" $N 256
mkdir -p "$WORK/one" "$WORK/ranks"
write_manifest "$WORK/one/m.yaml" ../scenes $N
write_manifest "$WORK/ranks/m.yaml" ../scenes $N
"$BIN" --log-level warn batch "$WORK/one/m.yaml" --threads 1 >/dev/null || fail "one-process batch"
mpi_run 2 "$BIN" --log-level warn batch "$WORK/ranks/m.yaml" --threads 1 >"$WORK/ranks.out" 2>&1 \
  && pass "mpirun -np 2 batch: exit 0" || fail "mpirun -np 2 batch: exit $? ($(tail -3 "$WORK/ranks.out"))"
for r in 0 1; do
  rep=$WORK/ranks/aftermath-report.shard-$r-of-2.json
  names=$(jq -r '[.jobs[] | select(.status == "done") | .name] | join(" ")' "$rep" 2>/dev/null)
  want=$(for k in $(seq 1 $N); do (((k - 1) % 2 == r)) && printf 'j%s ' $k; done)
  [[ "$names " == "$want" ]] && pass "rank $r ran: $names" || fail "rank $r ran '$names', expected '$want'"
done
for k in $(seq 1 $N); do
  same_layers "$WORK/ranks/out/j$k.h5" "$WORK/one/out/j$k.h5" && pass "j$k identical to the one-process batch" || fail "j$k differs"
done
[[ -z $(leftovers "$WORK/ranks") ]] && pass "no temporary or lock file left" || fail "left: $(leftovers "$WORK/ranks")"
finish
