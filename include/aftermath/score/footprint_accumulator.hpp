#pragma once
/// @file footprint_accumulator.hpp
/// Per-feature statistics over tiles: each tile adds the pixels of its core (so a feature that
/// crosses tiles is counted once), partial sums are merged in tile order (deterministic), and
/// finalize() turns them into classes.
#include <array>
#include <cstdint>
#include <opencv2/core.hpp>
#include <optional>
#include <vector>

#include "aftermath/config/config.hpp"
#include "aftermath/core/footprint.hpp"
#include "aftermath/core/grid.hpp"

namespace aftermath {

/// Sums over the pixels whose centre lies inside a feature (even-odd fill of its rings), and over
/// the samples along a line feature's centerline. Integer sums (the score in units of 2^-24, the
/// misregistration in units of 2^-16 px), so every sum is exact and independent of tiling.
struct FeatureSums {
  std::int64_t inside = 0;   ///< pixels of the feature on the grid
  std::int64_t valid = 0;    ///< of those, valid in both scenes
  std::int64_t changed = 0;  ///< of those, in the damage mask
  double score_sum = 0;      ///< sum of scores over valid pixels, each rounded to a multiple of
                             ///< 2^-24, so sums are exact and independent of tiling
  std::int64_t misregistration_sum =
      0;  ///< over valid pixels with a misregistration value, 2^-16 px
  std::int64_t misregistration_pixels = 0;
  std::int64_t line_samples = 0;  ///< centerline samples (one per half pixel of length) on the grid
  std::int64_t line_valid = 0;    ///< of those, on valid pixels
  std::int64_t line_changed = 0;  ///< of those, on pixels in the damage mask
  void merge(const FeatureSums& o);
};

/// Which features touch which tile cores (by bounding box), built once per job. Ids are
/// positions in `features` (= Footprint::id), ascending.
class FootprintIndex {
 public:
  FootprintIndex(const std::vector<Footprint>& features, const TileGrid& tiles);
  const std::vector<std::int64_t>& in_tile(int tile_index) const { return by_tile_[tile_index]; }
  /// How many tiles list the feature.
  std::int32_t tiles_of(std::int64_t feature) const {
    return tile_counts_[static_cast<std::size_t>(feature)];
  }
  std::size_t feature_count() const { return tile_counts_.size(); }

