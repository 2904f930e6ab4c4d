# Layers and tables are byte-identical whatever the thread count; re-runs reproduce them.
source "$(dirname "$0")/lib.sh"
"$SYNTH" --size 1536 --shift-x 2.3 --shift-y -1.7 --out-dir "$WORK" >/dev/null || fail "synth"
for t in 1 2; do
  "$BIN" --log-level error run --pre "$WORK/pre.tif" --post "$WORK/post.tif" --footprints "$WORK/buildings.geojson" \
    --set tiling.tile_size=256 --threads $t --profile --out "$WORK/t$t.h5" >"$WORK/run$t.txt" || fail "run threads $t"
done
# --profile: the parts of every stage, after the summary.
for part in "^profile" "^  plan " "estimate: alignment" "tiles: read, register, normalise (thread-s)" \
  "tiles: write, one thread in tile order" "finalize: commit"; do
  grep -q -- "$part" "$WORK/run2.txt" && pass "--profile prints '$part'" || fail "--profile lacks '$part'"
done
for d in /change_score /damage_mask /footprints/damage_class /footprints/mean_score /footprints/changed_fraction; do
  h5dump -b LE -d $d -o "$WORK/a.bin" "$WORK/t1.h5" >/dev/null && h5dump -b LE -d $d -o "$WORK/b.bin" "$WORK/t2.h5" >/dev/null \
    || { fail "h5dump $d"; continue; }
  cmp -s "$WORK/a.bin" "$WORK/b.bin" && pass "$d identical (threads 1 vs 2)" || fail "$d differs"
done
finish
