# Bad input gives one clear line naming the file or key, a documented exit code, and no output.
source "$(dirname "$0")/lib.sh"
s=$SRC/data/sample/joplin
out=$WORK/out; mkdir -p "$out"
"$SYNTH" --size 256 --bands 3 --out-dir "$WORK" >/dev/null || fail "synth"

expect_fail "missing file" 1 "$WORK/nope.tif.*does not exist" "$out" -- \
  "$BIN" run --pre "$WORK/nope.tif" --post "$s/post_wgs84.tif" --out "$out/x.h5"
echo "this is not a raster" > "$WORK/text.tif"
expect_fail "text file named .tif" 1 "$WORK/text.tif.*not a recognised raster format" "$out" -- \
  "$BIN" run --pre "$WORK/text.tif" --post "$s/post_wgs84.tif" --out "$out/x.h5"
expect_fail "no overlap" 1 "do not overlap.*$WORK/pre.tif" "$out" -- \
  "$BIN" run --pre "$WORK/pre.tif" --post "$s/post_wgs84.tif" --out "$out/x.h5"
printf 'schema_version: 1\nthreshold:\n  valu: 0.4\n' > "$WORK/bad.yaml"
expect_fail "unknown config key" 2 'threshold.valu.*did you mean.*threshold.value' "$out" -- \
  "$BIN" run --pre "$s/pre_utm15n.tif" --post "$s/post_wgs84.tif" --config "$WORK/bad.yaml" --out "$out/x.h5"
expect_fail "unknown --set key" 2 'threshold.valu.*did you mean' "$out" -- \
  "$BIN" run --pre "$s/pre_utm15n.tif" --post "$s/post_wgs84.tif" --set threshold.valu=0.4 --out "$out/x.h5"
expect_fail "missing config" 2 "$WORK/none.yaml" "$out" -- \
  "$BIN" run --pre "$s/pre_utm15n.tif" --post "$s/post_wgs84.tif" --config "$WORK/none.yaml" --out "$out/x.h5"
expect_fail "missing option" 2 "--out" "$out" -- "$BIN" run --pre "$s/pre_utm15n.tif" --post "$s/post_wgs84.tif"
mkdir -p "$out/dir.h5"
err=$("$BIN" run --pre "$WORK/pre.tif" --post "$WORK/post.tif" --out "$out/dir.h5" 2>&1); rc=$?
[[ $rc == 3 && $err == *"dir.h5"*"directory"* ]] && pass "output is a directory -> 3" || fail "output dir: $rc $err"
rmdir "$out/dir.h5"
# An existing output is kept unless --overwrite.
"$BIN" --log-level error run --pre "$WORK/pre.tif" --post "$WORK/post.tif" --out "$out/ok.h5" >/dev/null || fail "baseline run"
sum=$(sha256sum "$out/ok.h5")
err=$("$BIN" run --pre "$WORK/pre.tif" --post "$WORK/post.tif" --out "$out/ok.h5" 2>&1); rc=$?
[[ $rc == 3 && $err == *"--overwrite"* && $(sha256sum "$out/ok.h5") == "$sum" ]] && pass "existing output kept -> 3" || fail "existing: $rc $err"
[[ $(ls -A "$out") == "ok.h5" ]] && pass "no temporary files left" || fail "left: $(ls -A "$out")"
# Into a file first: `grep -q` quits at the first match and, with pipefail, a help text longer
# than one stdio buffer would fail on SIGPIPE.
"$BIN" --help >"$WORK/help.txt" && grep -q "Exit codes" "$WORK/help.txt" && pass "--help documents exit codes" || fail "--help"
finish
