# `mpirun -np N aftermath run` writes the layers, tables and attributes (all but the creation
# time) of a one-process run, byte for byte: a pair whose tile rows do not split evenly over the
# ranks, with partial edge tiles, footprints, a quicklook, and damage sites on built-up ground (the
# sites' runs merged over ranks, the building index layer written collectively).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/mpi_lib.sh"
NP=$5
"$SYNTH" --size 1300 --shift-x 2.3 --shift-y -1.7 --out-dir "$WORK" >/dev/null || fail "synth"
args=(--pre "$WORK/pre.tif" --post "$WORK/post.tif" --footprints "$WORK/buildings.geojson" --set tiling.tile_size=320
      --set sites.built_up_only=true --set sites.built_up_max_size_m=12 --set sites.min_area_m2=5)
"$BIN" --log-level error run "${args[@]}" --threads 2 --out "$WORK/one.h5" --quicklook "$WORK/one.png" \
  >"$WORK/one.txt" || fail "one-process run"
mkdir -p "$WORK/mpi"
mpi_run "$NP" "$BIN" --log-level warn run "${args[@]}" --threads 1 --out "$WORK/mpi/ranks.h5" \
  --quicklook "$WORK/mpi/ranks.png" >"$WORK/ranks.txt" 2>"$WORK/ranks.err"
rc=$?
((rc == 0)) && pass "mpirun -np $NP: exit 0" || { fail "mpirun -np $NP: exit $rc: $(tail -5 "$WORK/ranks.err")"; finish; }
[[ $(ls -A "$WORK/mpi" | tr '\n' ' ') == "ranks.h5 ranks.png " ]] && pass "only the output and the quicklook are left" \
  || fail "files left: $(ls -A "$WORK/mpi")"
dump_normalised "$WORK/one.h5" >"$WORK/one.dump"
dump_normalised "$WORK/mpi/ranks.h5" >"$WORK/ranks.dump"
if cmp -s "$WORK/one.dump" "$WORK/ranks.dump"; then
  pass "every dataset and attribute identical to the one-process run ($(grep -c '^ *DATASET "' "$WORK/one.dump") datasets, $(grep -c 'ATTRIBUTE "' "$WORK/one.dump") attributes)"
else
  fail "the files differ: $(diff "$WORK/one.dump" "$WORK/ranks.dump" | head -8)"
fi
for d in /change_score /damage_mask /misregistration /built_up_index /footprints/damage_class /footprints/median_score \
  /sites/mean_score; do
  h5dump -b LE -d $d -o "$WORK/a.bin" "$WORK/one.h5" >/dev/null && h5dump -b LE -d $d -o "$WORK/b.bin" "$WORK/mpi/ranks.h5" >/dev/null \
    && cmp -s "$WORK/a.bin" "$WORK/b.bin" && pass "$d: identical bytes" || fail "$d differs"
done
# The layers are chunked to the tile and compressed as in a one-process run.
for d in /damage_mask /misregistration; do
  a=$(h5dump -p -H -d $d "$WORK/one.h5" | grep -E 'CHUNKED|DEFLATE|SHUFFLE|LEVEL' | tr -s ' ')
  b=$(h5dump -p -H -d $d "$WORK/mpi/ranks.h5" | grep -E 'CHUNKED|DEFLATE|SHUFFLE|LEVEL' | tr -s ' ')
  [[ -n $a && $a == "$b" ]] && pass "$d: same chunking and filters" || fail "$d: storage differs ('$a' vs '$b')"
done
cmp -s "$WORK/one.png" "$WORK/mpi/ranks.png" && pass "quicklook identical" || fail "quicklook differs"
# The counts printed by rank 0 are the whole job's.
for key in change features alignment sites; do
  a=$(grep "^$key " "$WORK/one.txt"); b=$(grep "^$key " "$WORK/ranks.txt")
  [[ -n $a && $a == "$b" ]] && pass "summary '$key' identical" || fail "summary '$key': '$a' vs '$b'"
done
[[ $(grep -c '^output ' "$WORK/ranks.txt") == 1 ]] && pass "one summary (rank 0)" || fail "summary printed $(grep -c '^output ' "$WORK/ranks.txt") times"
finish
