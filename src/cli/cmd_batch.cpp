// aftermath batch: a manifest of pairs (or a scanned directory), idempotent, atomic, resumable,
// sharded. See docs/batch.md.
#include <unistd.h>

#include <filesystem>
#include <iostream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "aftermath/batch/batch.hpp"
#include "aftermath/batch/manifest.hpp"
#include "aftermath/batch/shard.hpp"
#include "aftermath/core/error.hpp"
#include "aftermath/engine/mpi.hpp"
#include "commands.hpp"

namespace aftermath::cli {

namespace {

namespace fs = std::filesystem;

constexpr const char* kBatchHelp =
    "Run every job of a manifest (or of a scanned directory) that is not up to date. A job is up to "
    "date when its output opens and records the SHA-256 of the current inputs, of the resolved "
    "config and the current aftermath version. Outputs are written under a temporary name and "
    "renamed when complete; each output is locked (<output>.lock) while its job runs. See "
    "docs/batch.md.\n"
    "Exit codes: 0 every job done or up to date (or nothing to do); 4 some jobs failed, the others "
    "are done; 1 every job failed; 2 manifest or usage error (nothing ran); 3 the report could not "
    "be written. Jobs locked by another live batch are skipped and do not count as failures.";

std::string detail(const batch::JobReport& j) {
  switch (j.status) {
    case batch::JobStatus::failed: return j.error;
    case batch::JobStatus::done:
      if (j.counts && j.counts->features > 0) {
        const auto& c = *j.counts;
        return fmt::format("{} features: no-damage {}, minor {}, major {}, destroyed {}, no-data {}, outside {}",
                           c.features, c.class_counts[0], c.class_counts[1], c.class_counts[2], c.class_counts[3],
                           c.no_data, c.outside);
      }
      return j.reason;
    default: return j.reason;
  }
}

}  // namespace

Command add_batch(CLI::App& app) {
  struct Options {
    std::string manifest, scan, out_dir, pairing = "previous", config, shard = "0/1", report;
    std::vector<std::string> overrides;
    bool force = false, dry_run = false, print_manifest = false;
    int threads = 0;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("batch", std::string("Run a manifest of pre/post pairs: idempotent, atomic, "
                                                      "resumable, sharded.\n") + kBatchHelp);
  cmd->add_option("manifest", o->manifest, "YAML manifest of jobs (paths relative to it); see docs/batch.md");
  cmd->add_option("--scan", o->scan, "pair the scenes of a directory by area and date (<area>_<YYYYMMDD>[_x].tif "
                                     "or STAC Item JSON) instead of a manifest");
  cmd->add_option("--out-dir", o->out_dir, "with --scan: where outputs go (default: the scanned directory)");
  cmd->add_option("--pair-with", o->pairing, "with --scan: pair each scene with the previous one or the first one")
      ->check(CLI::IsMember({"previous", "first"}));
  cmd->add_option("--config", o->config, "YAML config for jobs that name none");
  cmd->add_option("--set", o->overrides, "override a config key of every job, applied last (repeatable)");
  cmd->add_flag("--force", o->force, "recompute jobs even when their output is up to date");
  cmd->add_flag("--dry-run", o->dry_run, "list what would run and why; write nothing, take no lock");
  cmd->add_option("--shard", o->shard, "run only shard i of N (0-based): jobs whose manifest index mod N == i");
  cmd->add_option("--report", o->report, "JSON run report (default <manifest dir>/aftermath-report.json, "
                                         "aftermath-report.shard-<i>-of-<N>.json with --shard)");
  cmd->add_option("--threads", o->threads, "worker threads per job (0 = all cores)")->check(CLI::Range(0, 1024));
  cmd->add_flag("--print-manifest", o->print_manifest, "print the jobs as a manifest (e.g. of a --scan) and exit");
  return {cmd, [o]() {
            if (o->manifest.empty() == o->scan.empty()) {
              throw_usage("give either a MANIFEST or --scan DIR (one of them)");
            }
            if (!o->manifest.empty() && !o->out_dir.empty()) throw_usage("--out-dir applies to --scan only");
            batch::Shard shard = batch::parse_shard(o->shard);
            // Under mpirun/srun the ranks share out the shard's jobs (README "MPI"): rank r of R
            // runs shard i + N x r of N x R (jobs whose index mod N x R is that), each job alone,
            // with its own report. Together they run shard i of N.
            const int ranks = mpi_world_size(), rank = mpi_world_rank();
            if (ranks > 1) shard = {shard.index + shard.count * rank, shard.count * ranks};
            batch::Manifest manifest;
            if (!o->manifest.empty()) {
              manifest = batch::load_manifest(o->manifest);
            } else {
              batch::ScanOptions so;
              so.out_dir = o->out_dir;
              so.pairing = o->pairing == "first" ? batch::Pairing::first : batch::Pairing::previous;
              manifest = batch::scan_directory(o->scan, so);
            }
            if (o->print_manifest) {
              if (rank == 0) std::cout << batch::to_manifest_yaml(manifest);
              return 0;
            }
            const auto jobs = batch::validate_manifest(manifest, {o->config, o->overrides});

            std::string report = o->report;
            if (report.empty()) {
              const std::string name = shard.count > 1
                                           ? fmt::format("aftermath-report.shard-{}-of-{}.json", shard.index, shard.count)
                                           : std::string("aftermath-report.json");
              report = (fs::path(manifest.base_dir) / name).string();
            } else if (ranks > 1) {
              const fs::path given(report);  // one report per rank: name.rank-<r>.json
              report = (given.parent_path() / fmt::format("{}.rank-{}{}", given.stem().string(), rank,
                                                          given.extension().string()))
                           .string();
            }
            fs::path report_dir = fs::path(report).parent_path();
            if (report_dir.empty()) report_dir = ".";
            if (!o->dry_run) {
              // Probe before running anything: a batch whose report cannot be written is not honest.
              std::error_code ec;
              if (!fs::exists(report_dir, ec)) fs::create_directories(report_dir, ec);
              if (!fs::is_directory(report_dir, ec) || ::access(report_dir.c_str(), W_OK | X_OK) != 0) {
                throw_output(fmt::format("cannot write the report in {}", report_dir.string()), report);
              }
            }
            batch::HashCache cache(o->dry_run ? std::string() : (report_dir / "aftermath-hash-cache.json").string());
            batch::BatchOptions bo;
            bo.force = o->force;
            bo.dry_run = o->dry_run;
            bo.shard = shard;
            bo.threads = o->threads;
            std::size_t in_shard = 0;
            for (const auto& j : jobs) in_shard += batch::in_shard(j.index, shard);
            spdlog::info("batch {}: {} jobs{}", manifest.source, jobs.size(),
                         shard.count > 1 ? fmt::format(", {} in shard {}/{}", in_shard, shard.index, shard.count) : "");
            const batch::BatchResult res = batch::run_batch(jobs, bo, cache, [](const batch::JobReport& j) {
              std::cout << fmt::format("{:<10} {}  {:.2f} s  {}  {}\n", batch::to_string(j.status), j.name, j.duration_s,
                                       j.output, detail(j))
                        << std::flush;
            });
            std::size_t n[5] = {};
            for (const auto& j : res.jobs) ++n[static_cast<int>(j.status)];
            int code = res.exit_code;
            std::string report_note = "report " + report;
            if (!o->dry_run) {
              cache.save();
              try {
                batch::write_file_atomically(report, batch::report_json(res, o->manifest.empty() ? manifest.source : fs::absolute(o->manifest).string(), bo));
              } catch (const Error& e) {
                spdlog::error("report not written: {}", e.what());
                code = batch::kExitReport;
                report_note = "report NOT written";
              }
            } else {
              report_note = "dry run: nothing written";
            }
            if (res.jobs.empty()) {
              std::cout << fmt::format("nothing to do; {}\n", report_note);
            } else {
              std::cout << fmt::format("batch: {} jobs: {} done, {} up to date, {} failed, {} locked{} ({:.2f} s) -> "
                                       "exit {} ({}); {}\n",
                                       res.jobs.size(), n[0], n[1], n[2], n[3],
                                       o->dry_run ? fmt::format(", {} would run", n[4]) : "", res.duration_s, code,
                                       code == batch::kExitReport ? "report not written" : res.outcome, report_note);
            }
            return code;
          }};
}

}  // namespace aftermath::cli
