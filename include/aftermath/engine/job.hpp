#pragma once
/// @file job.hpp
/// One job: a pre/post pair (+ optional footprints) through plan -> estimate -> score ->
/// classify -> write. The engine owns the parallelism (oneTBB); every stage it calls is a plain
/// function. Errors are aftermath::Error with stage/scene/tile context; the CLI maps their kind
/// to an exit code.
#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "aftermath/config/config.hpp"
#include "aftermath/core/grid.hpp"

namespace aftermath {

struct RunRequest {
  std::string pre;               ///< any GDAL raster
  std::string post;              ///< any GDAL raster; any CRS/resolution/extent overlapping pre
  std::string footprints;        ///< optional vector file or xBD label JSON
  std::string footprint_layer;   ///< OGR layer when the file has several
  std::string out;               ///< output .h5 (written atomically)
  std::string quicklook;         ///< optional PNG: pre | post (footprints by class) | score
  std::string config_path;       ///< where `config` came from (provenance only), "" = defaults
  JobConfig config;
  int threads = 0;               ///< 0 = all cores
  bool overwrite = false;        ///< replace an existing output (atomically)
};

struct StageTimes {
  double plan = 0, estimate = 0, score = 0, finalize = 0, total = 0;  ///< seconds
};

struct RunSummary {
  std::string output;
  Grid grid;
  std::string crs_name;
  std::string alignment_model;
  double shift_x = 0, shift_y = 0;        ///< px, post(p + shift) = pre(p)
  double rmse_before = 0, rmse_after = 0; ///< tie-point RMS before/after, px
  int ties_kept = 0, ties_dropped = 0;
  double threshold = 0;                   ///< score threshold used
  std::int64_t valid_pixels = 0, changed_pixels = 0;
  std::int64_t features = 0, outside = 0, no_data = 0;
  std::array<std::int64_t, 4> class_counts{};  ///< no-damage, minor, major, destroyed
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

/// Runs one job. Validates every input and the output location before reading a pixel. Throws
/// Error on failure, after removing any temporary output.
RunSummary run_job(const RunRequest& request, const ProgressFn& progress = {});

}  // namespace aftermath
