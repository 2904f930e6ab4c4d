# An xBD pair: no georeferencing (plain pixel grid), labels from the xBD JSON.
source "$(dirname "$0")/lib.sh"
x=$SRC/data/sample/xbd
summary=$("$BIN" --log-level error run --pre "$x/midwest-flooding_00000008_pre_disaster.png" \
  --post "$x/midwest-flooding_00000008_post_disaster.png" \
  --footprints "$x/midwest-flooding_00000008_post_disaster.json" --out "$WORK/m.h5")
rc=$?
echo "$summary"
[[ $rc == 0 ]] || fail "run exit $rc"
grep -q "pixel grid" <<<"$summary" && pass "pixel grid" || fail "grid"
h5dump -d /footprints/truth_class "$WORK/m.h5" >/dev/null && pass "truth classes stored" || fail "truth_class"
# xbd-import writes georeferenced GeoTIFFs that run as a georeferenced pair.
"$BIN" xbd-import --pre-image "$x/midwest-flooding_00000008_pre_disaster.png" \
  --post-image "$x/midwest-flooding_00000008_post_disaster.png" \
  --labels "$x/midwest-flooding_00000008_post_disaster.json" --out-dir "$WORK/imp" || fail "xbd-import"
gdalinfo "$WORK/imp/midwest-flooding_00000008_pre.tif" | grep -q 'EPSG",4326' && pass "imported pre is EPSG:4326" || fail "import georef"
"$BIN" --log-level error run --pre "$WORK/imp/midwest-flooding_00000008_pre.tif" \
  --post "$WORK/imp/midwest-flooding_00000008_post.tif" \
  --footprints "$WORK/imp/midwest-flooding_00000008_footprints.geojson" --out "$WORK/g.h5" >/dev/null \
  && pass "imported pair runs" || fail "imported pair run"
finish
