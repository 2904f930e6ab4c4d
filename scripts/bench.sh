#!/usr/bin/env bash
# Macro benchmark: generates synthetic 4-band uint16 pairs (tiled deflate GeoTIFF, known shift,
# buildings, footprints) with aftermath-synth, then runs `aftermath run` on each, several times,
# with 1 and 2 threads, and reports median wall time, throughput and peak RSS (/usr/bin/time -v).
# Each round runs, at each thread count, the I/O floor (bench/io_floor.cpp) and then the run, so
# the ratios (run / floor, the parallel efficiency T1 / 2 T2) are also taken round by round side
# by side and their medians reported. Every floor and run writes a new file (the previous round's
# is removed first, untimed): replacing a 150 MB file costs ~0.1 s of unlinking on some file
# systems, which is not the job's work.
# Usage: scripts/bench.sh [--sizes "4096 8192"] [--runs 3] [--threads "1 2"] [--data DIR] [--rescore-only]
#        [--align-only] [--mpi] [--footprints-scale [N]] [--compare]
# Results: bench/results/run.json and bench/results/run.md; --align-only: bench/results/align.md
# (`aftermath align` estimation only: Mpx of overlap per second and peak RSS per size).
# --mpi: one process x 2 threads against `mpirun --bind-to none -np 2` x 1 thread per rank on the
# same pair (default size 8192; --sizes to change), medians of --runs: bench/results/mpi.md.
# --footprints-scale: the 16384 pair with N (default 1,000,000) building polygons on a lattice
# (aftermath-synth --lattice-footprints) against the same run without footprints, side by side:
# bench/results/footprints.md.
# --compare: `aftermath run` side by side with the tools issue 11 quotes, round by round on the
# same pair (default size 8192), 2 threads each: reading one scene through plain GDAL, gdalwarp
# (cubic), a straightforward NumPy/OpenCV-Python pipeline (bench/baseline_pipeline.py) and Orfeo
# ToolBox's MAD change detector; installs python3-opencv, python3-h5py and otb-bin if missing.
# Results: bench/results/compare.md.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
sizes="4096 8192"; runs=3; rescore_only=0; align_only=0; mpi_only=0; compare_only=0; fp_scale=0; threads="1 2"; data=${AFTERMATH_BENCH_DATA:-/tmp/aftermath-bench}
while (($#)); do
  case $1 in
    --sizes) sizes=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --rescore-only) rescore_only=1; shift ;;
    --align-only) align_only=1; shift ;;
    --mpi) mpi_only=1; shift ;;
    --compare) compare_only=1; shift ;;
    --footprints-scale) fp_scale=1000000; shift; if [[ ${1:-} =~ ^[0-9]+$ ]]; then fp_scale=$1; shift; fi ;;
    -h|--help) awk 'NR > 1 && /^#/ {print; next} NR > 1 {exit}' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
build=${AFTERMATH_BUILD_DIR:-$here/build}
[[ -x $build/aftermath && -x $build/aftermath-synth ]] || "$here/scripts/setup.sh"
if [[ ! -x /usr/bin/time ]]; then
  sudo=""; [[ $(id -u) == 0 ]] || sudo=sudo
  $sudo apt-get install -y -qq time >/dev/null || { $sudo apt-get update -qq && $sudo apt-get install -y -qq time >/dev/null; }
