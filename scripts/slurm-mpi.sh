#!/usr/bin/env bash
# One scene too big for one node, over several nodes with MPI (README "MPI"). Submit with
#   sbatch [--nodes=N] [--ntasks-per-node=R] [--cpus-per-task=T] scripts/slurm-mpi.sh \
#     --pre pre.tif --post post.tif --footprints buildings.gpkg --out /shared/damage.h5
# The arguments are those of `aftermath run`; do not give --threads (it is T).
#
# Knobs:
#   --nodes=N             nodes
#   --ntasks-per-node=R   ranks per node: 1 per node, or 1 per socket / NUMA domain on large nodes
#                         (each rank reads its own block of tile rows and keeps its own GDAL cache)
#   --cpus-per-task=T     threads per rank: the TBB pipeline inside each rank (aftermath --threads);
#                         R x T = the cores of a node
#   AFTERMATH=path        the binary (default: build/aftermath of the submitting directory), built
#                         with MPI (scripts/setup.sh on a node: CMake option AFTERMATH_MPI)
#   AFTERMATH_SRUN_MPI    srun's MPI plugin (default pmix; `srun --mpi=list` shows the site's)
# The inputs and the output directory must be on a file system every node sees (Lustre, GPFS,
# BeeGFS; NFS only with locking as MPI-IO requires). The output is written under a temporary
# name beside it and renamed when complete, as in a one-process run.
#SBATCH --job-name=aftermath-mpi
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=16
#SBATCH --time=02:00:00
#SBATCH --output=aftermath-mpi-%j.log
set -euo pipefail
aftermath=${AFTERMATH:-${SLURM_SUBMIT_DIR:-.}/build/aftermath}
threads=${SLURM_CPUS_PER_TASK:-1}
# GDAL's block cache per rank (MB): a few tile rows of both scenes.
export GDAL_CACHEMAX=${GDAL_CACHEMAX:-512}
# srun gives each rank its T CPUs (the rank's TBB sees exactly them). With mpirun instead, add
# --bind-to none (or --map-by node:PE=T), or Open MPI binds each rank to one core.
exec srun --mpi="${AFTERMATH_SRUN_MPI:-pmix}" --cpus-per-task="$threads" \
  "$aftermath" run --threads "$threads" "$@"
