// align_job: plan -> estimate the registration -> /alignment (HDF5) and, optionally, the post
// scene resampled onto the analysis grid (GeoTIFF).
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <tbb/enumerable_thread_specific.h>
#include <tbb/global_control.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "aftermath/align/registration.hpp"
#include "aftermath/core/error.hpp"
#include "aftermath/core/util.hpp"
#include "aftermath/engine/job.hpp"
#include "aftermath/io/geotiff_writer.hpp"
#include "aftermath/io/hdf5_writer.hpp"
#include "aftermath/io/scene.hpp"
#include "alignment.hpp"
#include "plan.hpp"

namespace aftermath {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct AlignReaders {
  SceneReader pre;
  SceneReader post;
};
}  // namespace

AlignSummary align_job(const AlignRequest& areq) {
  const auto t_start = Clock::now();
  AlignSummary summary;
  const JobConfig& cfg = areq.config;
  init_gdal();
  validate(cfg);
  RunRequest req;
  req.pre = areq.pre;
  req.post = areq.post;
  req.out = areq.out;
  req.config = cfg;
  req.config_path = areq.config_path;
  req.threads = areq.threads;
  req.overwrite = areq.overwrite;
  engine::check_output(req);
  if (!areq.write_aligned.empty()) {
    RunRequest aligned = req;
    aligned.out = areq.write_aligned;
    engine::check_output(aligned);
  }
  engine::Plan plan;
  try {
    plan = engine::make_plan(req);
  } catch (const Error& e) {
    throw e.with_context("plan");
  }
  summary.warnings = plan.warnings;
  for (const auto& w : plan.warnings) spdlog::warn("{}", w);
  const Grid& grid = plan.grid;
  summary.grid = grid;

  const int threads = areq.threads > 0 ? areq.threads : tbb::info::default_concurrency();
  tbb::global_control parallelism(tbb::global_control::max_allowed_parallelism,
                                  static_cast<std::size_t>(threads));
  tbb::task_arena arena(threads);
  tbb::enumerable_thread_specific<std::optional<AlignReaders>> readers;
  auto thread_readers = [&]() -> AlignReaders& {
    auto& slot = readers.local();
    if (!slot) {
      slot.emplace(AlignReaders{SceneReader(plan.pre, grid, plan.pre_read),
                                SceneReader(plan.post, grid, plan.post_read)});
    }
    return *slot;
  };

  // ---- estimate ---------------------------------------------------------------------------
  const auto t_est = Clock::now();
  Registration reg;
  try {
    const WindowReader read_intensity = [&](bool post, const Window& w) {
      AlignReaders& r = thread_readers();
      const SceneWindow s = post ? r.post.read(w) : r.pre.read(w);
      return IntensityWindow{to_intensity(s.bands), s.valid};
    };
    reg = engine::estimate_alignment(grid, cfg, read_intensity, engine::arena_for_each(arena),
                                     req.post);
  } catch (const Error& e) {
    throw e.with_context("estimate");
  }
  summary.estimate_seconds = seconds_since(t_est);
  if (!reg.warning.empty()) {
    spdlog::warn("{}", reg.warning);
    summary.warnings.push_back(reg.warning);
  }
  spdlog::info(
      "alignment: {} ({}) shift ({:.3f}, {:.3f}) px; tie points kept {} dropped {}; RMSE {:.3f} -> "
      "{:.3f} px",
      reg.model, reg.method, reg.shift.x, reg.shift.y, reg.kept, reg.dropped, reg.rmse_before,
      reg.rmse_after);

  // ---- write /alignment ------------------------------------------------------------------
  try {
    Hdf5Writer writer(areq.out, grid, cfg.tiling.tile_size, {}, cfg.output.deflate_level);
    engine::write_alignment(writer, reg, grid);
    writer.set_attribute("/", "Conventions", std::string("CF-1.8"));
    writer.set_attribute("/", "title",
                         std::string("aftermath alignment (pre/post co-registration model)"));
    writer.set_attribute("/", "history",
                         fmt::format("{} aftermath {} align", utc_timestamp(), AFTERMATH_VERSION));
    writer.set_attribute("/", "aftermath_version", std::string(AFTERMATH_VERSION));
    writer.set_attribute("/", "schema_version", static_cast<std::int64_t>(1));
    const std::string config_yaml = to_yaml(cfg);
    writer.set_attribute("/", "config", config_yaml);
    writer.set_attribute("/", "config_sha256", sha256_text(config_yaml));
    writer.set_attribute("/", "config_path", areq.config_path);
    writer.set_attribute("/", "created", utc_timestamp());
    writer.set_attribute("/", "input_pre", req.pre);
    writer.set_attribute("/", "input_pre_sha256", sha256_file(req.pre));
    writer.set_attribute("/", "input_post", req.post);
    writer.set_attribute("/", "input_post_sha256", sha256_file(req.post));
    writer.commit();
  } catch (const Error& e) {
    throw e.with_context("write");
  }
  summary.output = areq.out;

  // ---- optional: the post scene on the analysis grid ---------------------------------------
  if (!areq.write_aligned.empty()) {
    try {
      const int bands = static_cast<int>(
          plan.post_read.bands.empty() ? plan.post.data_band_count : plan.post_read.bands.size());
      GeoTiffWriter out(areq.write_aligned, grid, bands, CV_32F,
                        std::numeric_limits<double>::quiet_NaN());
      const TileGrid tiles(grid.width, grid.height, cfg.tiling.tile_size, 0);
      const ForEach for_each = engine::arena_for_each(arena);
      // A row of tiles resampled in parallel, then written in order: memory follows one row.
      for (int row = 0; row < tiles.rows(); ++row) {
        std::vector<std::vector<cv::Mat>> done(static_cast<std::size_t>(tiles.cols()));
        for_each(done.size(), [&](std::size_t c) {
          const Tile t = tiles.tile(row * tiles.cols() + static_cast<int>(c));
          const Window src = registration_source(reg, t.core);
          const SceneWindow post = thread_readers().post.read(src);
          std::vector<cv::Mat> out_bands;
          cv::Mat out_valid;
          apply_registration(reg, post.bands, post.valid, src, t.core, out_bands, out_valid);
          for (auto& b : out_bands)
            b.setTo(std::numeric_limits<float>::quiet_NaN(), out_valid == 0);
          done[c] = std::move(out_bands);
        });
        for (int c = 0; c < tiles.cols(); ++c)
          out.write(tiles.tile(row * tiles.cols() + c).core, done[static_cast<std::size_t>(c)]);
      }
      out.close();
    } catch (const Error& e) {
      std::error_code ec;
      std::filesystem::remove(areq.write_aligned, ec);  // never leave a half-written raster
      throw e.with_context("write", areq.write_aligned);
    }
    summary.aligned = areq.write_aligned;
  }

  summary.model = reg.model;
  summary.method = reg.method;
  summary.shift_x = reg.shift.x;
  summary.shift_y = reg.shift.y;
  summary.max_displacement = reg.max_displacement;
  summary.rmse_before = reg.rmse_before;
  summary.rmse_after = reg.rmse_after;
  summary.cv_rmse = reg.cv_rmse;
  summary.ties_kept = reg.kept;
  summary.ties_dropped = reg.dropped;
  summary.overlap_mpx = static_cast<double>(grid.pixel_count()) / 1e6;
  summary.estimate_mpx_per_s = summary.overlap_mpx / std::max(summary.estimate_seconds, 1e-9);
  summary.total_seconds = seconds_since(t_start);
  return summary;
}

}  // namespace aftermath