fi
mkdir -p "$here/bench/results" "$data"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
json="$here/bench/results/run.json"; md="$here/bench/results/run.md"
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# Wall seconds and peak RSS (MB) from a `/usr/bin/time -v` report.
wall_s() { awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,p,":"); s=0; for(i=1;i<=n;i++) s=s*60+p[i]; print s}' "$1"; }
peak_rss_mb() { awk -F': ' '/Maximum resident set size/ {print $2/1024}' "$1"; }
# The synthetic pair of size $1 in $data/$1, generated once.
ensure_pair() {
  local d=$data/$1
  [[ -s $d/post.tif ]] && return
  mkdir -p "$d"
  echo "bench: generating $1 x $1 pair in $d" >&2
  "$build/aftermath-synth" --size "$1" --shift-x 2.3 --shift-y -1.7 --out-dir "$d" >&2
}
if ((fp_scale)); then
  # Per-feature scoring at scale: wall time, peak RSS and the run's stage times, with and without
  # the lattice of footprints, alternating so both see the same machine.
  n=16384; d=$data/$n
  ensure_pair "$n"
  # FlatGeobuf, as large footprint sets come: GDAL's GeoJSON driver alone needs ~10 s to parse a
  # million polygons on one core (FlatGeobuf: 0.5 s), which would hide what aftermath does.
  fp=$d/lattice-$fp_scale.fgb
  if [[ ! -s $fp ]]; then
    [[ -s $d/lattice-$fp_scale.geojson ]] ||
      "$build/aftermath-synth" --size "$n" --lattice-footprints "$fp_scale" --out-dir "$d" >&2
    ogr2ogr -f FlatGeobuf "$fp" "$d/lattice-$fp_scale.geojson"
  fi
  fmd="$here/bench/results/footprints.md"
  declare -A W R S
  for ((i = 0; i < runs; i++)); do
    for mode in none lattice; do
      args=(); [[ $mode == lattice ]] && args=(--footprints "$fp")
      /usr/bin/time -v -o "$d/time-fp.txt" "$build/aftermath" --log-level warn run --overwrite --threads 2 \
        --pre "$d/pre.tif" --post "$d/post.tif" "${args[@]}" --out "$d/out-fp.h5" > "$d/run-fp.txt"
      W[$mode]+="$(wall_s "$d/time-fp.txt") "
      R[$mode]+="$(peak_rss_mb "$d/time-fp.txt") "
      S[$mode]=$(sed -n 's/^time *[0-9.]* s (\(.*\));.*/\1/p' "$d/run-fp.txt")
      echo "bench: footprints $mode, run $((i + 1)): $(tail -1 "$d/run-fp.txt")" >&2
    done
  done
  { echo "| $n x $n, 2 threads | runs | median wall s | median peak RSS MB | stages (last run) |"
    echo "|---|---|---|---|---|"
    for mode in none lattice; do
      label="no footprints"; [[ $mode == lattice ]] && label="$fp_scale polygons"
      printf '| %s | %s | %s | %.0f | %s |\n' "$label" "$runs" "$(printf '%s\n' ${W[$mode]} | median)" \
        "$(printf '%s\n' ${R[$mode]} | median)" "${S[$mode]}"
    done; } > "$fmd"
  cat "$fmd"
  exit 0
