# A rank that hits a bad tile (test hook AFTERMATH_TEST_FAIL_TILE, honoured in the compute stage)
# fails the whole run cleanly: every rank exits non-zero with the same one error, nothing is left
# in the output directory (no temporary file either), and nothing hangs (90 s limit).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/mpi_lib.sh"
"$SYNTH" --size 1300 --seed 3 --out-dir "$WORK" >/dev/null || fail "synth"
args=(--pre "$WORK/pre.tif" --post "$WORK/post.tif" --footprints "$WORK/buildings.geojson" --set tiling.tile_size=320)
# Alone: the hook fails the run like any bad tile.
mkdir -p "$WORK/plain"
expect_fail "plain run, tile 3 fails" 1 "tile failed on purpose.*tile 3" "$WORK/plain" -- \
  env AFTERMATH_TEST_FAIL_TILE=3 "$BIN" run "${args[@]}" --out "$WORK/plain/out.h5"
# 5 x 5 tiles: tile 24 is in the last tile row (the last rank's), tile 0 in rank 0's, tile 12 in
# the middle rank's; with 2 and 3 ranks.
for case in "2 24" "3 0" "3 12" "3 24"; do
  read -r np tile <<<"$case"
  out=$WORK/np$np-tile$tile
  mkdir -p "$out"
  start=$SECONDS
  # Each rank records its own exit code (mpirun itself reports only one).
  export RANK_LOG=$WORK/np$np-tile$tile
  mpi_run "$np" bash -c 'AFTERMATH_TEST_FAIL_TILE='"$tile"' "$0" run "$@" 2>"$RANK_LOG.$OMPI_COMM_WORLD_RANK.err" >/dev/null;
                         echo $? >"$RANK_LOG.$OMPI_COMM_WORLD_RANK.rc"' \
    "$BIN" "${args[@]}" --threads 1 --out "$out/out.h5" 2>"$WORK/mpirun.err"
  rc=$?
  took=$((SECONDS - start))
  ((rc == 124 || rc == 137)) && { fail "np $np tile $tile: timed out (hang)"; continue; }
  codes=$(cat "$WORK/np$np-tile$tile".*.rc 2>/dev/null | sort | tr '\n' ' ')
  want=$(for ((r = 0; r < np; r++)); do printf '1 '; done)
  [[ $codes == "$want" ]] && pass "np $np tile $tile: every rank exit 1 ($codes) in ${took}s" || fail "np $np tile $tile: rank exit codes '$codes'"
  errs=$(cat "$WORK/np$np-tile$tile".*.err | grep -c '^error')
  msg=$(cat "$WORK/np$np-tile$tile".*.err | grep '^error' | head -1)
  [[ $errs == 1 && $msg =~ "tile failed on purpose" && $msg =~ "tile $tile" ]] && pass "np $np tile $tile: one error line: $msg" \
    || fail "np $np tile $tile: $errs error lines: $(cat "$WORK/np$np-tile$tile".*.err | head -5)"
  [[ -z $(ls -A "$out") ]] && pass "np $np tile $tile: nothing left in the output directory" || fail "np $np tile $tile: left $(ls -A "$out")"
done
finish
