#pragma once
/// @file batch.hpp
/// Runs validated jobs one after another: skips those whose output is up to date, locks each
/// output, cleans stale temporary files, isolates failures, and reports (docs/batch.md).
#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "aftermath/batch/hash_cache.hpp"
#include "aftermath/batch/manifest.hpp"
#include "aftermath/batch/shard.hpp"

namespace aftermath::batch {

enum class JobStatus {
  done,        ///< computed and written
  up_to_date,  ///< skipped: the output's record matches the inputs, config and version
  failed,      ///< the job failed (error recorded); the batch went on
  locked,      ///< skipped: another live process holds the output's lock
  would_run,   ///< --dry-run: the job would be computed (see reason)
};
const char* to_string(JobStatus status);

/// Exit codes of `aftermath batch` (docs/batch.md).
inline constexpr int kExitAllDone = 0;      ///< every job done, up to date or locked; or nothing to do
inline constexpr int kExitAllFailed = 1;    ///< every job failed
inline constexpr int kExitUsage = 2;        ///< manifest or usage error: nothing ran
inline constexpr int kExitReport = 3;       ///< the report could not be written
inline constexpr int kExitSomeFailed = 4;   ///< some jobs failed, the others are done

/// What an output holds, read back for the report (counts of damage classes per feature).
struct OutputCounts {
  std::int64_t features = 0, no_data = 0, outside = 0;
  std::array<std::int64_t, 4> class_counts{};  ///< no-damage, minor, major, destroyed
  std::optional<std::int64_t> valid_pixels, changed_pixels;
  std::optional<double> threshold;
  std::vector<std::string> warnings;
};

struct JobReport {
  std::size_t index = 0;
  std::string name;
  JobStatus status = JobStatus::failed;
  std::string reason;       ///< why it ran or was skipped
  std::string error;        ///< the error message of a failed job
  std::string error_kind;   ///< usage | input | output | internal
  double duration_s = 0;
  std::string output, pre, post, footprints;
  std::optional<OutputCounts> counts;
};

/// Whether an output is up to date, and why not.
struct Freshness {
  bool up_to_date = false;
  std::string reason;
};

/// The up-to-date rule: the output exists, opens as HDF5, and its recorded input SHA-256s,
/// config_sha256 (of to_yaml of the job's resolved config) and aftermath_version equal the
/// current ones. Input hashes come through `cache`.
Freshness check_output(const ResolvedJob& job, HashCache& cache);

/// Reads the per-class feature counts of an existing output; nullopt if it cannot be read.
std::optional<OutputCounts> read_output_counts(const std::string& output);

struct BatchOptions {
  bool force = false;    ///< recompute even when up to date
  bool dry_run = false;  ///< list what would run and why; write nothing, take no lock
  Shard shard;
  int threads = 0;       ///< worker threads per job (0 = all cores)
};

struct BatchResult {
  std::vector<JobReport> jobs;  ///< this shard's jobs, in manifest order
  std::size_t manifest_jobs = 0;
  double duration_s = 0;
  std::string started, finished;  ///< UTC, ISO 8601
  int exit_code = kExitAllDone;
  std::string outcome;  ///< "nothing to do" | "all done" | "some failed" | "all failed"
};

/// Called after each job (for progress lines).
using JobCallback = std::function<void(const JobReport&)>;

/// Runs this shard's jobs in manifest order. Never throws for a job's failure: it is recorded
/// and the batch goes on.
BatchResult run_batch(const std::vector<ResolvedJob>& jobs, const BatchOptions& options, HashCache& cache,
                      const JobCallback& on_job = {});

/// Exit code from the job statuses: 0 none failed (or no jobs), 1 all failed, 4 some failed.
int batch_exit_code(const std::vector<JobReport>& jobs);
std::string batch_outcome(const std::vector<JobReport>& jobs);

/// The JSON report (docs/batch.md "Report").
std::string report_json(const BatchResult& result, const std::string& source, const BatchOptions& options);
/// Writes `text` to `path` atomically (temporary file beside it, fsync, rename). Throws Error(output).
void write_file_atomically(const std::string& path, const std::string& text);

}  // namespace aftermath::batch
