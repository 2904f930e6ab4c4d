#include "plan.hpp"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include <fmt/format.h>

#include "aftermath/core/error.hpp"

namespace fs = std::filesystem;

namespace aftermath::engine {

namespace {

std::string canonical_or_empty(const std::string& p) {
  std::error_code ec;
  auto c = fs::weakly_canonical(p, ec);
  return ec ? std::string() : c.string();
}

std::string describe_rect(const cv::Rect2d& r) {
  return fmt::format("[{:.6f}, {:.6f}] x [{:.6f}, {:.6f}]", r.x, r.x + r.width, r.y, r.y + r.height);
}

std::vector<int> bands_or_all(const std::vector<int>& configured) { return configured; }

}  // namespace

void check_output(const RunRequest& request) {
  if (request.out.empty()) throw_usage("no output path given (--out)");
  const fs::path out(request.out);
  std::error_code ec;
  const auto st = fs::symlink_status(out, ec);
  if (!ec && fs::is_directory(fs::status(out, ec))) {
    throw_output("is a directory; give a file name for the output", request.out);
  }
  // Writing over an input (directly or through a link) would destroy it.
  const std::string out_real = canonical_or_empty(request.out);
  std::vector<const std::string*> inputs{&request.pre, &request.post, &request.footprints};
  for (const auto& p : request.more_pre) inputs.push_back(&p);
  for (const auto& p : request.more_post) inputs.push_back(&p);
  for (const auto* in : inputs) {
    if (in->empty()) continue;
    if (!out_real.empty() && out_real == canonical_or_empty(*in)) {
      throw_usage(fmt::format("output {} is the input {} (refusing to overwrite an input)",
                              request.out, *in));
    }
  }
  if (fs::exists(st) && !request.overwrite) {
    throw_output("exists (use --overwrite to replace it)", request.out);
  }
  fs::path parent = out.parent_path();
  if (parent.empty()) parent = ".";
  if (!fs::exists(parent, ec)) {
    // Documented: a missing output directory is created (with its parents).
    fs::create_directories(parent, ec);
    if (ec) throw_output(fmt::format("cannot create directory {}: {}", parent.string(), ec.message()), request.out);
  } else if (!fs::is_directory(parent, ec)) {
    throw_output(fmt::format("parent {} is not a directory", parent.string()), request.out);
  }
  if (::access(parent.c_str(), W_OK | X_OK) != 0) {
    throw_output(fmt::format("cannot write to directory {}", parent.string()), request.out);
  }
}

Plan make_plan(const RunRequest& request) {
  const JobConfig& cfg = request.config;
  Plan plan;
  plan.pre = open_scene(request.pre, cfg.input);
  plan.post = open_scene(request.post, cfg.input);
  plan.pre_read = {bands_or_all(cfg.input.pre_bands), cfg.input.pre_nodata, cfg.input.resampling};
  plan.post_read = {bands_or_all(cfg.input.post_bands), cfg.input.post_nodata, cfg.input.resampling};
  // Alpha bands are masks, not spectral bands: RGB against RGBA pairs R, G, B.
  if (cfg.input.pre_bands.empty() && plan.pre.data_band_count != plan.post.data_band_count) {
    throw_input(fmt::format("pre {} has {} bands and post {} has {}: pair them with input.pre_bands "
                            "and input.post_bands in the config",
                            request.pre, plan.pre.data_band_count, request.post, plan.post.data_band_count));
  }
  if (!cfg.input.pre_nodata) {
    if (auto w = zero_border_warning(plan.pre)) plan.warnings.push_back(*w);
  }
  if (!cfg.input.post_nodata) {
    if (auto w = zero_border_warning(plan.post)) plan.warnings.push_back(*w);
  }
  for (int b : cfg.input.pre_bands) {
    if (b > plan.pre.band_count) {
      throw_input(fmt::format("input.pre_bands names band {} but {} has {} bands", b, request.pre, plan.pre.band_count));
    }
  }
  for (int b : cfg.input.post_bands) {
    if (b > plan.post.band_count) {
      throw_input(fmt::format("input.post_bands names band {} but {} has {} bands", b, request.post, plan.post.band_count));
    }
  }
  // Further scenes of a side (stacks) are read with that side's bands: they need the same bands
  // (and, without georeferencing, the same size) as the side's first scene.
  auto open_more = [&](const std::vector<std::string>& paths, const SceneInfo& first, const std::string& first_path,
                       const std::vector<int>& bands, const char* side, std::vector<SceneInfo>& out) {
    for (const auto& path : paths) {
      SceneInfo s = open_scene(path, cfg.input);
      if (bands.empty() && s.data_band_count != first.data_band_count) {
        throw_input(fmt::format("{} scene {} has {} bands and {} has {}: every {} scene needs the same bands",
                                side, path, s.data_band_count, first_path, first.data_band_count, side));
      }
      for (int b : bands) {
        if (b > s.band_count) {
          throw_input(fmt::format("input.{}_bands names band {} but {} has {} bands", side, b, path, s.band_count));
        }
      }
      if (s.georeferenced != first.georeferenced ||
          (!s.georeferenced && (s.grid.width != first.grid.width || s.grid.height != first.grid.height))) {
        throw_input(fmt::format("{} scene {} does not match {}: both georeferenced, or both plain pixel grids "
                                "of the same size",
                                side, path, first_path));
      }
      out.push_back(std::move(s));
    }
  };
  open_more(request.more_pre, plan.pre, request.pre, cfg.input.pre_bands, "pre", plan.more_pre);
  open_more(request.more_post, plan.post, request.post, cfg.input.post_bands, "post", plan.more_post);

  // Non-georeferenced pairs: accepted only both together and of equal size, as a pixel grid.
  if (plan.pre.georeferenced != plan.post.georeferenced) {
    const auto& bad = plan.pre.georeferenced ? request.post : request.pre;
    throw_input(fmt::format("no georeferencing (CRS and geotransform) in {}, while the other scene "
                            "has it; cannot place it on the map", bad));
  }
  if (!plan.pre.georeferenced) {
    if (plan.pre.grid.width != plan.post.grid.width || plan.pre.grid.height != plan.post.grid.height) {
      throw_input(fmt::format("neither {} nor {} is georeferenced and their sizes differ ({}x{} vs {}x{})",
                              request.pre, request.post, plan.pre.grid.width, plan.pre.grid.height,
                              plan.post.grid.width, plan.post.grid.height));
    }
    if (!cfg.grid.crs.empty() || cfg.grid.resolution > 0) {
      throw_usage("grid.crs / grid.resolution need georeferenced scenes");
    }
    plan.grid = plan.pre.grid;
    plan.grid.crs_wkt.clear();
    plan.grid.geotransform = {0, 1, 0, 0, 0, 1};
    plan.warnings.push_back(
        "neither scene is georeferenced: treating them as one plain pixel grid (pixel (c,r) of the "
        "pre scene is pixel (c,r) of the post scene); outputs are not georeferenced");
    return plan;
  }

  const auto& pg = plan.pre.grid.geotransform;
  std::string crs = plan.pre.grid.crs_wkt;
  double res_x = pg[1], res_y = pg[5];
  bool snap_to_pre = true;
  if (pg[2] != 0 || pg[4] != 0 || pg[1] <= 0 || pg[5] >= 0) {
    // A rotated (or flipped) pre grid: analyse on a north-up grid of the same pixel size in its
    // CRS; both scenes are then warped onto it.
    res_x = std::hypot(pg[1], pg[4]);
    res_y = -std::hypot(pg[2], pg[5]);
    snap_to_pre = false;
    plan.warnings.push_back(fmt::format("{} has a rotated geotransform: analysed on a north-up grid "
                                        "of the same pixel size in its CRS", request.pre));
  }
  if (!cfg.grid.crs.empty()) {
    crs = crs_to_wkt(cfg.grid.crs);
    if (!same_crs(crs, plan.pre.grid.crs_wkt)) snap_to_pre = false;
  }
  const cv::Rect2d pre_b = scene_bounds_in(plan.pre, crs);
  const cv::Rect2d post_b = scene_bounds_in(plan.post, crs);
  if (cfg.grid.resolution > 0) {
    res_x = cfg.grid.resolution;
    res_y = -cfg.grid.resolution;
    snap_to_pre = snap_to_pre && std::abs(cfg.grid.resolution - pg[1]) < 1e-12 * std::abs(pg[1]);
  } else if (!same_crs(crs, plan.pre.grid.crs_wkt)) {
    // Same number of pixels over the pre scene's footprint in the new CRS.
    const double r = std::sqrt(pre_b.area() / static_cast<double>(plan.pre.grid.pixel_count()));
    res_x = r;
    res_y = -r;
  }
  const cv::Rect2d overlap = pre_b & post_b;
  if (overlap.width <= 0 || overlap.height <= 0) {
    throw_input(fmt::format("scenes do not overlap: pre {} covers {}, post {} covers {} (in the "
                            "analysis CRS)",
                            request.pre, describe_rect(pre_b), request.post, describe_rect(post_b)));
  }
  // Pixels of the analysis grid whose centres lie in the overlap.
  const double x0 = snap_to_pre ? pg[0] : std::floor(overlap.x / res_x) * res_x;
  const double y0 = snap_to_pre ? pg[3] : std::ceil((overlap.y + overlap.height) / -res_y) * -res_y;
  const double eps = 1e-6;
  long c0 = static_cast<long>(std::ceil((overlap.x - x0) / res_x - 0.5 - eps));
  long c1 = static_cast<long>(std::floor((overlap.x + overlap.width - x0) / res_x - 0.5 + eps));
  long r0 = static_cast<long>(std::ceil((y0 - (overlap.y + overlap.height)) / -res_y - 0.5 - eps));
  long r1 = static_cast<long>(std::floor((y0 - overlap.y) / -res_y - 0.5 + eps));
  if (snap_to_pre) {
    c0 = std::max(c0, 0L), r0 = std::max(r0, 0L);
    c1 = std::min(c1, static_cast<long>(plan.pre.grid.width) - 1);
    r1 = std::min(r1, static_cast<long>(plan.pre.grid.height) - 1);
  }
  const long w = c1 - c0 + 1, h = r1 - r0 + 1;
  if (w < cfg.input.min_overlap_px || h < cfg.input.min_overlap_px) {
    throw_input(fmt::format("overlap of {} and {} is {} x {} px, below input.min_overlap_px = {}",
                            request.pre, request.post, std::max(w, 0L), std::max(h, 0L),
                            cfg.input.min_overlap_px));
  }
  if (w > std::numeric_limits<int>::max() || h > std::numeric_limits<int>::max() ||
      w * h > cfg.input.max_pixels) {
    throw_input(fmt::format("analysis grid {} x {} px exceeds input.max_pixels", w, h));
  }
  plan.grid.crs_wkt = crs;
  plan.grid.geotransform = {x0 + c0 * res_x, res_x, 0, y0 + r0 * res_y, 0, res_y};
  plan.grid.width = static_cast<int>(w);
  plan.grid.height = static_cast<int>(h);
  return plan;
}

}  // namespace aftermath::engine
