# Idempotence: a second run on unchanged inputs skips every job quickly; a changed input, config
# or a corrupt output re-runs only that job; --dry-run says why; --force recomputes.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/batch_lib.sh"
N=6
make_scenes "$WORK/scenes" $N 256
mkdir -p "$WORK/m"
write_manifest "$WORK/m/m.yaml" ../scenes $N
r=$WORK/m/aftermath-report.json
statuses() { jq -r '[.jobs[].status] | join(",")' "$r"; }
"$BIN" --log-level warn batch "$WORK/m/m.yaml" >/dev/null; rc=$?
[[ $rc == 0 && $(statuses) == "done,done,done,done,done,done" ]] && pass "first run: $N done" || fail "first run $rc $(statuses)"
t0=$(date +%s%N)
out=$("$BIN" --log-level warn batch "$WORK/m/m.yaml"); rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
echo "second run: $ms ms for $N jobs = $((ms / N)) ms per job (whole process, including start-up)"
[[ $rc == 0 && $(statuses) == "up_to_date,up_to_date,up_to_date,up_to_date,up_to_date,up_to_date" ]] && pass "second run: every job up to date" || fail "second run $rc $(statuses)"
((ms / N < 250)) && pass "skip time $((ms / N)) ms per job (< 250 ms)" || fail "skip too slow: $((ms / N)) ms per job"
[[ $(jq -r '.jobs[0].summary.features' "$r") == 16 ]] && pass "up-to-date jobs still report their counts" || fail "counts of skipped job"
[[ -f $WORK/m/aftermath-hash-cache.json ]] && pass "hash cache beside the report" || fail "no hash cache"

# A changed input re-runs only its job (the cache notices the new size/mtime).
cp "$WORK/scenes/s1/post.tif" "$WORK/scenes/s2/post.tif"
# A corrupt (truncated) output is not up to date: it is replaced.
head -c 1000 "$WORK/m/out/j4.h5" >"$WORK/cut" && mv "$WORK/cut" "$WORK/m/out/j4.h5"
dry=$("$BIN" --log-level warn batch "$WORK/m/m.yaml" --dry-run --set tiling.tile_size=128); rc=$?
echo "$dry"
[[ $rc == 0 && $(grep -c '^would_run' <<<"$dry") == 2 ]] && pass "--dry-run lists 2 jobs to run" || fail "dry-run $rc"
grep -q '^would_run  j2 .*post scene changed' <<<"$dry" && pass "--dry-run: j2 because post scene changed" || fail "dry-run reason j2"
grep -q '^would_run  j4 .*unreadable' <<<"$dry" && pass "--dry-run: j4 because the output is unreadable" || fail "dry-run reason j4"
[[ $(head -c 1000 "$WORK/m/out/j4.h5" | wc -c) == 1000 && $(stat -c %s "$WORK/m/out/j4.h5") == 1000 ]] && pass "--dry-run changed nothing" || fail "dry-run wrote"
"$BIN" --log-level warn batch "$WORK/m/m.yaml" >/dev/null; rc=$?
[[ $rc == 0 && $(statuses) == "up_to_date,done,up_to_date,done,up_to_date,up_to_date" ]] && pass "only j2 and j4 re-run" || fail "re-run $rc $(statuses)"
"$BIN" --log-level warn batch "$WORK/m/m.yaml" --set threshold.value=0.45 --dry-run | grep -c 'config changed' | grep -qx $N \
  && pass "a changed config makes every job stale" || fail "config change"
"$BIN" --log-level warn batch "$WORK/m/m.yaml" --force >/dev/null; rc=$?
[[ $rc == 0 && $(statuses) == "done,done,done,done,done,done" ]] && pass "--force recomputes all" || fail "--force $rc $(statuses)"
[[ -z $(leftovers "$WORK/m") ]] && pass "no temporary or lock files left" || fail "left: $(leftovers "$WORK/m")"
finish
