#pragma once
// The classify step shared by `run` and `rescore` (private to the engine): per tile, scores +
// validity of the outer window -> damage mask -> core crop -> encoded chunks + per-feature partial
// sums; the oneTBB tile pipeline both jobs push their tiles through; the footprint table.
#include <tbb/task_arena.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <opencv2/core.hpp>
#include <optional>
#include <string>
#include <vector>

#include "aftermath/config/config.hpp"
#include "aftermath/core/footprint.hpp"
#include "aftermath/core/grid.hpp"
#include "aftermath/core/util.hpp"
#include "aftermath/io/hdf5_reader.hpp"
#include "aftermath/io/hdf5_writer.hpp"
#include "aftermath/score/footprint_accumulator.hpp"
#include "aftermath/score/sites.hpp"

namespace aftermath::engine {

constexpr float kScoreFill = -1.0f;  // an invalid pixel's score once decoded (decode_scores)
constexpr float kDetectorLayerFill = -9999.0f;  // _FillValue of the detectors' extra layers

/// The two output layers: change_score (uint16 codes, CF-packed: score = code x 2^-16, fill 65535;
/// deflated at output.score_deflate_level) and damage_mask (uint8).
std::vector<LayerSpec> output_layers(const JobConfig& config);
/// The configured detector's extra layers (e.g. ttest_t), float32, fill kDetectorLayerFill; `run`
/// writes them after output_layers() (classify_tile encodes them from TileWork::detector_layers).
std::vector<LayerSpec> detector_output_layers(const JobConfig& config);

/// change_score of an output over `window` (grid pixels) as CV_32F scores, invalid pixels
/// kScoreFill (-1): the uint16 codes decoded (a float32 layer of an older output as stored).
cv::Mat read_scores(const Hdf5Reader& reader, const Window& window);

/// What the classify step needs, fixed for a job.
struct ClassifyContext {
  const JobConfig* config =
      nullptr;             ///< tiling.tile_size, threshold.open_radius, output.deflate_level
  double threshold = 0.5;  ///< score threshold
  const std::vector<LayerSpec>* layers = nullptr;
  const std::vector<Footprint>* features = nullptr;
  const FootprintIndex* index = nullptr;
  bool collect_codes = true;  ///< per-feature codes for the quantiles (rescore: known, not collected)
  std::int64_t site_min_pixels = 1;  ///< smaller components wholly inside a tile are dropped there
};

/// One tile through the pipeline.
struct TileWork {
  Tile tile;
  /// Outer window: CV_32F scores with `valid` (CV_8U 255 = valid; invalid pixels' scores are any
  /// value), or CV_16U stored codes (encode_scores), whose validity is in the codes.
  cv::Mat score;
  cv::Mat valid;
  /// When set, the stored encoding of the change_score core, used as is (byte-identical to what
  /// encode_chunk gives for the same core and deflate level) instead of re-encoding it.
  std::optional<EncodedChunk> score_chunk;
  // Results of classify_tile:
  std::vector<EncodedChunk> chunks;  ///< per layer
  std::vector<FeaturePartial> partials;
  std::int64_t valid_count = 0, changed_count = 0;
  std::shared_ptr<void> extra;  ///< per-job payload (e.g. the run's quicklook pieces)
  /// Outer window, CV_32F: the detector's extra layers, encoded after the two output layers.
  std::vector<cv::Mat> detector_layers;
  /// Optional, core-sized: CV_32F misregistration (px) for the per-feature means; CV_8U built-up
  /// ground (non-zero) for the damage sites.
  cv::Mat misregistration, built_up;
  /// Results (sites.enabled): the runs of changed pixels of components touching the core's edge,
  /// and the sites wholly inside the core, finished (outline traced and packed, runs freed).
  std::vector<MaskRun> runs;
  std::vector<DamageSite> sites;
};

/// score + validity (outer window) -> damage mask (opening needs the halo) -> core -> chunks and
/// per-feature sums. Pure and thread-safe. Frees the outer-window inputs.
void classify_tile(const ClassifyContext& ctx, TileWork& work);

/// The tile pipeline: serial in-order `load` (tile index -> work; HDF5 reads happen here),
/// parallel `compute` (fills score/valid if `load` did not) then classify_tile, serial in-order
/// `store` (writes chunks etc.). `tokens` tiles in flight.
/// Time spent in each stage of the tile pipeline, summed over tiles (thread-seconds for the
/// parallel ones), for `--profile`. Nanoseconds; relaxed atomics (only read after the pipeline).
struct TileStageTimes {
  std::atomic<std::int64_t> load{0}, compute{0}, classify{0}, store{0};
};

/// Adds the time from construction to destruction to `*sum` (ns), if given.
class StageClock {
 public:
  explicit StageClock(std::atomic<std::int64_t>* sum) : sum_(sum) {
    if (sum_) start_ = std::chrono::steady_clock::now();
  }
  ~StageClock() {
    if (sum_) {
      sum_->fetch_add(std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::steady_clock::now() - start_)
                          .count(),
                      std::memory_order_relaxed);
    }
  }
  StageClock(const StageClock&) = delete;
  StageClock& operator=(const StageClock&) = delete;

