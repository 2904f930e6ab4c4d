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

/// Change scores as stored: uint16 codes with score = code x 2^-16 (exact in float and double),
/// codes 0 .. 65534 (scores 0 .. 0.99997), 65535 = invalid (the layer's _FillValue). In CF terms
/// the layer is packed with scale_factor 2^-16 and add_offset 0, so xarray, GDAL and QGIS unpack it.
/// Every consumer (mask, per-feature sums, thresholds, plots) works on the decoded codes, so a
/// rescore from the stored layer sees exactly what the run saw.
inline constexpr double kScoreCodeScale = 1.0 / 65536.0;
inline constexpr std::uint16_t kScoreCodeMax = 65534;
inline constexpr std::uint16_t kScoreCodeInvalid = 65535;

/// CV_32F scores in [0, 1] + CV_8U validity (255 = valid) -> CV_16U codes: round(score x 65536)
/// clamped to [0, 65534] (NaN and negatives -> 0), invalid pixels -> 65535.
cv::Mat encode_scores(const cv::Mat& score, const cv::Mat& valid);

/// CV_16U codes -> CV_32F scores (code x 2^-16; invalid codes -> `invalid_value`) and, if
/// `valid` is given, CV_8U validity (255 where the code is not 65535).
cv::Mat decode_scores(const cv::Mat& codes, float invalid_value, cv::Mat* valid = nullptr);

/// The smallest code whose score is >= threshold: code >= threshold_code(t) <=> code x 2^-16 >= t.
/// 65535 (nothing passes) for a threshold above the largest score.
std::uint16_t threshold_code(double threshold);

/// damage_mask on codes: changed <=> code >= threshold_code(threshold); invalid codes are
/// kMaskInvalid. Equal to damage_mask(decode_scores(codes), validity, threshold, open_radius).
cv::Mat damage_mask_from_codes(const cv::Mat& codes, double threshold, int open_radius);

}  // namespace aftermath