fi
if ((compare_only)); then
  # Each round runs every tool once on the same pair (the machine's drift hits them alike); the
  # speed-up is the median of the rounds' own ratios. Mpx/s counts the analysis grid (one scene's
  # pixels) for every tool; the GDAL read reads one scene, gdalwarp resamples one.
  [[ $sizes == "4096 8192" ]] && sizes=8192
  missing=()
  /usr/bin/python3 -c 'import cv2, h5py, numpy; from osgeo import gdal' 2>/dev/null ||
    missing+=(python3-opencv python3-h5py python3-numpy python3-gdal)
  command -v otbcli_MultivariateAlterationDetector >/dev/null || missing+=(otb-bin)
  if ((${#missing[@]})); then
    sudo=""; [[ $(id -u) == 0 ]] || sudo=sudo
    echo "bench: installing ${missing[*]}" >&2
    $sudo apt-get install -y -qq "${missing[@]}" >/dev/null ||
      { $sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}" >/dev/null; }
  fi
  cmd="$here/bench/results/compare.md"
  tools=(aftermath floor gdal_read gdalwarp numpy otb)
  declare -A label=(
    [aftermath]="\`aftermath run\` (align, score, classify every building, write HDF5)"
    [floor]="I/O floor (aftermath's reader and writer, no computation; its own timer)"
    [gdal_read]="plain GDAL: read one scene (every block, both cores; its own timer)"
    [gdalwarp]="\`gdalwarp -r cubic -multi -wo NUM_THREADS=2\`, one scene, sub-pixel shift"
    [numpy]="NumPy/OpenCV-Python pipeline (bench/baseline_pipeline.py)"
    [otb]="Orfeo ToolBox MAD (\`otbcli_MultivariateAlterationDetector\`, float output)")
  declare -A issue=([aftermath]="at least 20" [floor]="" [gdal_read]="~115" [gdalwarp]="~20"
    [numpy]="~4 (3 GB)" [otb]="3-4 (2 GB)")
  : > "$cmd.tmp"
  for n in $sizes; do
    d=$data/$n
    ensure_pair "$n"
    # gdalwarp's target: the scene's grid shifted by (0.3, -0.3) px, so every pixel is resampled.
    read -r -a te <<<"$(/usr/bin/python3 -c '
import sys
from osgeo import gdal
ds = gdal.Open(sys.argv[1]); g = ds.GetGeoTransform(); w, h = ds.RasterXSize, ds.RasterYSize
x0 = g[0] + 0.3 * g[1]; y1 = g[3] - 0.3 * g[5]
print(x0, y1 + h * g[5], x0 + w * g[1], y1, w, h)' "$d/pre.tif")"
    declare -A W=() R=() ratio=()
    for ((i = 0; i < runs; i++)); do
      declare -A w_round=()
      for tool in "${tools[@]}"; do
        # Untimed: the previous tool's output goes, and its dirty pages reach the disk first (OTB
        # writes 1 GB at 8192^2), so each tool starts on a quiet page cache.
        rm -f "$d/cmp-out.h5" "$d/cmp-out.tif"
        sync
        case $tool in
          aftermath) c=("$build/aftermath" --log-level warn run --threads 2 --pre "$d/pre.tif" --post "$d/post.tif"
                        --footprints "$d/buildings.geojson" --out "$d/cmp-out.h5") ;;
          floor) c=("$build/bench/aftermath_io_floor" "$d/pre.tif" "$d/post.tif" "$d/cmp-out.h5" 2) ;;
          gdal_read) c=("$build/bench/aftermath_gdal_read" "$d/pre.tif" 2) ;;
          gdalwarp) c=(gdalwarp -q -multi -wo NUM_THREADS=2 -r cubic -te "${te[@]:0:4}" -ts "${te[4]}" "${te[5]}"
                       -co TILED=YES "$d/post.tif" "$d/cmp-out.tif") ;;
          numpy) c=(/usr/bin/python3 "$here/bench/baseline_pipeline.py" "$d/pre.tif" "$d/post.tif"
                    "$d/buildings.geojson" "$d/cmp-out.h5" 2) ;;
          otb) c=(env ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=2 otbcli_MultivariateAlterationDetector
                  -in1 "$d/pre.tif" -in2 "$d/post.tif" -out "$d/cmp-out.tif" float) ;;
        esac
        /usr/bin/time -v -o "$d/time-cmp.txt" "${c[@]}" >"$d/cmp-log.txt" 2>&1 ||
          { echo "bench: $tool failed:" >&2; tail -5 "$d/cmp-log.txt" >&2; exit 1; }
        w=$(wall_s "$d/time-cmp.txt")
        # The floor and the GDAL read time themselves (no process start, no GDAL driver
        # registration), as in the main bench: the stricter figures.
        case $tool in
          floor) w=$(sed -n 's/.*"total_s": \([0-9.]*\).*/\1/p' "$d/cmp-log.txt") ;;
          gdal_read) w=$(sed -n 's/.*"seconds": \([0-9.]*\).*/\1/p' "$d/cmp-log.txt") ;;
        esac
        r=$(peak_rss_mb "$d/time-cmp.txt")
        W[$tool]+="$w "; R[$tool]+="$r "; w_round[$tool]=$w
        echo "bench: compare $n px, round $((i + 1)): $tool ${w}s, ${r} MB" >&2
      done
      for tool in "${tools[@]}"; do
        ratio[$tool]+="$(awk -v a="${w_round[aftermath]}" -v b="${w_round[$tool]}" 'BEGIN {print b / a}') "
      done
      unset w_round
    done
    rm -f "$d/cmp-out.h5" "$d/cmp-out.tif" "$d/cmp-log.txt"
    gdal_mw=$(printf '%s\n' ${W[gdal_read]} | median)
    factor=$(awk -v n="$n" -v w="$gdal_mw" 'BEGIN {printf "%.2f", n*n/1e6/w/115}')
    { [[ -s $cmd.tmp ]] && echo
      echo "$n x $n, 4-band uint16 pair (aftermath-synth), 2 threads each, $runs rounds (each round runs every tool once)."
      echo
      echo "| tool | median wall s | Mpx/s | median peak RSS MB | issue 11's figure on its machine, Mpx/s | its wall / aftermath's (median of rounds) |"
      echo "|---|---|---|---|---|---|"
      for tool in "${tools[@]}"; do
        mw=$(printf '%s\n' ${W[$tool]} | median); mr=$(printf '%s\n' ${R[$tool]} | median)
        mq=$(printf '%s\n' ${ratio[$tool]} | median)
        printf '| %s | %s | %.1f | %.0f | %s | %.2f |\n' "${label[$tool]}" "$mw" \
          "$(awk -v n="$n" -v w="$mw" 'BEGIN {print n*n/1e6/w}')" "$mr" "${issue[$tool]}" "$mq"
      done
      echo
      echo "This machine reads a scene through plain GDAL at $factor x the issue's reference machine"
      echo "(~115 Mpx/s there); at that factor, 20 Mpx/s there is about $(awk -v f="$factor" 'BEGIN {printf "%.1f", 20*f}') Mpx/s here."
      echo "Load average before the runs: $load_before; aftermath at $(git -C "$here" describe --always --dirty 2>/dev/null || echo "an unknown commit")."; } >> "$cmd.tmp"
  done
  mv "$cmd.tmp" "$cmd"
  cat "$cmd"
  exit 0
