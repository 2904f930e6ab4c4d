# xarray opens the HDF5 output with x/y coordinates (tests/e2e/export_xarray.py). Needs Debian's
# python3-xarray and python3-h5netcdf (scripts/setup.sh installs them); skipped (exit 77) with a
# message when no python3 can import them.
source "$(dirname "$0")/lib.sh"
py=""
for cand in python3 /usr/bin/python3; do
  if command -v "$cand" >/dev/null && "$cand" -c "import xarray, h5netcdf" 2>/dev/null; then py=$cand; break; fi
done
if [[ -z $py ]]; then
  echo "SKIP: no python3 can 'import xarray, h5netcdf' (install python3-xarray python3-h5netcdf)"
  exit 77
fi
s=$SRC/data/sample/joplin
"$BIN" --log-level error run --pre "$s/pre_utm15n.tif" --post "$s/post_wgs84.tif" \
  --footprints "$s/buildings.geojson" --out "$WORK/j.h5" --threads 2 >/dev/null || fail "run exit $?"
"$py" "$(dirname "$0")/export_xarray.py" "$WORK/j.h5" && pass "xarray ($py) opens the output with x/y coordinates" \
  || fail "xarray check"
finish