 private:
  std::vector<std::vector<std::int64_t>> by_tile_;
  std::vector<std::int32_t> tile_counts_;
};

/// Nearest-rank quantiles of a feature's valid score codes (the lower median for an even count).
struct ScoreQuantiles {
  std::uint16_t median = 0,
                p90 = 0;  ///< codes (score = code x 2^-16); 0 when there is no valid pixel
};
ScoreQuantiles score_quantiles(std::vector<std::uint16_t> codes);

struct FeaturePartial {
  std::int64_t feature = 0;
  FeatureSums sums;
  std::vector<std::uint16_t>
      codes;  ///< score codes of the valid pixels (for the quantiles), any order
  /// Set (and `codes` empty) when this partial is the feature's only one: its quantiles, computed
  /// where the partial was made (in parallel) instead of when it is added.
  std::optional<ScoreQuantiles> quantiles;
};

/// One tile's layers over its core, as accumulate_tile reads them.
struct TileLayers {
  cv::Mat score;  ///< CV_32F scores or CV_16U stored codes (score = code x 2^-16)
  cv::Mat valid;  ///< CV_8U, 255 = valid in both scenes
  cv::Mat mask;   ///< CV_8U MaskValue
  cv::Mat
      misregistration;  ///< optional CV_32F, px (negative or NaN = unknown); empty = no such layer
  /// Keep the valid pixels' codes for the quantiles; false when they are known already (rescore
  /// reads them from the stored table: they do not depend on thresholds).
  bool codes = true;
};

/// Rasterises each listed feature over `tile.core` and sums the layers (all core-sized). A pixel
/// counts when its centre is inside the feature; a centerline sample when it falls in the pixel.
/// Pure and thread-safe.
std::vector<FeaturePartial> accumulate_tile(const std::vector<Footprint>& features,
                                            const std::vector<std::int64_t>& ids, const Tile& tile,
                                            const TileLayers& layers);
/// Computes the quantiles of the partials whose feature lies in no other tile (index.tiles_of ==
/// 1) and frees their codes: call where partials are made, so this work is parallel.
void settle_single_tile_partials(std::vector<FeaturePartial>& partials,
                                 const FootprintIndex& index);
/// The same without a misregistration layer.
std::vector<FeaturePartial> accumulate_tile(const std::vector<Footprint>& features,
                                            const std::vector<std::int64_t>& ids, const Tile& tile,
                                            const cv::Mat& score, const cv::Mat& valid,
                                            const cv::Mat& mask);

/// Operating points, stored side by side: 0 default, 1 high precision, 2 high recall.
inline constexpr int kOperatingPoints = 3;

/// The outcome for one feature.
struct FeatureResult {
  FeatureSums sums;
  ScoreQuantiles quantiles;
  double coverage = 0;                     ///< inside pixels / polygon area, clamped to [0, 1]
  double valid_fraction = 0;               ///< valid / inside
  double changed_fraction = 0;             ///< changed / valid
  double mean_score = 0;                   ///< score_sum / valid
  double median_score = 0, p90_score = 0;  ///< of the valid pixels' scores
  double length_changed_fraction = 0;  ///< lines: changed / valid centerline samples; 0 otherwise
  double misregistration = -1;  ///< mean over valid pixels, px; -1 = no misregistration layer
  FeatureStatus status = FeatureStatus::outside;
  /// Class in the configured scheme per operating point (kNoGrade unless scored).
  std::array<std::uint8_t, kOperatingPoints> grade{kNoGrade, kNoGrade, kNoGrade};
  DamageClass damage = DamageClass::unclassified;  ///< the default grade on the xBD scale
  double confidence =
      0;  ///< in [0, 1]: min(1, |metric - nearest class level| / 0.1); 0 unless scored
};

/// The value graded by the class levels for this feature (config.metric; for lines,
/// changed_fraction means length_changed_fraction).
double damage_metric(const Footprint& feature, const FeatureResult& r, const DamageConfig& config);

/// Classifies one feature: no pixel on the grid -> outside; valid_fraction below
/// config.min_valid_fraction -> no_data; else the grades from config.metric and the scheme's
/// levels, shifted per operating point.
FeatureResult classify_feature(const Footprint& feature, const FeatureSums& sums,
                               const ScoreQuantiles& quantiles, const DamageConfig& config);
/// Without quantiles (median and p90 taken as 0).
FeatureResult classify_feature(const Footprint& feature, const FeatureSums& sums,
                               const DamageConfig& config);

class FootprintAccumulator {
 public:
  /// Quantiles are computed in finalize(): every valid pixel's code is kept until then.
  explicit FootprintAccumulator(std::size_t feature_count);
  /// Knows how many tiles each feature touches: a feature's codes are reduced to its quantiles
  /// (and freed) as soon as its last tile is added, so memory follows the features in flight.
  FootprintAccumulator(std::size_t feature_count, const FootprintIndex& index);
  /// Call from one thread; the order of tiles does not matter.
  void add(const std::vector<FeaturePartial>& partials);
  const std::vector<FeatureSums>& sums() const { return sums_; }
  /// The accumulated state as bytes (host byte order), to combine accumulators that each saw a
  /// part of the tiles (e.g. one per MPI rank) with merge_serialized().
  std::vector<std::uint8_t> serialize() const;
  /// Adds the state of an accumulator of the same features (from serialize()). The result does
  /// not depend on the order of merges. Throws Error(internal) on a malformed or mismatched state.
  void merge_serialized(const std::vector<std::uint8_t>& bytes);
  /// `known_quantiles` (one per feature), when given, replace the quantiles of the codes (a
  /// rescore that did not collect codes).
  std::vector<FeatureResult> finalize(const std::vector<Footprint>& features, const DamageConfig& config,
                                      const std::vector<ScoreQuantiles>* known_quantiles = nullptr) const;

 private:
  void complete(std::size_t feature);
  std::vector<FeatureSums> sums_;
  std::vector<std::vector<std::uint16_t>> codes_;  ///< pending codes of incomplete features
  std::vector<ScoreQuantiles> quantiles_;
  std::vector<std::uint8_t> done_;  ///< quantiles_ final
  std::vector<std::int32_t> tiles_total_,
      tiles_added_;  ///< empty = no index (quantiles at finalize)
};

}  // namespace aftermath
