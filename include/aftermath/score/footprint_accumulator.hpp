#pragma once
/// @file footprint_accumulator.hpp
/// Per-feature statistics over tiles: each tile adds the pixels of its core (so a feature that
/// crosses tiles is counted once), partial sums are merged in tile order (deterministic), and
/// finalize() turns them into classes.
#include <cstdint>
#include <vector>

#include <opencv2/core.hpp>

#include "aftermath/config/config.hpp"
#include "aftermath/core/footprint.hpp"
#include "aftermath/core/grid.hpp"

namespace aftermath {

/// Sums over the pixels whose centre lies inside a feature (even-odd fill of its rings).
struct FeatureSums {
  std::int64_t inside = 0;   ///< pixels of the feature on the grid
  std::int64_t valid = 0;    ///< of those, valid in both scenes
  std::int64_t changed = 0;  ///< of those, in the damage mask
  double score_sum = 0;      ///< sum of scores over valid pixels, each rounded to a multiple of
                             ///< 2^-24, so sums are exact and independent of tiling
  void merge(const FeatureSums& o);
};

/// Which features touch which tile cores (by bounding box), built once per job. Ids are
/// positions in `features` (= Footprint::id), ascending.
class FootprintIndex {
 public:
  FootprintIndex(const std::vector<Footprint>& features, const TileGrid& tiles);
  const std::vector<std::int64_t>& in_tile(int tile_index) const { return by_tile_[tile_index]; }

 private:
  std::vector<std::vector<std::int64_t>> by_tile_;
};

struct FeaturePartial {
  std::int64_t feature = 0;
  FeatureSums sums;
};

/// Rasterises each listed feature over `tile.core` and sums `score`, `valid` and `mask`
/// (core-sized: CV_32F scores or CV_16U stored codes (score = code x 2^-16, the same sums),
/// CV_8U 255 = valid, CV_8U MaskValue). Pure and thread-safe.
std::vector<FeaturePartial> accumulate_tile(const std::vector<Footprint>& features,
                                            const std::vector<std::int64_t>& ids, const Tile& tile,
                                            const cv::Mat& score, const cv::Mat& valid, const cv::Mat& mask);

/// The outcome for one feature.
struct FeatureResult {
  FeatureSums sums;
  double coverage = 0;          ///< inside pixels / polygon area, clamped to [0, 1]
  double valid_fraction = 0;    ///< valid / inside
  double changed_fraction = 0;  ///< changed / valid
  double mean_score = 0;        ///< score_sum / valid
  FeatureStatus status = FeatureStatus::outside;
  DamageClass damage = DamageClass::unclassified;
  double confidence = 0;        ///< in [0, 1]: min(1, |metric - nearest class threshold| / 0.1); 0 unless scored
};

/// Classifies one feature: no pixel on the grid -> outside; valid_fraction below
/// config.min_valid_fraction -> no_data; else the class from config.metric and its thresholds.
FeatureResult classify_feature(const Footprint& feature, const FeatureSums& sums, const DamageConfig& config);

class FootprintAccumulator {
 public:
  explicit FootprintAccumulator(std::size_t feature_count) : sums_(feature_count) {}
  /// Call in tile order from one thread.
  void add(const std::vector<FeaturePartial>& partials);
  const std::vector<FeatureSums>& sums() const { return sums_; }
  /// The accumulated state as bytes (host byte order), to combine accumulators that each saw a
  /// part of the tiles (e.g. one per MPI rank) with merge_serialized().
  std::vector<std::uint8_t> serialize() const;
  /// Adds the state of an accumulator of the same features (from serialize()). The result does
  /// not depend on the order of merges. Throws Error(internal) on a malformed or mismatched state.
  void merge_serialized(const std::vector<std::uint8_t>& bytes);
  std::vector<FeatureResult> finalize(const std::vector<Footprint>& features, const DamageConfig& config) const;

 private:
  std::vector<FeatureSums> sums_;
};

}  // namespace aftermath
