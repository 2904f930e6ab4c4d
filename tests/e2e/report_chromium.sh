# report: a self-contained HTML page loaded in headless Chromium; the #selftest hook moves the
# slider and checks that the per-class counts change and no console error appeared. A screenshot
# is written to <build>/test-output/report.png. Exit 77 (skip) only when chromium is missing.
source "$(dirname "$0")/lib.sh"
chrome=$(command -v chromium || command -v chromium-browser || true)
if [[ -z $chrome ]]; then echo "chromium not installed: skipped"; exit 77; fi
outdir=$(dirname "$BIN")/test-output; mkdir -p "$outdir"
x=$SRC/data/sample/xbd
labels=$x/santa-rosa-wildfire_00000242_post_disaster.json
"$BIN" --log-level error run --pre "$x/santa-rosa-wildfire_00000242_pre_disaster.png" \
  --post "$x/santa-rosa-wildfire_00000242_post_disaster.png" --footprints "$labels" --out "$WORK/a.h5" >/dev/null || fail "run"
"$BIN" --log-level error report "$WORK/a.h5" --truth "$labels" --size 384 -o "$WORK/report.html" >/dev/null || fail "report"
grep -q 'src="http' "$WORK/report.html" && fail "report references the network"
cp "$WORK/report.html" "$outdir/report.html"
flags=(--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage --disable-background-networking
       --disable-component-update --disable-sync --no-first-run --disable-quic --hide-scrollbars)
dom=$(timeout 120 "$chrome" "${flags[@]}" --user-data-dir="$WORK/u1" --virtual-time-budget=5000 --dump-dom \
  "file://$WORK/report.html#selftest" 2>"$WORK/chrome.err")
line=$(grep -o 'SELFTEST [A-Z]*[^<]*' <<<"$dom" | head -1)
echo "$line"
[[ $line == "SELFTEST PASS"* ]] && pass "slider re-classifies, counts change, no console error" || fail "selftest: ${line:-no result} $(tail -3 "$WORK/chrome.err")"
timeout 120 "$chrome" "${flags[@]}" --user-data-dir="$WORK/u2" --window-size=1400,1100 \
  --screenshot="$outdir/report.png" "file://$WORK/report.html" >/dev/null 2>&1
[[ -s $outdir/report.png ]] && pass "screenshot $outdir/report.png" || fail "no screenshot"
finish
