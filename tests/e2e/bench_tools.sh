# The benchmark kit's own programs (scripts/bench.sh) on a small synthetic pair: the I/O floor
# reads every pixel of both scenes and writes an output of the run's layout; the plain-GDAL
# reference read reads every pixel of one scene; both print JSON and fail clearly on a bad path.
# Extra arguments: aftermath_io_floor, aftermath_gdal_read.
source "$(dirname "$0")/lib.sh"
FLOOR=$4; GDAL_READ=$5
"$SYNTH" --size 640 --shift-x 2.3 --shift-y -1.7 --out-dir "$WORK" >/dev/null || fail "synth"
out=$("$FLOOR" "$WORK/pre.tif" "$WORK/post.tif" "$WORK/floor.h5" 2) || fail "io_floor exit $?"
grep -q '"valid_px": 819200[,}]' <<<"$out" && pass "io_floor read every pixel of both scenes" || fail "io_floor: $out"
grep -qE '"total_s": [0-9.]+' <<<"$out" && pass "io_floor prints total_s" || fail "io_floor: $out"
h5ls "$WORK/floor.h5" | grep -q '^change_score .*{640, 640}' && pass "io_floor wrote the score layer" ||
  fail "io_floor output: $(h5ls "$WORK/floor.h5" 2>&1)"
for t in 1 2; do
  out=$("$GDAL_READ" "$WORK/pre.tif" $t) || fail "gdal_read exit $?"
  grep -qE "\"width\": 640, \"height\": 640, \"bands\": 4, \"threads\": $t, \"seconds\": [0-9.]+" <<<"$out" &&
    pass "gdal_read on $t thread(s): $out" || fail "gdal_read: $out"
done
err=$("$GDAL_READ" "$WORK/missing.tif" 2>&1 >/dev/null); rc=$?
[[ $rc == 1 && $err == *"missing.tif: cannot be opened"* ]] && pass "gdal_read on a missing file: exit 1, $err" ||
  fail "gdal_read on a missing file: exit $rc, $err"
err=$("$FLOOR" "$WORK/missing.tif" "$WORK/post.tif" "$WORK/f2.h5" 2>&1 >/dev/null); rc=$?
[[ $rc != 0 && $err == *missing.tif* && ! -e $WORK/f2.h5 ]] && pass "io_floor on a missing file: exit $rc, $err" ||
  fail "io_floor on a missing file: exit $rc, $err"
finish
