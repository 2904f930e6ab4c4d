#!/usr/bin/env bash
# Runs aftermath on the bundled real sample (data/sample) and prints where the outputs are.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${AFTERMATH_BUILD_DIR:-$here/build}
[[ -x $build/aftermath ]] || "$here/scripts/setup.sh"
out=${1:-$here/out/demo}
mkdir -p "$out"
bin=$build/aftermath
s=$here/data/sample

echo "== Joplin tornado, 2011: pre in UTM 15N (0.6 m), post in EPSG:4326, 130 building footprints"
"$bin" --log-level warn run --overwrite \
  --pre "$s/joplin/pre_utm15n.tif" --post "$s/joplin/post_wgs84.tif" \
  --footprints "$s/joplin/buildings.geojson" \
  --config "$here/configs/default.yaml" \
  --out "$out/joplin.h5" --quicklook "$out/joplin.png"

echo
echo "== xBD Santa Rosa wildfire, 2017: pixel-grid pair with labelled buildings"
"$bin" --log-level warn run --overwrite \
  --pre "$s/xbd/santa-rosa-wildfire_00000242_pre_disaster.png" \
  --post "$s/xbd/santa-rosa-wildfire_00000242_post_disaster.png" \
  --footprints "$s/xbd/santa-rosa-wildfire_00000242_post_disaster.json" \
  --config "$here/configs/default.yaml" \
  --out "$out/santa-rosa.h5" --quicklook "$out/santa-rosa.png"

echo
echo "Outputs in $out:"
ls -1 "$out"
echo "Open the layers georeferenced with GDAL, e.g.:  gdalinfo NETCDF:\"$out/joplin.h5\":change_score"
