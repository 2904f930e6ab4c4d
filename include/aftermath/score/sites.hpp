#pragma once
/// @file sites.hpp
/// Damage sites without footprints: connected parts (4-connected, as GDALPolygonize) of the
/// damage mask. A component wholly inside a tile's core is finished there (take_inner_sites: its
/// figures and, by the caller, its outline); the tiles hand in only the runs of changed pixels of
/// components touching their core's edge, joined across tile borders when the job ends. So memory
/// follows the sites and the changed area along tile borders, not the scene, and the sites do not
/// depend on tiling or tile order.
#include <cstdint>
#include <opencv2/core.hpp>
#include <vector>

#include "aftermath/core/grid.hpp"

namespace aftermath {

/// Changed pixels [x0, x1) of grid row `row` (grid pixel coordinates) with their score sums.
struct MaskRun {
  std::int32_t row = 0, x0 = 0, x1 = 0;
  std::int64_t code_sum = 0;  ///< sum of the pixels' score codes (score = code x 2^-16)
  std::uint16_t max_code = 0;
  std::int32_t built_up = 0;  ///< pixels of the run on built-up ground (0 without that layer)
  bool operator==(const MaskRun&) const = default;
};

/// The runs of changed pixels of one tile's core: `mask` CV_8U MaskValue, `codes` CV_16U score
/// codes, optional `built_up` CV_8U (non-zero = built-up), all core-sized. Pure.
std::vector<MaskRun> mask_runs(const Window& core, const cv::Mat& mask, const cv::Mat& codes,
                               const cv::Mat& built_up = {});

/// Removes the runs of components that lie wholly inside `core` (touching none of its edge rows
/// or columns, so no other tile can extend them) and have fewer than `min_pixels` pixels: they can
/// never be a site. Most of a noisy mask's runs go here, in the parallel stage, instead of being
/// kept to the end of the job. `runs` as mask_runs gives them (by row, then column). Pure.
void drop_small_inner_components(std::vector<MaskRun>& runs, const Window& core,
                                 std::int64_t min_pixels);

/// One damage site.
struct DamageSite {
  std::int64_t id = 0;  ///< 0-based, in order of the site's first pixel (row, then column)
  std::int64_t pixels = 0;
  double mean_score = 0, max_score = 0;
  double built_up_fraction = 0;  ///< of its pixels on built-up ground; 0 without that layer
  cv::Rect bbox;                 ///< grid pixels
  cv::Point2d centroid;          ///< pixel coordinates (corner convention: centres at +0.5)
  cv::Point first;               ///< its first pixel (row, then column): the order of the ids
  std::vector<MaskRun> runs;     ///< its pixels, by row then column (for polygonising)
  /// Its outline (pack_outline of site_outline) once traced: a site finished in a tile carries
  /// it instead of its runs to the end of the job. Empty until then.
  std::vector<std::uint8_t> outline;
};

/// The components of `runs` (as mask_runs gives them: by row, then column) that lie wholly inside
/// `core` (touching none of its edge rows or columns, so no other tile can extend them) are taken
/// out of `runs`: those of at least `min_pixels` pixels and (when min_built_up_fraction > 0) at
/// least that fraction of built-up pixels come back as sites with their figures and runs (id 0,
/// no outline), in order of their first pixel; the others are dropped. `runs` keeps the runs of
/// the components touching the core's edge, in order. The figures are those
/// SiteAccumulator::finalize gives the same component. Pure.
std::vector<DamageSite> take_inner_sites(std::vector<MaskRun>& runs, const Window& core,
                                         std::int64_t min_pixels, double min_built_up_fraction);

/// The outline of a site along pixel edges, in grid pixel coordinates (corners at integers):
/// rings without the closing vertex and without collinear vertices; the outer ring first
/// (negative shoelace area in pixel coordinates, rows down), then the holes (positive). A site
/// is 4-connected, so it has one outer ring; pixels touching only at a corner (inside a hole) are
/// kept apart, as GDALPolygonize does with 4-connectedness. O(perimeter), no raster.
std::vector<std::vector<cv::Point>> site_outline(const DamageSite& site);

/// Rings (as site_outline gives them) packed into a few bytes per vertex: counts and the steps
/// from vertex to vertex as zigzag varints. unpack_outline gives them back exactly. Pure.
std::vector<std::uint8_t> pack_outline(const std::vector<std::vector<cv::Point>>& rings);
/// Throws Error(internal) on bytes pack_outline did not make.
std::vector<std::vector<cv::Point>> unpack_outline(const std::vector<std::uint8_t>& packed);

class SiteAccumulator {
 public:
  /// A tile's runs of components that may go on in other tiles, and the sites it finished
  /// (take_inner_sites). Any tile order; from one thread.
  void add(std::vector<MaskRun> runs, std::vector<DamageSite> finished = {});
  std::size_t run_count() const { return runs_.size(); }
  std::size_t finished_count() const { return finished_.size(); }
  /// State as bytes, to combine accumulators that each saw a part of the tiles (MPI ranks).
  std::vector<std::uint8_t> serialize() const;
  void merge_serialized(const std::vector<std::uint8_t>& bytes);
  /// Joins the runs into 4-connected sites, adds the finished ones, and keeps those of at least
  /// `min_pixels` pixels and (when min_built_up_fraction > 0) at least that fraction of built-up
  /// pixels, numbered in order of their first pixel. Sites joined here have their runs and no
  /// outline; finished ones what they were handed in with. The rvalue form consumes the state
  /// instead of copying it.
  std::vector<DamageSite> finalize(std::int64_t min_pixels, double min_built_up_fraction) const&;
  std::vector<DamageSite> finalize(std::int64_t min_pixels, double min_built_up_fraction) &&;

 private:
  std::vector<MaskRun> runs_;
  std::vector<DamageSite> finished_;
};

}  // namespace aftermath
