#!/usr/bin/env bash
# Rebuilds data/sample/ from the shared real imagery (../shared/data, see data/sample/README.md).
# Not needed to use aftermath: the sample is committed. Kept so the sample is reproducible.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
src=${1:-$here/../shared/data}
out=$here/data/sample
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out/joplin" "$out/xbd"

# Joplin: one pre tile (UTM 15N, 0.6 m) and the post imagery over it (EPSG:4326, ~6e-6 deg),
# cropped from the mosaic of the 4 post tiles to the pre tile's extent plus a margin.
pre=$src/joplin/pre/tile_337-10160.tif
gdal_translate -q -co COMPRESS=DEFLATE -co PREDICTOR=2 -co TILED=YES "$pre" "$out/joplin/pre_utm15n.tif"
gdalbuildvrt -q "$tmp/post.vrt" "$src"/joplin/post/*.tif
# pre tile bounds in EPSG:4326 (from gdalinfo): about -94.50017..-94.49315 E, 37.06642..37.07194 N
gdal_translate -q -projwin -94.49960 37.0722 -94.4930 37.0662 -co COMPRESS=DEFLATE -co PREDICTOR=2 \
  -co TILED=YES "$tmp/post.vrt" "$out/joplin/post_wgs84.tif"
ogr2ogr -q -f GeoJSON -spat -94.49960 37.0662 -94.4930 37.0722 -lco RFC7946=YES \
  "$out/joplin/buildings.geojson" "$src/joplin/joplin.geojson"

# xBD: the Santa Rosa wildfire pair with its labels, as shipped (PNG + xBD JSON).
cp "$src"/xbd/images/santa-rosa-wildfire_00000242_{pre,post}_disaster.png "$out/xbd/"
cp "$src"/xbd/labels/santa-rosa-wildfire_00000242_{pre,post}_disaster.json "$out/xbd/"
# and the Midwest flooding pair (10 destroyed buildings), small enough to ship too.
cp "$src"/xbd/images/midwest-flooding_00000008_{pre,post}_disaster.png "$out/xbd/"
cp "$src"/xbd/labels/midwest-flooding_00000008_{pre,post}_disaster.json "$out/xbd/"
chmod u+w "$out"/xbd/*
du -sh "$out"
