# The real Joplin pair: UTM 15N pre, EPSG:4326 post. Output on the pre grid, opens with GDAL.
source "$(dirname "$0")/lib.sh"
s=$SRC/data/sample/joplin
summary=$("$BIN" --log-level warn run --pre "$s/pre_utm15n.tif" --post "$s/post_wgs84.tif" \
  --footprints "$s/buildings.geojson" --out "$WORK/j.h5" --quicklook "$WORK/j.png" --threads 2)
rc=$?
echo "$summary"
[[ $rc == 0 ]] || fail "run exit $rc"
[[ -s $WORK/j.h5 && -s $WORK/j.png ]] && pass "output and quicklook written" || fail "outputs missing"
grep -q "alignment .*shift" <<<"$summary" && pass "residual shift reported" || fail "no shift in summary"
grep -q "features    130" <<<"$summary" && pass "130 features" || fail "feature count"
info=$(gdalinfo "NETCDF:\"$WORK/j.h5\":change_score" 2>&1)
grep -q 'UTM zone 15N' <<<"$info" && pass "gdalinfo: CRS UTM 15N" || fail "gdalinfo CRS: $info"
grep -qE 'Pixel Size = \(0\.60000000000[0-9]*,-0\.60000000000[0-9]*\)' <<<"$info" && pass "gdalinfo: 0.6 m pixels" || fail "pixel size: $info"
grep -qE 'Origin = \(3666[0-9.]+,41038[0-9.]+\)' <<<"$info" && pass "gdalinfo: origin on the pre grid" || fail "origin: $(grep Origin <<<"$info")"
h5dump -H "$WORK/j.h5" >/dev/null && pass "h5dump -H opens it" || fail "h5dump"
finish
