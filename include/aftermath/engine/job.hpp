#pragma once
/// @file job.hpp
/// One job: a pre/post pair (+ optional footprints) through plan -> estimate -> score ->
/// classify -> write. The engine owns the parallelism (oneTBB); every stage it calls is a plain
/// function. Errors are aftermath::Error with stage/scene/tile context; the CLI maps their kind
/// to an exit code.
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "aftermath/config/config.hpp"
#include "aftermath/core/grid.hpp"

namespace aftermath {

struct RunRequest {
  std::string pre;               ///< any GDAL raster
  std::string post;              ///< any GDAL raster; any CRS/resolution/extent overlapping pre
  /// Further scenes of the same place, before and after (stacks for detect.method ttest): read
  /// onto the grid like pre and post, with the same bands; the post stack gets the post scene's
  /// registration and normalisation (it is assumed co-registered with it, e.g. one SAR orbit).
  std::vector<std::string> more_pre, more_post;
  std::string footprints;        ///< optional vector file or xBD label JSON
  std::string footprint_layer;   ///< OGR layer when the file has several
  std::string out;               ///< output .h5 (written atomically)
  std::string quicklook;         ///< optional PNG: pre | post (footprints by class) | score
  std::string config_path;       ///< where `config` came from (provenance only), "" = defaults
  JobConfig config;
  int threads = 0;               ///< 0 = all cores
  bool overwrite = false;        ///< replace an existing output (atomically)
  /// Optional: reuse the registration stored in this file (`aftermath align --out`, or a run's
  /// output) instead of estimating it; it must have been estimated on the same analysis grid.
  std::string alignment;
  /// Under mpirun/srun (README "MPI"): every rank calls run_job with the same request and the job's
  /// tiles are split over the ranks, written collectively into one output. false: this process
  /// runs the job alone, as in a plain run (e.g. `aftermath batch` hands whole jobs to ranks).
  bool across_ranks = false;
};

struct StageTimes {
  double plan = 0, estimate = 0, score = 0, finalize = 0, total = 0;  ///< seconds
  /// The parts of the stages (`aftermath run --profile`), in order: name and seconds. Parts of
  /// the parallel tile stage are thread-seconds summed over tiles (they add up to about the
  /// threads x the stage's wall time); the others are wall time.
  std::vector<std::pair<std::string, double>> parts;
};

struct RunSummary {
  std::string output;
  Grid grid;
  std::string crs_name;
  std::string alignment_model;
  std::string alignment_method;           ///< how the tie points were found ("" for identity)
  double shift_x = 0, shift_y = 0;        ///< px, post(p + shift) = pre(p)
  double rmse_before = 0, rmse_after = 0; ///< tie-point RMS before/after, px
  int ties_kept = 0, ties_dropped = 0;
  double threshold = 0;                   ///< score threshold used
  std::int64_t valid_pixels = 0, changed_pixels = 0;
  std::int64_t features = 0, outside = 0, no_data = 0;
  std::array<std::int64_t, 4> class_counts{};  ///< no-damage, minor, major, destroyed (xBD scale)
  std::int64_t sites = -1;                     ///< damage sites; -1 = not computed (sites.enabled false)
  std::string scheme;                          ///< damage.scheme
  std::array<std::int64_t, 5> grade_counts{};  ///< scored features per class of the scheme
  std::array<std::int64_t, 4> kind_counts{};   ///< features per kind: building, road, infrastructure, rail
  std::vector<std::string> warnings;
  StageTimes times;
};

/// Progress callback: stage name, done, total.
using ProgressFn = std::function<void(const std::string& stage, std::int64_t done, std::int64_t total)>;

/// Asks running jobs to stop at the next tile (async-signal-safe: a lock-free atomic store), so
/// that SIGINT/SIGTERM end a run cleanly: the job throws Error("interrupted") and its temporary
/// output is removed.
void request_cancel() noexcept;
bool cancel_requested() noexcept;

/// Held by main() for the life of the process: its destructor waits until the worker threads
/// the engine (and OpenCV, through the same oneTBB) started have ended, so that none is still
/// ending while the process's exit handlers run. (LeakSanitizer's exit-time check, in CI, crashed
/// on such a thread now and then, or reported the OpenSSL state a thread was freeing as a leak.)
/// Where oneTBB cannot join them safely, they are left and the process exits as before.
class WorkerThreadsJoinedAtExit {
 public:
  WorkerThreadsJoinedAtExit();
  ~WorkerThreadsJoinedAtExit();
  WorkerThreadsJoinedAtExit(const WorkerThreadsJoinedAtExit&) = delete;
  WorkerThreadsJoinedAtExit& operator=(const WorkerThreadsJoinedAtExit&) = delete;

 private:
  struct Handle;
  std::unique_ptr<Handle> handle_;
};

/// Runs one job. Validates every input and the output location before reading a pixel. Throws
/// Error on failure, after removing any temporary output.
RunSummary run_job(const RunRequest& request, const ProgressFn& progress = {});

/// `aftermath align`: estimation only, on the analysis grid of a pre/post pair.
struct AlignRequest {
  std::string pre, post;         ///< as RunRequest
  std::string out;               ///< HDF5 with the /alignment group (reusable by `run --alignment`)
  std::string write_aligned;     ///< optional GeoTIFF: the post scene resampled onto the analysis grid
  std::string config_path;       ///< provenance only
  JobConfig config;
  int threads = 0;               ///< 0 = all cores
  bool overwrite = false;
};

struct AlignSummary {
  std::string output, aligned;
  Grid grid;
  std::string crs_name;
  std::string model, method;               ///< registration model and how its tie points were found
  double shift_x = 0, shift_y = 0;         ///< displacement at the grid centre, px
  double max_displacement = 0;             ///< bound of |d| over the grid, px
  double rmse_before = 0, rmse_after = 0;  ///< tie-point RMS before/after, px
  double cv_rmse = 0;                      ///< cross-validated tie-point residual RMS, px
  int ties_kept = 0, ties_dropped = 0;
  std::vector<std::string> warnings;
  double estimate_seconds = 0, total_seconds = 0;
  double overlap_mpx = 0;                  ///< analysis grid size, Mpx
  double estimate_mpx_per_s = 0;           ///< overlap_mpx / estimate_seconds
};

/// Plans like run_job, estimates the registration (parallel over tie-point windows, reading only
/// those windows), writes `out` (atomically) and, if asked, the aligned post GeoTIFF (tile by tile).
AlignSummary align_job(const AlignRequest& request);

}  // namespace aftermath