fi
if ((mpi_only)); then
  # The same job split over two MPI ranks of one thread each, against one process of two threads
  # (README "MPI"). Wall time of the whole command (mpirun's start included).
  [[ $sizes == "4096 8192" ]] && sizes=8192
  command -v mpirun >/dev/null || { echo "bench.sh --mpi: mpirun not found (scripts/setup.sh installs Open MPI)" >&2; exit 2; }
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
  mmd="$here/bench/results/mpi.md"
  { echo "| size | layout | runs | wall s (each run) | median wall s | Mpx/s |"; echo "|---|---|---|---|---|---|"; } > "$mmd.tmp"
  for n in $sizes; do
    d=$data/$n
    ensure_pair "$n"
    job=(run --overwrite --pre "$d/pre.tif" --post "$d/post.tif" --footprints "$d/buildings.geojson")
    for layout in "1 process x 2 threads" "2 processes x 1 thread"; do
      walls=()
      for ((i = 0; i < runs; i++)); do
        t0=$(date +%s.%N)
        if [[ $layout == 1* ]]; then
          "$build/aftermath" --log-level warn "${job[@]}" --threads 2 --out "$d/out-mpi.h5" >/dev/null
        else
          mpirun --bind-to none -np 2 "$build/aftermath" --log-level warn "${job[@]}" --threads 1 --out "$d/out-mpi.h5" >/dev/null
        fi
        t1=$(date +%s.%N)
        walls+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')")
        echo "bench: mpi $n px, $layout, run $((i + 1)): ${walls[-1]} s" >&2
      done
      mw=$(printf '%s\n' "${walls[@]}" | median)
      printf '| %s | %s | %s | %s | %s | %.1f |\n' "$n" "$layout" "$runs" "${walls[*]}" "$mw" \
        "$(awk -v n="$n" -v w="$mw" 'BEGIN {print n*n/1e6/w}')" >> "$mmd.tmp"
    done
    rm -f "$d/out-mpi.h5"
  done
  { echo; echo "Load average before the runs: $load_before"; } >> "$mmd.tmp"
  mv "$mmd.tmp" "$mmd"
  cat "$mmd"
  exit 0
fi
if ((align_only)); then
  # Estimation only (`aftermath align`): the estimate time it reports -> Mpx of overlap per
  # second; peak RSS of the whole process, which must not grow with the scene size.
  amd="$here/bench/results/align.md"
  { echo "| size | threads | runs | median estimate s | Mpx of overlap / s | median peak RSS MB | model | shift (px) |"
    echo "|---|---|---|---|---|---|---|---|"; } > "$amd.tmp"
  for n in $sizes; do
    d=$data/$n
    ensure_pair "$n"
    for t in $threads; do
      ests=(); rss=()
      for ((i = 0; i < runs; i++)); do
        /usr/bin/time -v -o "$d/time-align.txt" "$build/aftermath" --log-level warn align --overwrite --threads "$t" \
          --pre "$d/pre.tif" --post "$d/post.tif" --out "$d/align.h5" > "$d/align.txt"
        e=$(sed -n 's/.*(estimate \([0-9.]*\) s.*/\1/p' "$d/align.txt")
        r=$(peak_rss_mb "$d/time-align.txt")
        ests+=("$e"); rss+=("$r")
        echo "bench: align $n px, $t thread(s), run $((i + 1)): estimate ${e}s, ${r} MB" >&2
      done
      me=$(printf '%s\n' "${ests[@]}" | median); mr=$(printf '%s\n' "${rss[@]}" | median)
      model=$(sed -n 's/^alignment   \([a-z]*\).*/\1/p' "$d/align.txt")
      shift_=$(sed -n 's/.*shift (\([^)]*\)).*/\1/p' "$d/align.txt")
      printf '| %s | %s | %s | %s | %.1f | %.0f | %s | %s |\n' "$n" "$t" "$runs" "$me" \
        "$(awk -v n="$n" -v e="$me" 'BEGIN {print n*n/1e6/e}')" "$mr" "$model" "$shift_" >> "$amd.tmp"
    done
  done
  mv "$amd.tmp" "$amd"
  cat "$amd"
  exit 0
