# Two concurrent `aftermath batch` on one manifest: no corruption, each job done exactly once.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/batch_lib.sh"
N=6
make_scenes "$WORK/scenes" $N 768
mkdir -p "$WORK/m" "$WORK/ref"
write_manifest "$WORK/m/m.yaml" ../scenes $N tiling.tile_size=256
write_manifest "$WORK/ref/m.yaml" ../scenes $N tiling.tile_size=256
"$BIN" --log-level warn batch "$WORK/ref/m.yaml" --threads 1 >/dev/null || fail "reference run"
for round in 1 2; do
  rm -rf "$WORK/m/out" "$WORK/m"/*.json
  "$BIN" --log-level warn batch "$WORK/m/m.yaml" --threads 1 --report "$WORK/m/a.json" >"$WORK/a.out" 2>&1 &
  a=$!
  "$BIN" --log-level warn batch "$WORK/m/m.yaml" --threads 1 --report "$WORK/m/b.json" >"$WORK/b.out" 2>&1 &
  b=$!
  wait $a; ra=$?
  wait $b; rb=$?
  [[ $ra == 0 && $rb == 0 ]] && pass "round $round: both batches exit 0" || fail "round $round: exits $ra $rb"
  for k in $(seq 1 $N); do
    done_count=$(jq -s --arg n "j$k" '[.[].jobs[] | select(.name == $n and .status == "done")] | length' "$WORK/m/a.json" "$WORK/m/b.json")
    how=$(jq -rs --arg n "j$k" '[.[].jobs[] | select(.name == $n) | .status] | join("+")' "$WORK/m/a.json" "$WORK/m/b.json")
    [[ $done_count == 1 ]] && pass "round $round: j$k done exactly once ($how)" || fail "round $round: j$k done $done_count times ($how)"
    same_layers "$WORK/m/out/j$k.h5" "$WORK/ref/out/j$k.h5" || fail "round $round: j$k differs from a sequential run"
  done
  echo "round $round: batch A: $(jq -c .counts "$WORK/m/a.json")"
  echo "round $round: batch B: $(jq -c .counts "$WORK/m/b.json")"
  [[ -z $(leftovers "$WORK/m") ]] && pass "round $round: no temporary or lock files left" || fail "left: $(leftovers "$WORK/m")"
done
finish
