#!/usr/bin/env bash
# Installs what aftermath needs on Debian 12 (skipping what is already there) and builds Release.
# Usage: scripts/setup.sh [--no-build]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

# Debian packages, and why each is here (see README "Dependencies").
packages=(
  g++ cmake make pkg-config           # toolchain
  libgdal-dev gdal-bin                # raster/vector I/O and reprojection; gdalinfo for checks
  libopencv-dev                       # image algorithms (DFT, warps, morphology)
  libtbb-dev                          # the parallel tile pipeline
  libhdf5-dev hdf5-tools              # the output file; h5dump for checks
  openmpi-bin libopenmpi-dev          # one scene over many nodes: ranks under mpirun/srun (AFTERMATH_MPI)
  libhdf5-openmpi-dev                 # parallel HDF5: all ranks write one file collectively
  libdeflate-dev                      # fast deflate for HDF5 chunks, compressed in parallel
  zlib1g-dev                          # the damage mask's chunks: zlib's run-length deflate
  libssl-dev                          # SHA-256 of inputs (provenance, idempotence)
  libspdlog-dev libfmt-dev            # logging and formatting
  libyaml-cpp-dev                     # the YAML config
  libcli11-dev                        # the command line
  nlohmann-json3-dev                  # JSON (xBD labels, reports, JSON logs)
  libgtest-dev libbenchmark-dev       # tests and benchmarks
  python3-xarray python3-h5netcdf     # tests: xarray opens the HDF5 output (e2e_export_xarray)
  jq                                  # tests: reading the batch JSON report
  chromium                            # tests: the HTML report in headless Chromium (e2e_report_chromium)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) == 0 ]] || sudo=sudo
  echo "setup: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[[ ${1:-} == --no-build ]] && exit 0

build=${AFTERMATH_BUILD_DIR:-$here/build}
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release -DAFTERMATH_WERROR=${AFTERMATH_WERROR:-OFF} >/dev/null
cmake --build "$build" -j"$(nproc)"
echo "setup: built $build/aftermath" >&2
