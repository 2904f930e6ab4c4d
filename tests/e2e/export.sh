# `aftermath run ... --export DIR` and `aftermath export OUT.h5 --to DIR` on the real Joplin pair
# (and the xBD pixel-grid pair): COGs with GDAL's COG layout and the HDF5's values, the styled
# GeoPackage, GeoJSON in EPSG:4326, the STAC Item.
source "$(dirname "$0")/lib.sh"
s=$SRC/data/sample/joplin
out=$WORK/exp
summary=$("$BIN" --log-level error run --pre "$s/pre_utm15n.tif" --post "$s/post_wgs84.tif" \
  --footprints "$s/buildings.geojson" --out "$WORK/j.h5" --threads 2 --export "$out")
rc=$?
echo "$summary"
[[ $rc == 0 ]] || fail "run --export exit $rc"
for f in j_change_score.tif j_damage_mask.tif j.gpkg j.geojson j.stac.json; do
  [[ -s $out/$f ]] && pass "$f written" || fail "$f missing"
done
[[ -z $(ls -A "$out" | grep '^\.') ]] && pass "no temporary files left" || fail "left: $(ls -A "$out")"

# COGs: valid COG layout, compressed, overviews, the grid of the HDF5 layer, the same pixels.
for layer in change_score damage_mask; do
  cog=$out/j_$layer.tif
  info=$(gdalinfo -checksum "$cog" 2>&1)
  ref=$(gdalinfo -checksum "NETCDF:\"$WORK/j.h5\":$layer" 2>&1)
  grep -q 'LAYOUT=COG' <<<"$info" && pass "$layer: LAYOUT=COG" || fail "$layer: no COG layout: $info"
  grep -q 'COMPRESSION=DEFLATE' <<<"$info" && pass "$layer: DEFLATE" || fail "$layer: compression"
  grep -q 'Overviews:' <<<"$info" && pass "$layer: overviews" || fail "$layer: no overviews"
  grep -q 'UTM zone 15N' <<<"$info" && pass "$layer: CRS UTM 15N" || fail "$layer: CRS"
  # Same grid as GDAL reads from the HDF5 (its netCDF driver derives the pixel size from the x/y
  # coordinates, so allow 1e-9 of rounding).
  for key in Origin 'Pixel Size' 'Size is'; do
    a=$(grep "^$key" <<<"$info"); b=$(grep "^$key" <<<"$ref")
    if [[ -n $a ]] && awk -v a="$a" -v b="$b" 'BEGIN {
        na = split(a, x, /[^-0-9.e]+/); nb = split(b, y, /[^-0-9.e]+/); if (na != nb) exit 1
        for (i = 1; i <= na; i++) { d = x[i] - y[i]; if (d < 0) d = -d; if (d > 1e-9) exit 1 } }'; then
      pass "$layer: $a"
    else
      fail "$layer: '$a' != '$b' (HDF5)"
    fi
  done
  if [[ $layer == change_score ]]; then
    # Stored packed (uint16 codes, scale 2^-16, fill 65535); the COG holds the unpacked scores
    # (float32, nodata -1): equal pixel for pixel.
    if /usr/bin/python3 - "$WORK/j.h5" "$cog" <<'PY'
import sys
import numpy as np
from osgeo import gdal
h5 = gdal.Open('NETCDF:"%s":change_score' % sys.argv[1])  # the raw codes (GDAL does not unpack)
codes = h5.GetRasterBand(1).ReadAsArray()
tif = gdal.Open(sys.argv[2])  # datasets held: a band outliving its dataset crashes GDAL's bindings
cog = tif.GetRasterBand(1).ReadAsArray()
want = np.where(codes == 65535, -1.0, codes.astype(np.float64) * 2.0 ** -16).astype(np.float32)
sys.exit(0 if cog.dtype == np.float32 and np.array_equal(cog, want) else 1)
PY
    then pass "$layer: pixels equal to the unpacked HDF5 layer"; else fail "$layer: pixels differ from the HDF5 layer"; fi
  else
    a=$(grep Checksum <<<"$info"); b=$(grep Checksum <<<"$ref")
    [[ -n $a && $a == "$b" ]] && pass "$layer: checksum equal to the HDF5 layer ($a)" || fail "$layer: checksum '$a' != '$b'"
  fi
  validator=/usr/lib/python3/dist-packages/osgeo_utils/samples/validate_cloud_optimized_geotiff.py
  if [[ -f $validator ]]; then
    /usr/bin/python3 "$validator" -q "$cog" && pass "$layer: GDAL's COG validator" || fail "$layer: validator"
  fi
done
grep -q 'NoData Value=-1$' <<<"$(gdalinfo "$out/j_change_score.tif")" && pass "change_score nodata -1" || fail "nodata"
grep -q 'NoData Value=255$' <<<"$(gdalinfo "$out/j_damage_mask.tif")" && pass "damage_mask nodata 255" || fail "nodata 255"

# GeoPackage: 130 footprints with the fields, in the grid CRS, and the QGIS style row.
g=$(ogrinfo -ro -so "$out/j.gpkg" footprints 2>&1)
grep -q 'Feature Count: 130' <<<"$g" && pass "gpkg: 130 features" || fail "gpkg count: $g"
grep -q 'UTM zone 15N' <<<"$g" && pass "gpkg: grid CRS" || fail "gpkg CRS"
for f in source_id kind status damage_class damage mean_score changed_fraction valid_fraction coverage confidence area \
  median_score p90_score segment damage_grade damage_grade_high_precision damage_grade_high_recall; do
  grep -q "^$f: " <<<"$g" || fail "gpkg: no field $f"
