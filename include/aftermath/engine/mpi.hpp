#pragma once
/// @file mpi.hpp
/// MPI for the whole process (README "MPI"). A process started by an MPI launcher (mpirun,
/// mpiexec, srun) joins MPI_COMM_WORLD; `aftermath run` then splits its job's tiles over the
/// ranks and `aftermath batch` hands whole jobs to them. A process started plainly never
/// initialises MPI and behaves as a build without MPI. No MPI type appears here.

namespace aftermath {

/// Initialises MPI (threads: funnelled, every MPI call comes from the main thread) when the
/// process was started by an MPI launcher and the build has MPI (AFTERMATH_MPI); finalises it on
/// destruction. One per process, in main(), before any other aftermath call.
class MpiSession {
 public:
  MpiSession(int& argc, char**& argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  /// The exit code to return from main() after a command failed with `code`: when the ranks
  /// agreed on the failure (every rank threw the same error), `code`; when this rank failed
  /// alone, MPI_Abort(code) instead, so that no other rank waits for it in a collective forever.
  int exit_after_failure(int code);
};

/// True when MPI is initialised (the process was started under mpirun/srun).
bool mpi_active() noexcept;
/// This process's rank in MPI_COMM_WORLD (0 when MPI is not active).
int mpi_world_rank() noexcept;
/// The number of ranks in MPI_COMM_WORLD (1 when MPI is not active).
int mpi_world_size() noexcept;
/// True once this process has thrown an error that every rank agreed on (each rank throws the
/// same error, and exits with its code).
bool mpi_failure_agreed() noexcept;

}  // namespace aftermath
