// run_batch: up-to-date check, per-output lock, stale temporary files, isolated failures, report.
#include "aftermath/batch/batch.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "aftermath/batch/lock.hpp"
#include "aftermath/core/error.hpp"
#include "aftermath/core/util.hpp"
#include "aftermath/engine/job.hpp"
#include "aftermath/io/hdf5_reader.hpp"
#include "aftermath/io/scene.hpp"

namespace aftermath::batch {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::ordered_json;

namespace {


double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

const char* kind_name(ErrorKind k) {
  switch (k) {
    case ErrorKind::usage: return "usage";
    case ErrorKind::input: return "input";
    case ErrorKind::output: return "output";
    case ErrorKind::internal: return "internal";
  }
  return "internal";
}

// The provenance record of an existing output.
struct Record {
  std::optional<std::string> version, config_sha, pre_sha, post_sha, footprints_sha;
  bool has_score = false;
};

Record read_record(const std::string& output) {
  Hdf5Reader h(output);
  Record r;
  r.has_score = h.has("/change_score") && h.has("/damage_mask");
  r.version = h.string_attribute("/", "aftermath_version");
  r.config_sha = h.string_attribute("/", "config_sha256");
  r.pre_sha = h.string_attribute("/", "input_pre_sha256");
  r.post_sha = h.string_attribute("/", "input_post_sha256");
  r.footprints_sha = h.string_attribute("/", "input_footprints_sha256");
  return r;
}

}  // namespace

const char* to_string(JobStatus s) {
  switch (s) {
    case JobStatus::done: return "done";
    case JobStatus::up_to_date: return "up_to_date";
    case JobStatus::failed: return "failed";
    case JobStatus::locked: return "locked";
    case JobStatus::would_run: return "would_run";
  }
  return "failed";
}

Freshness check_output(const ResolvedJob& job, HashCache& cache) {
  const std::string& out = job.job.out;
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(out, ec))) return {false, "output missing"};
  Record rec;
  try {
    rec = read_record(out);
  } catch (const std::exception& e) {
    return {false, fmt::format("existing output unreadable, replacing it ({})", e.what())};
  }
  if (!rec.has_score) return {false, "existing output incomplete (no change_score/damage_mask), replacing it"};
  if (!rec.version || !rec.config_sha || !rec.pre_sha || !rec.post_sha) {
    return {false, "existing output has no provenance record, replacing it"};
  }
  if (*rec.version != AFTERMATH_VERSION) {
    return {false, fmt::format("aftermath version changed ({} -> {})", *rec.version, AFTERMATH_VERSION)};
  }
  if (*rec.config_sha != sha256_text(to_yaml(job.config))) return {false, "config changed"};
  if (*rec.pre_sha != cache.sha256(job.pre)) return {false, "pre scene changed"};
  if (*rec.post_sha != cache.sha256(job.post)) return {false, "post scene changed"};
  if (job.job.footprints.empty()) {
    if (rec.footprints_sha) return {false, "footprints removed from the job"};
  } else {
    if (!rec.footprints_sha) return {false, "footprints added to the job"};
    if (*rec.footprints_sha != cache.sha256(job.job.footprints)) return {false, "footprints changed"};
  }
  return {true, "inputs, config and version match the output's record"};
}

