#pragma once
/// @file threshold.hpp
/// From scores to a damage mask.
#include <array>
#include <cstdint>

#include <opencv2/core.hpp>

#include "aftermath/config/config.hpp"

namespace aftermath {

/// Histogram of scores in [0, 1] over valid pixels, 1024 bins. Integer counts: merging in any
/// order gives the same result.
struct ScoreHistogram {
  static constexpr int kBins = 1024;
  std::array<std::int64_t, kBins> counts{};
  void add(const cv::Mat& score, const cv::Mat& valid);
  void merge(const ScoreHistogram& other);
  std::int64_t total() const;
};

/// Otsu's threshold (maximum between-class variance) of the histogram, in score units [0, 1]:
/// the upper edge (k + 1) / 1024 of the best lower-class bin k (so score >= threshold is exactly
/// the upper class); equal maxima across an empty gap take the middle of the gap.
/// An empty or single-valued histogram returns 0.5.
double otsu_threshold(const ScoreHistogram& histogram);

/// The threshold a config asks for: `fixed` -> config.value; `otsu` -> otsu_threshold(histogram).
double resolve_threshold(const ThresholdConfig& config, const ScoreHistogram& histogram);

/// Mask values in the output's damage_mask layer.
enum MaskValue : std::uint8_t { kMaskUnchanged = 0, kMaskChanged = 1, kMaskInvalid = 255 };

/// CV_8U mask: score >= threshold -> changed, then a morphological opening of `open_radius` px
/// (elliptic, diameter 2r + 1) removes specks; invalid pixels are kMaskInvalid and never changed.
/// A pixel depends on scores within 2 x open_radius: tiles need a halo of at least that much.
cv::Mat damage_mask(const cv::Mat& score, const cv::Mat& valid, double threshold, int open_radius);

}  // namespace aftermath
