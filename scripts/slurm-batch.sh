#!/usr/bin/env bash
# Slurm job array: N tasks share one manifest; task i runs the jobs whose manifest index mod N == i
# (aftermath batch --shard i/N). All N shards together do exactly what one unsharded run does.
# Submit:   sbatch --array=0-15 scripts/slurm-batch.sh /shared/aftermath/manifest.yaml
# Re-submitting after a failure, a timeout or a node crash redoes only what is missing.
#SBATCH --job-name=aftermath-batch
#SBATCH --cpus-per-task=8
#SBATCH --mem=16G
#SBATCH --time=04:00:00
#SBATCH --output=logs/aftermath-%A_%a.log
set -euo pipefail
manifest=${1:?usage: sbatch --array=0-N scripts/slurm-batch.sh MANIFEST.yaml}
: "${SLURM_ARRAY_TASK_ID:?run as a Slurm job array (sbatch --array=...)}"
count=${SLURM_ARRAY_TASK_COUNT:-$((SLURM_ARRAY_TASK_MAX - SLURM_ARRAY_TASK_MIN + 1))}
index=$((SLURM_ARRAY_TASK_ID - ${SLURM_ARRAY_TASK_MIN:-0}))  # 0-based even for --array=1-16
reports=$(dirname "$manifest")/reports
mkdir -p "$reports"
# One report per task (the default name also carries the shard); outputs are locked per file, so
# a re-submitted array overlapping a running one never writes a file twice.
set +e
aftermath --log-level info batch "$manifest" \
  --shard "$index/$count" \
  --threads "${SLURM_CPUS_PER_TASK:-0}" \
  --report "$reports/shard-$index-of-$count.json"
rc=$?
set -e
# 0 all done or up to date; 4 some failed; 1 all failed; 2 bad manifest; 3 report not written.
case $rc in
  0) echo "shard $index/$count: all done" ;;
  4) echo "shard $index/$count: some jobs failed, see $reports" >&2 ;;
  *) echo "shard $index/$count: exit $rc" >&2 ;;
esac
exit $rc