std::optional<OutputCounts> read_output_counts(const std::string& output) {
  try {
    Hdf5Reader h(output);
    OutputCounts c;
    if (h.has("/footprints/damage_class") && h.has("/footprints/status")) {
      const auto cls = h.column_uint8("footprints/damage_class");
      const auto status = h.column_uint8("footprints/status");
      c.features = static_cast<std::int64_t>(cls.size());
      for (std::size_t i = 0; i < cls.size() && i < status.size(); ++i) {
        if (status[i] == 2) ++c.outside;
        else if (status[i] == 1) ++c.no_data;
        else if (cls[i] < 4) ++c.class_counts[cls[i]];
      }
    }
    c.threshold = h.number_attribute("/", "threshold");
    return c;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

int batch_exit_code(const std::vector<JobReport>& jobs) {
  std::size_t failed = 0;
  for (const auto& j : jobs) failed += j.status == JobStatus::failed;
  if (failed == 0) return kExitAllDone;
  return failed == jobs.size() ? kExitAllFailed : kExitSomeFailed;
}

std::string batch_outcome(const std::vector<JobReport>& jobs) {
  if (jobs.empty()) return "nothing to do";
  switch (batch_exit_code(jobs)) {
    case kExitAllFailed: return "all failed";
    case kExitSomeFailed: return "some failed";
    default: return "all done";
  }
}

namespace {

void run_one(const ResolvedJob& r, const BatchOptions& options, HashCache& cache, JobReport& rep) {
  const std::string& out = r.job.out;
  LockAttempt attempt = try_lock_output(out);
  if (!attempt.lock) {
    rep.status = JobStatus::locked;
    rep.reason = "output locked by " + attempt.holder;
    spdlog::info("job {}: skipped, {}", r.job.name, rep.reason);
    return;
  }
  if (!attempt.stale.empty()) spdlog::warn("job {}: took over the stale lock {} ({})", r.job.name, attempt.lock->path(), attempt.stale);
  for (const auto& p : remove_stale_temps(out)) spdlog::warn("job {}: removed stale temporary file {}", r.job.name, p);
  const Freshness f = options.force ? Freshness{false, "--force"} : check_output(r, cache);
  rep.reason = f.reason;
  if (f.up_to_date) {
    rep.status = JobStatus::up_to_date;
    rep.counts = read_output_counts(out);
    spdlog::info("job {}: up to date", r.job.name);
    return;
  }
  spdlog::info("job {}: run ({})", r.job.name, f.reason);
  RunRequest req;
  req.pre = r.pre;
  req.post = r.post;
  req.footprints = r.job.footprints;
  req.footprint_layer = r.job.footprint_layer;
  req.out = out;
  req.config_path = r.config_path;
  req.config = r.config;
  req.threads = options.threads;
  req.overwrite = true;  // we hold the lock and the existing output is not up to date
  std::vector<std::pair<std::string, std::optional<FileStamp>>> stamps;
  for (const auto& p : {r.pre, r.post, r.job.footprints}) stamps.emplace_back(p, p.empty() ? std::nullopt : stamp_file(p));
  const RunSummary s = run_job(req);
  rep.status = JobStatus::done;
  OutputCounts c;
  c.features = s.features;
  c.no_data = s.no_data;
  c.outside = s.outside;
  c.class_counts = s.class_counts;
  c.valid_pixels = s.valid_pixels;
  c.changed_pixels = s.changed_pixels;
  c.threshold = s.threshold;
  c.warnings = s.warnings;
  rep.counts = c;
  // The engine hashed the inputs into the output: remember those hashes for the next run.
  try {
    const Record rec = read_record(out);
    const std::optional<std::string>* shas[] = {&rec.pre_sha, &rec.post_sha, &rec.footprints_sha};
    for (std::size_t i = 0; i < stamps.size(); ++i) {
      if (stamps[i].second && *shas[i]) cache.remember(stamps[i].first, *stamps[i].second, **shas[i]);
    }
  } catch (const std::exception& e) {
    spdlog::warn("job {}: cannot read back the output's record ({})", r.job.name, e.what());
  }
}

}  // namespace

BatchResult run_batch(const std::vector<ResolvedJob>& jobs, const BatchOptions& options, HashCache& cache,
                      const JobCallback& on_job) {
  BatchResult res;
  const auto t0 = Clock::now();
  res.started = utc_timestamp();
  res.manifest_jobs = jobs.empty() ? 0 : jobs.back().index + 1;
  for (const ResolvedJob& r : jobs) {
    if (!in_shard(r.index, options.shard)) continue;
    JobReport rep;
    rep.index = r.index;
    rep.name = r.job.name;
    rep.output = r.job.out;
    rep.pre = r.pre;
    rep.post = r.post;
    rep.footprints = r.job.footprints;
    const auto tj = Clock::now();
    if (cancel_requested()) {
      // SIGINT/SIGTERM: do not start another job; say so for each one left.
      rep.status = JobStatus::failed;
      rep.error = "not run: the batch was interrupted (signal)";
      rep.error_kind = "internal";
      res.jobs.push_back(std::move(rep));
      continue;
    }
    try {
      if (options.dry_run) {
        const Freshness f = options.force ? Freshness{false, "--force"} : check_output(r, cache);
        rep.status = f.up_to_date ? JobStatus::up_to_date : JobStatus::would_run;
        rep.reason = f.reason;
        if (f.up_to_date) rep.counts = read_output_counts(r.job.out);
      } else {
        run_one(r, options, cache, rep);
      }
    } catch (const Error& e) {
      rep.status = JobStatus::failed;
      rep.error = e.what();
      rep.error_kind = kind_name(e.kind());
      spdlog::error("job {}: failed: {}", r.job.name, e.what());
    } catch (const std::exception& e) {
      rep.status = JobStatus::failed;
      rep.error = std::string("internal error: ") + e.what();
      rep.error_kind = "internal";
      spdlog::error("job {}: failed: {}", r.job.name, rep.error);
    }
    rep.duration_s = since(tj);
    if (on_job) on_job(rep);
    res.jobs.push_back(std::move(rep));
  }
  res.exit_code = batch_exit_code(res.jobs);
  res.outcome = options.dry_run ? std::string("dry run") : batch_outcome(res.jobs);
  res.finished = utc_timestamp();
  res.duration_s = since(t0);
  return res;
}

std::string report_json(const BatchResult& res, const std::string& source, const BatchOptions& options) {
  Json counts = {{"jobs", res.jobs.size()}, {"done", 0}, {"up_to_date", 0}, {"failed", 0}, {"locked", 0}, {"would_run", 0}};
  Json jobs = Json::array();
  for (const auto& j : res.jobs) {
    counts[to_string(j.status)] = counts[to_string(j.status)].get<int>() + 1;
    Json o = {{"index", j.index},
              {"name", j.name},
              {"status", to_string(j.status)},
              {"reason", j.reason},
              {"duration_s", std::round(j.duration_s * 1000.0) / 1000.0},
              {"output", j.output},
              {"error", j.error.empty() ? Json(nullptr) : Json(j.error)},
              {"error_kind", j.error_kind.empty() ? Json(nullptr) : Json(j.error_kind)},
              {"inputs", {{"pre", j.pre}, {"post", j.post}, {"footprints", j.footprints.empty() ? Json(nullptr) : Json(j.footprints)}}}};
    if (j.counts) {
      const auto& c = *j.counts;
      Json s = {{"features", c.features},
                {"classes", {{"no_damage", c.class_counts[0]}, {"minor_damage", c.class_counts[1]},
                             {"major_damage", c.class_counts[2]}, {"destroyed", c.class_counts[3]}}},
                {"no_data", c.no_data},
                {"outside", c.outside}};
      if (c.valid_pixels) s["valid_pixels"] = *c.valid_pixels;
      if (c.changed_pixels) s["changed_pixels"] = *c.changed_pixels;
      if (c.threshold) s["threshold"] = *c.threshold;
      if (!c.warnings.empty()) s["warnings"] = c.warnings;
      o["summary"] = s;
    } else {
      o["summary"] = nullptr;
    }
    jobs.push_back(o);
  }
  Json r = {{"format", "aftermath-batch-report/1"},
            {"aftermath_version", AFTERMATH_VERSION},
            {"manifest", source},
            {"host", host_name()},
            {"pid", static_cast<long>(::getpid())},
            {"started", res.started},
            {"finished", res.finished},
            {"duration_s", std::round(res.duration_s * 1000.0) / 1000.0},
            {"options", {{"force", options.force}, {"dry_run", options.dry_run}, {"threads", options.threads}}},
            {"shard", {{"index", options.shard.index}, {"count", options.shard.count}}},
            {"manifest_jobs", res.manifest_jobs},
            {"exit_code", res.exit_code},
            {"outcome", res.outcome},
            {"counts", counts},
            {"jobs", jobs}};
  return r.dump(2) + "\n";
}

void write_file_atomically(const std::string& path, const std::string& text) {
  const fs::path target(path);
  fs::path dir = target.parent_path();
  if (dir.empty()) dir = ".";
  std::error_code ec;
  if (!fs::exists(dir, ec)) fs::create_directories(dir, ec);
  remove_stale_temps(path);
  std::random_device rd;
  const std::string tmp = (dir / fmt::format(".{}.tmp-{}-{:016x}", target.filename().string(), ::getpid(),
                                             (std::uint64_t(rd()) << 32) ^ rd())).string();
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(ErrorKind::output, fmt::format("{}: cannot create {} ({})", path, tmp, std::strerror(errno)));
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw Error(ErrorKind::output, fmt::format("{}: cannot write ({})", path, std::strerror(err)));
    }
    done += static_cast<std::size_t>(n);
  }
  const int sync_rc = ::fsync(fd);
  const int sync_err = errno;
  const int close_rc = ::close(fd);
  if (sync_rc != 0 || close_rc != 0) {
    const int err = sync_rc != 0 ? sync_err : errno;
    ::unlink(tmp.c_str());
    throw Error(ErrorKind::output, fmt::format("{}: cannot sync ({})", path, std::strerror(err)));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw Error(ErrorKind::output, fmt::format("{}: cannot rename {} onto it ({})", path, tmp, std::strerror(err)));
  }
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace aftermath::batch