 private:
  std::atomic<std::int64_t>* sum_;
  std::chrono::steady_clock::time_point start_;
};

struct PipelineStages {
  std::function<void(TileWork&)> load;     ///< serial; may be empty
  std::function<void(TileWork&)> compute;  ///< parallel, before classify; may be empty
  std::function<void(TileWork&)> store;    ///< serial, in tile order
  TileStageTimes* times = nullptr;         ///< optional: filled with the stages' times
};
/// Tiles go through in `order` (tile indices, each at most once: every tile, or an MPI rank's
/// share; empty = every tile, row-major). Every result is independent of the order (integer
/// sums, chunks by position), so the order is only about speed.
void run_tile_pipeline(tbb::task_arena& arena, const TileGrid& tiles, int tokens, const ClassifyContext& ctx,
                       const PipelineStages& stages, const std::function<void(const char*)>& check_cancel,
                       const std::vector<int>& order = {});

/// Tiles in vertical strips `strip_tiles` wide, row-major inside each strip, strips left to
/// right, every other strip bottom-up. Reading a tile's halo decodes the input blocks of its
/// neighbours: in strips, the blocks of the tile row above are a few MB whatever the scene width,
/// so they are still in the bounded block cache (row-major order needs a whole scene-wide band of
/// blocks per thread); turning at the end of a strip, the blocks under its border are too.
std::vector<int> strip_order(const TileGrid& tiles, int strip_tiles);

/// Per-feature outcome counts.
struct ClassCounts {
  std::int64_t features = 0, outside = 0, no_data = 0;
  std::array<std::int64_t, 4> classes{};  ///< xBD scale
  std::array<std::int64_t, 5> grades{};   ///< in the configured scheme (default operating point)
  std::array<std::int64_t, 4> kinds{};    ///< features by FeatureKind (lines: segments)
};
ClassCounts count_classes(const std::vector<Footprint>& features, const std::vector<FeatureResult>& results);

/// The `/footprints` table. Moves each feature's source_id, wkt and centerline_wkt into the table
/// (a million features carry ~200 MB of them); rings and the rest stay.
Table footprint_table(std::vector<Footprint>& features,
                      const std::vector<FeatureResult>& results, const Grid& grid,
                      const DamageConfig& damage);
/// The `/sites` table, with one outline (site_outlines) per site, taken over.
Table site_table(const std::vector<DamageSite>& sites, std::vector<std::string> outlines,
                 const Grid& grid, bool with_built_up);
/// A polygon's rings (grid pixel corners; outer first) as WKT in the grid's CRS.
std::string outline_wkt(const std::vector<std::vector<cv::Point>>& rings, const Grid& grid);
/// The site's outline (site_outline), packed (pack_outline) into DamageSite::outline; its runs
/// are freed. For a site finished in its tile, which keeps only that to the end of the job.
void pack_site_outline(DamageSite& site);
/// Outlines of the sites as WKT POLYGONs in the grid's CRS: unpacked where packed, else traced
/// (site_outline). Frees each site's runs and packed outline. The sites are bodies of `for_each`.
std::vector<std::string> site_outlines(std::vector<DamageSite>& sites, const Grid& grid,
                                       const ForEach& for_each);
/// The sites' built-up fraction filter: sites.min_built_up_fraction with sites.built_up_only, else
/// 0 (none).
double site_min_built_up_fraction(const SitesConfig& sites);
/// sites.built_up_only: the building index's largest element in pixels of the grid, or 0 when
/// off. Throws Error(usage) when tiling.halo is smaller than the index's reach (tiles would then
/// differ from the whole scene).
int built_up_size_px(const JobConfig& config, const Grid& grid);
/// The halo of the run's tiles, px: tiling.halo when set (> 0; built_up_size_px checks it against
/// the building index's reach), else the least that keeps every tile's results those of the whole
/// scene: the detector's radius + 2 x threshold.open_radius, or the reach of the building index
/// of element `building_index_px` (built_up_size_px; 0 = off) when larger. Throws Error(usage)
/// when that is not smaller than tiling.tile_size.
int tile_halo(const JobConfig& config, int building_index_px);
/// The `built_up_index` layer: float32, the building index, -1 where invalid; built-up ground is
/// index >= sites.built_up_index_threshold (so rescore can move that threshold).
LayerSpec built_up_layer();
/// The index over the tile's core (CV_32F, -1 invalid), from the pre bands of its outer window.
cv::Mat built_up_index_core(const std::vector<cv::Mat>& pre_outer, const cv::Mat& valid_outer, const Tile& tile,
                            int size_px, double brightness_range);
/// sites.min_area_m2 in pixels of the grid (at least 1).
std::int64_t site_min_pixels(const SitesConfig& sites, const Grid& grid);


}  // namespace aftermath::engine
