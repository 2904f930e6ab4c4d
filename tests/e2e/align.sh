# aftermath align: estimate only (the Joplin pair in two CRSs, a synthetic pair with a known shift),
# --write-aligned, `run --alignment` reusing a stored model, the misregistration layer, and thread
# independence of the model.
source "$(dirname "$0")/lib.sh"
s=$SRC/data/sample/joplin
attr() { h5dump -a "/alignment/$2" "$1" 2>/dev/null | awk '/\(0\):/ {sub(/.*\(0\): */, ""); gsub(/"/, ""); print; exit}'; }

# 1. The Joplin pair: pre UTM 15N, post EPSG:4326.
out=$("$BIN" --log-level warn align --pre "$s/pre_utm15n.tif" --post "$s/post_wgs84.tif" --out "$WORK/T.h5" \
  --write-aligned "$WORK/post_on_pre.tif" --threads 2)
rc=$?
echo "$out"
[[ $rc == 0 && -s $WORK/T.h5 ]] && pass "align wrote T.h5" || fail "align exit $rc"
grep -qE "^tie points  [0-9]+ kept, [0-9]+ dropped; RMSE [0-9.]+ -> [0-9.]+ px" <<<"$out" && pass "tie-point RMSE before/after reported" || fail "summary: $out"
model=$(attr "$WORK/T.h5" model)
[[ $model =~ ^(translation|affine|field)$ ]] && pass "stored model: $model" || fail "model '$model'"
for a in rmse_before rmse_after tie_points_kept tie_points_dropped affine_x0 uncertainty max_displacement; do
  v=$(attr "$WORK/T.h5" $a); [[ -n $v ]] && echo "  /alignment $a = $v" || fail "attribute $a missing"
done
h5dump -H "$WORK/T.h5" >"$WORK/T.txt"; grep -q 'DATASET "psr"' "$WORK/T.txt" && pass "tie points carry their scores (psr, ssim...)" || fail "tie_points/psr"
info=$(gdalinfo "$WORK/post_on_pre.tif" 2>&1)
grep -q 'UTM zone 15N' <<<"$info" && grep -q 'Size is 957, 1024' <<<"$info" && grep -q 'Type=Float32' <<<"$info" \
  && pass "--write-aligned: float32 GeoTIFF on the pre grid (UTM 15N, 957 x 1024)" || fail "aligned GeoTIFF: $info"

# 2. run --alignment reuses it; the misregistration layer is written.
out=$("$BIN" --log-level warn run --pre "$s/pre_utm15n.tif" --post "$s/post_wgs84.tif" --alignment "$WORK/T.h5" \
  --footprints "$s/buildings.geojson" --out "$WORK/run.h5" --threads 2)
rc=$?
[[ $rc == 0 ]] && pass "run --alignment" || fail "run --alignment exit $rc"
[[ $(attr "$WORK/run.h5" model) == "$model" && $(attr "$WORK/run.h5" shift_x) == $(attr "$WORK/T.h5" shift_x) ]] \
  && pass "the stored model is reused as is" || fail "model not reused"
[[ -n $(attr "$WORK/run.h5" reused_from) ]] && pass "reused_from recorded" || fail "reused_from"
minfo=$(gdalinfo -stats "NETCDF:\"$WORK/run.h5\":misregistration" 2>&1)
grep -q 'UTM zone 15N' <<<"$minfo" && grep -q 'STATISTICS_MAXIMUM' <<<"$minfo" \
  && pass "misregistration layer georeferenced ($(grep -E 'STATISTICS_(MEAN|MAXIMUM)' <<<"$minfo" | tr -d ' ' | tr '\n' ' '))" \
  || fail "misregistration layer: $minfo"

"$BIN" --log-level error run --pre "$s/pre_utm15n.tif" --post "$s/post_wgs84.tif" --alignment "$WORK/T.h5" \
  --footprints "$s/buildings.geojson" --out "$WORK/run1.h5" --threads 1 >/dev/null || fail "run --threads 1"
for d in /misregistration /change_score; do
  h5dump -b LE -d $d -o "$WORK/m1.bin" "$WORK/run1.h5" >/dev/null; h5dump -b LE -d $d -o "$WORK/m2.bin" "$WORK/run.h5" >/dev/null
  cmp -s "$WORK/m1.bin" "$WORK/m2.bin" && pass "$d identical (threads 1 vs 2)" || fail "$d differs between thread counts"
done

# 3. A synthetic pair with a known shift (17.4, -9.3) px.
mkdir -p "$WORK/syn"
"$SYNTH" --size 1024 --shift-x 17.4 --shift-y -9.3 --out-dir "$WORK/syn" >/dev/null || fail "synth"
for t in 1 2; do
  "$BIN" --log-level error align --pre "$WORK/syn/pre.tif" --post "$WORK/syn/post.tif" --out "$WORK/s$t.h5" \
    --threads $t >/dev/null || fail "align synthetic threads $t"
done
sx=$(attr "$WORK/s2.h5" shift_x); sy=$(attr "$WORK/s2.h5" shift_y)
awk -v x="$sx" -v y="$sy" 'BEGIN {e = sqrt((x - 17.4)^2 + (y + 9.3)^2); print "  synthetic: shift (" x ", " y "), error " e " px"; exit !(e <= 0.05)}' \
  && pass "known shift (17.4, -9.3) found within 0.05 px" || fail "synthetic shift ($sx, $sy)"
for a in model shift_x shift_y affine_x0 rmse_after tie_points_kept; do
  [[ $(attr "$WORK/s1.h5" $a) == $(attr "$WORK/s2.h5" $a) ]] || fail "/alignment $a differs between 1 and 2 threads"
done
h5dump -b LE -d /alignment/tie_points/shift_x -o "$WORK/a.bin" "$WORK/s1.h5" >/dev/null
h5dump -b LE -d /alignment/tie_points/shift_x -o "$WORK/b.bin" "$WORK/s2.h5" >/dev/null
cmp -s "$WORK/a.bin" "$WORK/b.bin" && pass "model and tie points identical for 1 and 2 threads" || fail "tie points differ"

# 4. A stored model from another grid is refused; nothing is written.
mkdir -p "$WORK/none"
expect_fail "alignment from another grid" 1 "not this run's analysis grid" "$WORK/none" -- \
  "$BIN" run --pre "$WORK/syn/pre.tif" --post "$WORK/syn/post.tif" --alignment "$WORK/T.h5" --out "$WORK/none/x.h5"
expect_fail "alignment file that is not an alignment" 1 "not an HDF5 file" "$WORK/none" -- \
  "$BIN" run --pre "$WORK/syn/pre.tif" --post "$WORK/syn/post.tif" --alignment "$SRC/data/sample/joplin/pre_utm15n.tif" --out "$WORK/none/x.h5"
finish
