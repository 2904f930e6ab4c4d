# Helpers of the MPI end-to-end tests (sourced after lib.sh). Arguments after lib.sh's three:
# MPIEXEC (mpirun) and, for some tests, a rank count.
MPIEXEC=$4
# Open MPI refuses root unless told, and binds each rank to one core unless told (TBB inside a
# rank would then see one core); in containers its shared-memory transport cannot use
# cross-memory attach, so it copies.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
# mpi_run NP ARGS...: runs ARGS on NP ranks (more ranks than cores allowed), killed after 90 s so
# that a hang fails the test instead of blocking it.
mpi_run() {
  local np=$1; shift
  timeout -k 10 90 "$MPIEXEC" --bind-to none --oversubscribe -np "$np" "$@"
}
# dump_normalised FILE: the whole file as h5dump text (every dataset's values, every attribute),
# without what differs between two runs of the same job: the file name, the creation time
# (`created`, `history`) and object addresses in dimension-scale references.
dump_normalised() {
  h5dump "$1" | tail -n +2 | awk '
    skip { if ($0 == indent "}") skip = 0; next }
    /^ *ATTRIBUTE "(created|history)" \{$/ { match($0, /^ */); indent = substr($0, 1, RLENGTH); skip = 1; next }
    { print }' | sed -E 's/DATASET [0-9]+ /DATASET /g'
}
