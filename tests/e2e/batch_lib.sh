# Helpers shared by the batch end-to-end tests (sourced after lib.sh).
command -v jq >/dev/null || { echo "jq is required by the batch tests (apt-get install jq)" >&2; exit 1; }
command -v h5dump >/dev/null || { echo "h5dump is required by the batch tests (apt-get install hdf5-tools)" >&2; exit 1; }

# make_scenes DIR N SIZE: N synthetic pairs DIR/sK/{pre,post}.tif + buildings.geojson (K = 1..N).
make_scenes() {
  local dir=$1 n=$2 size=$3 k
  for ((k = 1; k <= n; k++)); do
    mkdir -p "$dir/s$k"
    "$SYNTH" --size "$size" --seed "$k" --shift-x 1.5 --shift-y -0.5 --out-dir "$dir/s$k" >/dev/null || fail "synth s$k"
  done
}

# write_manifest FILE SCENES_REL N [EXTRA_SET]: jobs jK reading SCENES_REL/sK, writing out/jK.h5.
write_manifest() {
  local file=$1 rel=$2 n=$3 set=${4:-tiling.tile_size=128} k
  {
    echo "version: 1"
    echo "defaults:"
    echo "  set: [$set]"
    echo "jobs:"
    for ((k = 1; k <= n; k++)); do
      echo "  - name: j$k"
      echo "    pre: $rel/s$k/pre.tif"
      echo "    post: $rel/s$k/post.tif"
      echo "    footprints: $rel/s$k/buildings.geojson"
      echo "    out: out/j$k.h5"
    done
  } >"$file"
}

LAYERS="/change_score /damage_mask /footprints/damage_class /footprints/mean_score /footprints/changed_fraction"
# same_layers A.h5 B.h5: every layer and table column byte-identical (file bytes differ by `created`).
same_layers() {
  local a=$1 b=$2 d
  for d in $LAYERS; do
    h5dump -b LE -d "$d" -o "$WORK/.a.bin" "$a" >/dev/null 2>&1 || return 1
    h5dump -b LE -d "$d" -o "$WORK/.b.bin" "$b" >/dev/null 2>&1 || return 1
    cmp -s "$WORK/.a.bin" "$WORK/.b.bin" || return 1
  done
  return 0
}

# leftovers DIR: temporary or lock files left in DIR.
leftovers() { find "$1" \( -name '.*.tmp-*' -o -name '*.lock' \) 2>/dev/null; }
