#pragma once
// Helpers shared by the detectors (private to detect).
#include <cmath>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "aftermath/detect/detector.hpp"

namespace aftermath::detect {

/// Throws Error(internal) unless every band of every scene is CV_32F of the mask's size, the mask
/// is CV_8U and all scenes have the same band count.
void check_pair(const BandPair& p, const char* who);

/// CV_8U 0/1: valid and finite in every band of every scene.
cv::Mat usable_mask(const BandPair& p);

/// Scale of no-change values from |x - median| (reordered): the 25th percentile / 0.31864 (the
/// Gaussian ratio). A disaster can change most of a scene, which breaks the MAD (50%); this holds
/// while at least ~25% of the samples are unchanged.
double no_change_sigma(std::vector<double>& abs_dev);

/// Median and no-change sigma of `values` (reordered), sigma floored at `floor`.
struct RobustScale {
  double median = 0.0;
  double sigma = 1.0;
};
RobustScale robust_scale(std::vector<double>& values, double floor);

/// Sum over the (2r+1)^2 box around each pixel, clipped at the window edge (CV_64F in and out).
/// Separable, each pass summing in a fixed order, so a pixel gets bit-identical sums in any window
/// that holds its box (tiles with r px of halo).
cv::Mat box_sum(const cv::Mat& src, int r);

/// score = m2 / (m2 + s2); NaN m2 -> 0 (no evidence), +inf -> 1.
inline float magnitude_score(double m2, double s2) {
  if (std::isnan(m2)) return 0.0f;
  if (std::isinf(m2)) return 1.0f;
  return static_cast<float>(m2 / (m2 + s2));
}

/// Samples of one band over the usable pixels of every sample window (for job-level statistics).
std::vector<double> collect(const std::vector<BandPair>& samples,
                            const std::vector<cv::Mat>& values_per_sample);

}  // namespace aftermath::detect
