// aftermath align: estimate the co-registration of a pre/post pair only; optionally write the
// post scene resampled onto the analysis grid.
#include <fmt/format.h>

#include <cmath>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "aftermath/config/config.hpp"
#include "aftermath/engine/job.hpp"
#include "commands.hpp"

namespace aftermath::cli {

Command add_align(CLI::App& app) {
  struct Options {
    AlignRequest req;
    std::vector<std::string> overrides;
  };
  auto o = std::make_shared<Options>();
  auto* cmd =
      app.add_subcommand("align",
                         "Estimate the co-registration of the post scene onto the pre scene (tie "
                         "points, robust model) and store it "
                         "in HDF5 (/alignment), reusable by `aftermath run --alignment`.\n" +
                             std::string(kExitCodes));
  cmd->add_option("--pre", o->req.pre, "pre-event scene (any GDAL raster)")->required();
  cmd->add_option("--post", o->req.post, "post-event scene (any GDAL raster; any CRS/resolution)")
      ->required();
  cmd->add_option("--out", o->req.out, "output HDF5 with the /alignment group (written atomically)")
      ->required();
  cmd->add_option("--write-aligned", o->req.write_aligned,
                  "also write the post scene resampled onto the analysis grid (the pre grid) as a "
                  "float32 GeoTIFF, "
                  "NaN where invalid");
  cmd->add_option("--config", o->req.config_path,
                  "YAML config (see describe-config); default: built-in defaults");
  cmd->add_option("--set", o->overrides,
                  "override a config key, e.g. --set align.model=affine (repeatable)");
  cmd->add_option("--threads", o->req.threads,
                  "worker threads (0 = all cores); results do not depend on it")
      ->check(CLI::Range(0, 1024));
  cmd->add_flag("--overwrite", o->req.overwrite, "replace existing outputs");
  return {cmd, [o]() {
            if (!o->req.config_path.empty()) o->req.config = load_config(o->req.config_path);
            apply_overrides(o->req.config, o->overrides);
            const AlignSummary s = align_job(o->req);
            std::cout << fmt::format("output      {}\n", s.output);
            std::cout << fmt::format("grid        {} x {} px, pixel size {:.6g} x {:.6g}\n",
                                     s.grid.width, s.grid.height, std::abs(s.grid.geotransform[1]),
                                     std::abs(s.grid.geotransform[5]));
            std::cout << fmt::format(
                "alignment   {}{} shift ({:+.3f}, {:+.3f}) px at the centre, max |d| {:.3f} px\n",
                s.model, s.method.empty() ? "" : " (" + s.method + ")", s.shift_x, s.shift_y,
                s.max_displacement);
            std::cout << fmt::format(
                "tie points  {} kept, {} dropped; RMSE {:.3f} -> {:.3f} px (cross-validated "
                "{:.3f} px)\n",
                s.ties_kept, s.ties_dropped, s.rmse_before, s.rmse_after, s.cv_rmse);
            std::cout << fmt::format(
                "time        {:.2f} s (estimate {:.3f} s: {:.1f} Mpx of overlap, {:.1f} Mpx/s)\n",
                s.total_seconds, s.estimate_seconds, s.overlap_mpx, s.estimate_mpx_per_s);
            if (!s.aligned.empty()) std::cout << fmt::format("aligned     {}\n", s.aligned);
            if (!s.warnings.empty())
              std::cout << fmt::format("warnings    {}\n", s.warnings.size());
            return 0;
          }};
}

}  // namespace aftermath::cli
