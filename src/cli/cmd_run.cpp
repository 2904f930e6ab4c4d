// aftermath run: one pre/post pair -> one HDF5 output.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include <fmt/format.h>

#include "aftermath/config/config.hpp"
#include "aftermath/engine/job.hpp"
#include "aftermath/engine/mpi.hpp"
#include "aftermath/io/export.hpp"
#include "commands.hpp"

namespace aftermath::cli {

void print_export(const ExportResult& r);  // cmd_export.cpp

void print_damage(const std::string& scheme, const std::array<std::int64_t, 5>& grades,
                  const std::array<std::int64_t, 4>& kinds, std::int64_t features, std::int64_t sites, bool sites_on) {
  if (features > 0 && kinds[0] != features) {
    std::cout << fmt::format("kinds       building {}, road segments {}, infrastructure {}, rail segments {}\n",
                             kinds[0], kinds[1], kinds[2], kinds[3]);
  }
  if (features > 0 && scheme == "unosat") {
    std::cout << fmt::format("unosat      no visible damage {}, possibly {}, moderately {}, severely {}, destroyed {}\n",
                             grades[0], grades[1], grades[2], grades[3], grades[4]);
  }
  if (sites_on) std::cout << fmt::format("sites       {} damage sites\n", sites);
}

namespace {

void print_summary(const RunSummary& s) {
  std::cout << fmt::format("output      {}\n", s.output);
  std::cout << fmt::format("grid        {} x {} px, {}, pixel size {:.6g} x {:.6g}\n", s.grid.width,
                           s.grid.height, s.crs_name, std::abs(s.grid.geotransform[1]), std::abs(s.grid.geotransform[5]));
  std::cout << fmt::format("alignment   {}{} shift ({:+.3f}, {:+.3f}) px; tie points {} kept, {} dropped; "
                           "RMSE {:.3f} -> {:.3f} px\n",
                           s.alignment_model, s.alignment_method.empty() ? "" : " (" + s.alignment_method + ")",
                           s.shift_x, s.shift_y, s.ties_kept, s.ties_dropped, s.rmse_before, s.rmse_after);
  const double pct = s.valid_pixels ? 100.0 * static_cast<double>(s.changed_pixels) / static_cast<double>(s.valid_pixels) : 0.0;
  std::cout << fmt::format("change      threshold {:.3f}; {} of {} valid px changed ({:.1f}%)\n",
                           s.threshold, s.changed_pixels, s.valid_pixels, pct);
  if (s.features > 0) {
    std::cout << fmt::format("features    {}: no-damage {}, minor {}, major {}, destroyed {}, "
                             "no-data {}, outside {}\n",
                             s.features, s.class_counts[0], s.class_counts[1], s.class_counts[2],
                             s.class_counts[3], s.no_data, s.outside);
  }
  print_damage(s.scheme, s.grade_counts, s.kind_counts, s.features, s.sites, s.sites >= 0);
  std::cout << fmt::format("time        {:.2f} s (plan {:.2f}, estimate {:.2f}, score+write {:.2f}, "
                           "finalize {:.2f}); {:.1f} Mpx/s\n",
                           s.times.total, s.times.plan, s.times.estimate, s.times.score,
                           s.times.finalize,
                           static_cast<double>(s.grid.pixel_count()) / 1e6 / std::max(s.times.total, 1e-9));
  if (!s.warnings.empty()) std::cout << fmt::format("warnings    {}\n", s.warnings.size());
}

void print_profile(const RunSummary& s) {
  std::cout << "profile\n";
  std::cout << fmt::format("  {:<56} {:8.3f} s\n", "plan", s.times.plan);
  for (const auto& [name, seconds] : s.times.parts)
    std::cout << fmt::format("  {:<56} {:8.3f} s\n", name, seconds);
}

}  // namespace

Command add_run(CLI::App& app) {
  struct Options {
    RunRequest req;
    std::vector<std::string> pre, post;  // first scene of each side, then the stack's others
    std::vector<std::string> overrides;
    std::string export_dir;
    bool profile = false;
  };
  auto o = std::make_shared<Options>();
  auto* run = app.add_subcommand(
      "run", "Align a pre/post pair, score change, classify footprints, write HDF5.\n" + std::string(kExitCodes));
  run->add_option("--pre", o->pre,
                  "pre-event scene (any GDAL raster); repeat for a stack of the same place (detect.method ttest)")
      ->required();
  run->add_option("--post", o->post,
                  "post-event scene (any GDAL raster; any CRS/resolution); repeat for a stack (detect.method ttest)")
      ->required();
  run->add_option("--footprints", o->req.footprints,
                  "building footprints: GeoJSON, GeoPackage, Shapefile or xBD label JSON");
  run->add_option("--footprint-layer", o->req.footprint_layer, "layer name when the footprint file has several");
  run->add_option("--config", o->req.config_path, "YAML config (see describe-config); default: built-in defaults");
  run->add_option("--set", o->overrides, "override a config key, e.g. --set threshold.value=0.4 (repeatable)");
  run->add_option("--out", o->req.out, "output HDF5 file (written under a temporary name, renamed when complete)")
      ->required();
  run->add_option("--quicklook", o->req.quicklook, "also write a PNG: pre | post with footprints by class | score");
  run->add_option("--threads", o->req.threads, "worker threads (0 = all cores); results do not depend on it")
      ->check(CLI::Range(0, 1024));
  run->add_flag("--overwrite", o->req.overwrite, "replace an existing output (atomically)");
  run->add_flag("--profile", o->profile,
                "after the summary, the time of each part of each stage (the tile stage's parts in "
                "thread-seconds); docs/performance.md");
  run->add_option("--alignment", o->req.alignment,
                  "reuse the registration stored in this file (`aftermath align --out`) instead of estimating it");
  run->add_option("--export", o->export_dir,
                  "after the run, also write COGs, a styled GeoPackage, GeoJSON and a STAC Item here "
                  "(as `aftermath export OUT --to DIR`)");
  return {run, [o]() {
            o->req.pre = o->pre.front();
            o->req.more_pre.assign(o->pre.begin() + 1, o->pre.end());
            o->req.post = o->post.front();
            // Under mpirun/srun every rank runs this command: the job's tiles are split over them.
            o->req.across_ranks = true;
            const bool reports = mpi_world_rank() == 0;  // rank 0 reports the run
            o->req.more_post.assign(o->post.begin() + 1, o->post.end());
            if (!o->req.config_path.empty()) o->req.config = load_config(o->req.config_path);
            apply_overrides(o->req.config, o->overrides);
            ProgressFn progress;
            if (reports && ::isatty(STDERR_FILENO) && !log_json()) {
              progress = [](const std::string& stage, std::int64_t done, std::int64_t total) {
                std::fprintf(stderr, "\r%s: %lld/%lld tiles (%.0f%%)%s", stage.c_str(),
                             static_cast<long long>(done), static_cast<long long>(total),
                             100.0 * static_cast<double>(done) / static_cast<double>(total), done == total ? "\n" : "");
              };
            }
            // A missing output directory is created (documented), but not left behind half-made
            // when the run fails: remove the directories this run created, deepest first, if empty.
            std::vector<std::filesystem::path> created;
            {
              std::error_code ec;
              auto d = std::filesystem::absolute(o->req.out, ec).parent_path();
              while (!ec && !d.empty() && !std::filesystem::exists(d, ec) && d != d.parent_path()) {
                created.push_back(d);
                d = d.parent_path();
              }
            }
            RunSummary summary;
            try {
              summary = run_job(o->req, progress);
            } catch (...) {
              std::error_code ec;
              for (const auto& d : created) {
                if (std::filesystem::is_empty(d, ec)) std::filesystem::remove(d, ec);
              }
              throw;
            }
            if (!reports) return 0;
            print_summary(summary);
            if (o->profile) print_profile(summary);
            if (!o->req.quicklook.empty()) std::cout << fmt::format("quicklook   {}\n", o->req.quicklook);
            if (!o->export_dir.empty()) print_export(export_outputs(summary.output, o->export_dir));
            return 0;
          }};
}

}  // namespace aftermath::cli