done
pass "gpkg: fields present"
# Damage sites: as many as the run found, with their outlines.
sites_gpkg=$(ogrinfo -ro -so "$out/j.gpkg" damage_sites 2>&1 | sed -n 's/^Feature Count: //p')
grep -q "^sites       $sites_gpkg damage sites" <<<"$summary" && [[ $sites_gpkg -gt 0 ]] \
  && pass "gpkg: $sites_gpkg damage sites, as the run" || fail "damage_sites: $sites_gpkg"
st=$(ogrinfo -ro -q "$out/j.gpkg" -sql "SELECT f_table_name, f_geometry_column, useAsDefault FROM layer_styles WHERE styleQML LIKE '%categorizedSymbol%damage_class%'" 2>&1)
grep -q 'f_table_name (String) = footprints' <<<"$st" && grep -q 'useAsDefault (Integer(Boolean)) = 1' <<<"$st" \
  && pass "gpkg: default QGIS style (categorised on damage_class)" || fail "layer_styles: $st"
n=$(ogrinfo -ro -q "$out/j.gpkg" -sql "SELECT COUNT(*) AS n FROM footprints WHERE damage = 'destroyed'" | grep -oE 'n \(Integer\) = [0-9]+')
grep -q "destroyed $(grep -oE '[0-9]+$' <<<"$n")," <<<"$summary" && pass "gpkg: destroyed count matches the run ($n)" || fail "destroyed: $n"

# GeoJSON: RFC 7946, EPSG:4326, the same features.
gj=$(ogrinfo -ro -so "$out/j.geojson" footprints 2>&1)
grep -q 'Feature Count: 130' <<<"$gj" && pass "geojson: 130 features" || fail "geojson count"
grep -q 'ID\["EPSG",4326\]' <<<"$gj" && pass "geojson: EPSG:4326" || fail "geojson CRS: $gj"
grep -qE 'Extent: \(-94\.[0-9]+, 37\.[0-9]+\)' <<<"$gj" && pass "geojson: lon/lat near Joplin" || fail "geojson extent: $(grep Extent <<<"$gj")"

# STAC Item (structure of the STAC 1.0 Item).
/usr/bin/python3 - "$out/j.stac.json" <<'EOF' && pass "STAC Item: required fields, types, assets" || fail "STAC Item"
import json, os, sys
p = sys.argv[1]
j = json.load(open(p))
assert j["type"] == "Feature" and j["stac_version"] == "1.0.0" and isinstance(j["id"], str)
assert j["geometry"]["type"] == "Polygon" and len(j["bbox"]) == 4
assert -95 < j["bbox"][0] < j["bbox"][2] < -94 and 37 < j["bbox"][1] < j["bbox"][3] < 38, j["bbox"]
props = j["properties"]
assert isinstance(props["datetime"], str) and props["processing:software"]["aftermath"]
assert len(props["aftermath:config_sha256"]) == 64 and props["proj:epsg"] == 26915
assert isinstance(j["links"], list)
for k, a in j["assets"].items():
    assert os.path.exists(os.path.join(os.path.dirname(p), a["href"])), a["href"]
    assert isinstance(a["type"], str) and a["roles"] == ["data"], k
assert j["assets"]["change_score"]["type"] == "image/tiff; application=geotiff; profile=cloud-optimized"
print("  stac:", j["id"], j["properties"]["datetime"], sorted(j["assets"]))
EOF

# `aftermath export` on the output gives the same COG pixels.
"$BIN" --log-level error export "$WORK/j.h5" --to "$WORK/exp2" --pre-datetime 2011-05-15T16:50:00Z \
  --post-datetime 2011-05-24T17:05:00Z >/dev/null || fail "export exit $?"
a=$(gdalinfo -checksum "$WORK/exp2/j_change_score.tif" | grep Checksum); b=$(gdalinfo -checksum "$out/j_change_score.tif" | grep Checksum)
[[ -n $a && $a == "$b" ]] && pass "export: same COG values as run --export" || fail "export checksum '$a' != '$b'"
grep -q '"start_datetime": "2011-05-15T16:50:00Z"' "$WORK/exp2/j.stac.json" && grep -q '"datetime": null' "$WORK/exp2/j.stac.json" \
  && pass "export: scene times in the STAC Item" || fail "STAC datetimes"
mkdir -p "$WORK/empty"
expect_fail "export of a missing file" 1 "no such file" "$WORK/empty/out" -- "$BIN" export "$WORK/none.h5" --to "$WORK/empty/out"
expect_fail "export with a bad datetime" 2 "RFC 3339" "$WORK/empty/out" -- "$BIN" export "$WORK/j.h5" --to "$WORK/empty/out" --pre-datetime yesterday

# A plain pixel grid (xBD PNGs): COGs without CRS, no GeoJSON, STAC geometry null.
x=$SRC/data/sample/xbd
"$BIN" --log-level error run --pre "$x/midwest-flooding_00000008_pre_disaster.png" \
  --post "$x/midwest-flooding_00000008_post_disaster.png" \
  --footprints "$x/midwest-flooding_00000008_post_disaster.json" --out "$WORK/m.h5" --export "$WORK/mx" >/dev/null \
  || fail "xbd run --export"
info=$(gdalinfo "$WORK/mx/m_change_score.tif" 2>&1)
grep -q 'LAYOUT=COG' <<<"$info" && ! grep -q 'Coordinate System is:' <<<"$info" && pass "pixel grid: COG without CRS" || fail "pixel COG: $info"
[[ ! -e $WORK/mx/m.geojson && -s $WORK/mx/m.gpkg ]] && pass "pixel grid: gpkg, no GeoJSON" || fail "pixel grid files: $(ls "$WORK/mx")"
grep -q '"geometry": null' "$WORK/mx/m.stac.json" && pass "pixel grid: STAC geometry null" || fail "pixel STAC"
finish