fi
if ((rescore_only == 0)); then
echo "[" > "$json.tmp"
{
  echo "| size | threads | runs | median wall s | Mpx/s | median peak RSS MB | output MB per Mpx | I/O floor s (median) | run / floor (median of rounds) |"
  echo "|---|---|---|---|---|---|---|---|---|"
} > "$md.tmp"
eff_lines=()
profiles=()
first=1
for n in $sizes; do
  d=$data/$n
  ensure_pair "$n"
  # Round by round, at each thread count, the I/O floor and then the run (see the top): on a
  # shared machine whose speed drifts over minutes, a ratio of two medians taken minutes apart
  # drifts with it.
  declare -A floors_of=() walls_of=() rss_of=()
  for ((i = 0; i < runs; i++)); do
    for t in $threads; do
      f=$("$build/bench/aftermath_io_floor" "$d/pre.tif" "$d/post.tif" "$d/floor.h5" "$t" | sed -n 's/.*"total_s": \([0-9.]*\).*/\1/p')
      rm -f "$d/floor.h5"
      echo "bench: I/O floor $n px, $t thread(s), round $((i + 1)): ${f}s" >&2
      rm -f "$d/out.h5"
      /usr/bin/time -v -o "$d/time.txt" "$build/aftermath" --log-level warn run --threads "$t" --profile \
        --pre "$d/pre.tif" --post "$d/post.tif" --footprints "$d/buildings.geojson" --out "$d/out.h5" >"$d/run-$t.txt"
      w=$(wall_s "$d/time.txt")
      r=$(peak_rss_mb "$d/time.txt")
      floors_of[$t]+="$f "; walls_of[$t]+="$w "; rss_of[$t]+="$r "
      echo "bench: $n px, $t thread(s), round $((i + 1)): ${w}s, ${r} MB" >&2
    done
  done
  for t in $threads; do
    read -ra floors <<<"${floors_of[$t]}"; read -ra walls <<<"${walls_of[$t]}"; read -ra rss <<<"${rss_of[$t]}"
    mf=$(printf '%s\n' "${floors[@]}" | median)
    mw=$(printf '%s\n' "${walls[@]}" | median); mr=$(printf '%s\n' "${rss[@]}" | median)
    mpx=$(awk -v n="$n" -v w="$mw" 'BEGIN {printf "%.1f", n*n/1e6/w}')
    per_mpx=$(awk -v b="$(stat -c %s "$d/out.h5")" -v n="$n" 'BEGIN {printf "%.2f", b/1e6/(n*n/1e6)}')
    # The median of the rounds' own run / floor ratios.
    ratio=$(for ((i = 0; i < ${#walls[@]}; i++)); do awk -v w="${walls[i]}" -v f="${floors[i]}" 'BEGIN {print w/f}'; done | median)
    ratio=$(awk -v r="$ratio" 'BEGIN {printf "%.2f", r}')
    ((first)) || echo "," >> "$json.tmp"; first=0
    printf '{"size": %s, "threads": %s, "runs": %s, "wall_s": [%s], "median_wall_s": %s, "mpx_per_s": %s, "peak_rss_mb": [%s], "median_peak_rss_mb": %s, "output_mb_per_mpx": %s, "io_floor_s": [%s], "median_io_floor_s": %s, "run_over_floor": %s}' \
      "$n" "$t" "$runs" "$(IFS=,; echo "${walls[*]}")" "$mw" "$mpx" "$(IFS=,; echo "${rss[*]}")" "$mr" "$per_mpx" \
      "$(IFS=,; echo "${floors[*]}")" "$mf" "$ratio" >> "$json.tmp"
    printf '| %s | %s | %s | %s | %s | %.0f | %s | %s | %s |\n' "$n" "$t" "$runs" "$mw" "$mpx" "$mr" "$per_mpx" "$mf" "$ratio" >> "$md.tmp"
  done
  # The parts of the stages (`run --profile`) of the last run at each thread count.
  for t in $threads; do
    profiles+=("" "$n x $n, $t thread(s), last run (\`aftermath run --profile\`):" "" '```')
    while IFS= read -r line; do profiles+=("$line"); done < <(sed -n '/^time /p; /^profile/,$p' "$d/run-$t.txt")
    profiles+=('```')
  done
  if [[ -n ${walls_of[1]:-} && -n ${walls_of[2]:-} ]]; then
    read -ra w1 <<<"${walls_of[1]}"; read -ra w2 <<<"${walls_of[2]}"
    m1=$(printf '%s\n' "${w1[@]}" | median); m2=$(printf '%s\n' "${w2[@]}" | median)
    rounds=$(for ((i = 0; i < ${#w1[@]}; i++)); do awk -v a="${w1[i]}" -v b="${w2[i]}" 'BEGIN {printf "%.0f%%\n", 100*a/(2*b)}'; done)
    eff=$(printf '%s\n' $rounds | tr -d % | median)
    eff_lines+=("- $n x $n: parallel efficiency 1 -> 2 threads = T1 / (2 T2) = $m1 / (2 x $m2) = $(awk -v a="$m1" -v b="$m2" 'BEGIN {printf "%.0f%%", 100*a/(2*b)}') (medians); round by round $(echo $rounds | sed 's/ /, /g'), median $(awk -v e="$eff" 'BEGIN {printf "%.0f%%", e}')")
  fi
  unset floors_of walls_of rss_of
done
{ echo; printf '%s\n' "${eff_lines[@]}"; printf '%s\n' "${profiles[@]}"; } >> "$md.tmp"
echo "]" >> "$json.tmp"
mv "$json.tmp" "$json"; mv "$md.tmp" "$md"
cat "$md"
fi

# Rescore vs run (docs/analyst.md): `aftermath run` then `aftermath rescore` (new thresholds, from
# the stored scores) on the same pair, medians of --runs. Next to them, the floor of any rescore
# in place: starting the program (`aftermath --version`) plus rewriting the output as the atomic
# commit must (a copy beside it, fsync, rename; no HDF5, no computation). Sizes:
# AFTERMATH_BENCH_RESCORE_SIZES (default 8192). Results: bench/results/rescore.md
rsizes=${AFTERMATH_BENCH_RESCORE_SIZES:-8192}
rmd="$here/bench/results/rescore.md"
{ echo "| size | runs | median run s | median rescore s | run / rescore | rewrite floor s | run / floor |"; echo "|---|---|---|---|---|---|---|"; } > "$rmd.tmp"
for n in $rsizes; do
  d=$data/$n
  ensure_pair "$n"
  rw=(); sw=(); fw=()
  for ((i = 0; i < runs; i++)); do
    t0=$(date +%s.%N)
    "$build/aftermath" --log-level warn run --overwrite --pre "$d/pre.tif" --post "$d/post.tif" \
      --footprints "$d/buildings.geojson" --out "$d/out.h5" >/dev/null
    t1=$(date +%s.%N)
    "$build/aftermath" --log-level warn rescore "$d/out.h5" --set threshold.value=0.6 --set damage.minor=0.2 >/dev/null
    t2=$(date +%s.%N)
    "$build/aftermath" --version >/dev/null
    cp "$d/out.h5" "$d/out.h5.floor" && sync "$d/out.h5.floor" && mv "$d/out.h5.floor" "$d/out.h5"
    t3=$(date +%s.%N)
    rw+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')"); sw+=("$(awk -v a="$t1" -v b="$t2" 'BEGIN {printf "%.3f", b - a}')")
    fw+=("$(awk -v a="$t2" -v b="$t3" 'BEGIN {printf "%.3f", b - a}')")
    echo "bench: rescore $n px, round $((i + 1)): run ${rw[-1]} s, rescore ${sw[-1]} s, rewrite floor ${fw[-1]} s" >&2
  done
  mrun=$(printf '%s\n' "${rw[@]}" | median); mres=$(printf '%s\n' "${sw[@]}" | median)
  mfl=$(printf '%s\n' "${fw[@]}" | median)
  printf '| %s | %s | %s | %s | %.1f | %s | %.1f |\n' "$n" "$runs" "$mrun" "$mres" \
    "$(awk -v a="$mrun" -v b="$mres" 'BEGIN {print a / b}')" "$mfl" "$(awk -v a="$mrun" -v b="$mfl" 'BEGIN {print a / b}')" >> "$rmd.tmp"
done
mv "$rmd.tmp" "$rmd"
cat "$rmd"
