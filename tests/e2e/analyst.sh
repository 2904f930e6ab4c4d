# rescore / evaluate / sweep / calibrate on the xBD sample: rescore with the run's config
# reproduces the run's layers and tables exactly; evaluate matches an independent count (awk over
# h5dump of the stored columns); the /evaluation group is stored; calibrate's config rescores.
source "$(dirname "$0")/lib.sh"
x=$SRC/data/sample/xbd
labels=$x/santa-rosa-wildfire_00000242_post_disaster.json
"$BIN" --log-level error run --pre "$x/santa-rosa-wildfire_00000242_pre_disaster.png" \
  --post "$x/santa-rosa-wildfire_00000242_post_disaster.png" --footprints "$labels" --out "$WORK/a.h5" >/dev/null \
  || fail "run"
# Everything but created/history, data included; the file name line differs.
dump() {
  h5dump "$1" | grep -v -e '^HDF5 "' | awk '/ATTRIBUTE "(created|history)"/ {skip=1; depth=0}
    skip { depth += gsub(/{/, "{") - gsub(/}/, "}"); if (depth <= 0) skip=0; next } {print}'
}
cp "$WORK/a.h5" "$WORK/orig.h5"
"$BIN" --log-level error rescore "$WORK/a.h5" --out "$WORK/b.h5" >/dev/null || fail "rescore"
if diff <(dump "$WORK/a.h5") <(dump "$WORK/b.h5") >"$WORK/d.txt"; then pass "rescore with the run's config reproduces every layer, table and attribute"; else fail "rescore differs: $(head -20 "$WORK/d.txt")"; fi
for l in change_score damage_mask; do
  h5dump -d /$l -b LE -o "$WORK/$l.a" "$WORK/a.h5" >/dev/null; h5dump -d /$l -b LE -o "$WORK/$l.b" "$WORK/b.h5" >/dev/null
  cmp -s "$WORK/$l.a" "$WORK/$l.b" && pass "$l bytes identical" || fail "$l bytes differ"
done
# New thresholds in place, then back to the run's config: the original again (atomic in place).
"$BIN" --log-level error rescore "$WORK/a.h5" --set threshold.value=0.7 --set damage.minor=0.2 >/dev/null || fail "rescore in place"
ls -A "$WORK" | grep -q '\.tmp-' && fail "temporary file left"
h5dump -a /threshold "$WORK/a.h5" | grep -q '0\.7' && pass "in-place rescore applied threshold 0.7" || fail "threshold not applied"
cmp -s <(h5dump -d /damage_mask -b LE -o /dev/stdout "$WORK/a.h5" 2>/dev/null) "$WORK/damage_mask.a" && fail "mask unchanged by new threshold"
"$BIN" --log-level error rescore "$WORK/a.h5" --set threshold.value=0.5 --set damage.minor=0.1 >/dev/null || fail "rescore back"
if diff <(dump "$WORK/a.h5") <(dump "$WORK/orig.h5") >"$WORK/d2.txt"; then pass "rescore back to the run's thresholds restores the run exactly"; else fail "round trip differs: $(head -10 "$WORK/d2.txt")"; fi

# evaluate vs an independent count from the stored columns.
"$BIN" --log-level error evaluate "$WORK/b.h5" --truth "$labels" --json "$WORK/e.json" --csv "$WORK/e.csv" --store >/dev/null || fail "evaluate"
col() { h5dump -d "/footprints/$1" -y -w 0 -o "$WORK/$1.txt" "$WORK/b.h5" >/dev/null; tr ', ' '\n\n' <"$WORK/$1.txt" | grep -E '^[0-9]+$'; }
paste <(col truth_class) <(col damage_class) <(col status) >"$WORK/tps.txt"
independent=$(awk '$3 == 0 && $1 < 4 && $2 < 4 { cm[$1","$2]++; n++ }
  END { for (c = 0; c < 4; c++) { tp = cm[c","c]; fp = 0; fn = 0
          for (k = 0; k < 4; k++) if (k != c) { fp += cm[k","c]; fn += cm[c","k] }
          f1 = (2*tp + fp + fn) ? 2*tp / (2*tp + fp + fn) : 0; printf "%d %.6f ", tp, f1 }
        printf "%d\n", n }' "$WORK/tps.txt")
ours=$(jq -r '[.classes.no_damage, .classes.minor_damage, .classes.major_damage, .classes.destroyed] | map("\(.tp) \(.f1*1000000|round/1000000)") | join(" ")' "$WORK/e.json")
ours="$ours $(jq -r .evaluated "$WORK/e.json")"
norm() { awk '{for (i = 1; i <= NF; i++) printf "%s ", ($i + 0); print ""}'; }
if [[ $(norm <<<"$independent") == $(norm <<<"$ours") ]]; then pass "evaluate = independent count (tp, F1 per class, n): $ours"; else fail "evaluate '$ours' vs independent '$independent'"; fi
xv=$(jq -r '0.3 * .localisation.f1 + 0.7 * (4 / ([.classes[].f1 | 1 / (. + 1e-6)] | add)) - .xview2_score | fabs < 1e-9' "$WORK/e.json")
[[ $xv == true ]] && pass "xView2 score = 0.3 loc F1 + 0.7 harmonic mean" || fail "xView2 score formula"
grep -q '^xview2_score,' "$WORK/e.csv" && pass "CSV written" || fail "CSV"
h5dump -d /evaluation/classes/f1 "$WORK/b.h5" >/dev/null && pass "/evaluation stored" || fail "/evaluation"
"$BIN" --log-level error sweep "$WORK/b.h5" --truth "$labels" --out-dir "$WORK/sw" >/dev/null || fail "sweep"
for f in pr.png roc.png sweep.csv; do [[ -s $WORK/sw/$f ]] || fail "sweep $f"; done
# PNG signature (no `file` command on a minimal Debian).
for f in pr.png roc.png; do
  [[ $(head -c 8 "$WORK/sw/$f" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]] && pass "$f is a PNG" || fail "$f is not a PNG"
done
"$BIN" --log-level error calibrate "$WORK/b.h5" --truth "$labels" --target recall --min 0.9 -o "$WORK/cal.yaml" >/dev/null || fail "calibrate"
"$BIN" --log-level error rescore "$WORK/b.h5" --config "$WORK/cal.yaml" --out "$WORK/c.h5" >/dev/null && pass "calibrated config rescores" || fail "rescore calibrated"
r=$("$BIN" --log-level error evaluate "$WORK/c.h5" --truth "$labels" --json - | jq '.damaged.recall >= 0.9')
[[ $r == true ]] && pass "calibrated recall >= 0.9" || fail "calibrated recall"
finish
