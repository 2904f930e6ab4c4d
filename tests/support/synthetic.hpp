#pragma once
/// Synthetic scenes with known truth for unit tests: band-limited texture (ground), roads,
/// buildings (bright roofs), some destroyed in the post scene (roof replaced by rubble), and a
/// known sub-pixel shift of the post content (post(p + shift) = pre(p)).
#include <vector>

#include <opencv2/core.hpp>

namespace aftermath::test {

struct SyntheticBuilding {
  cv::Rect rect;  ///< pre-scene pixel rectangle
  bool destroyed = false;
};

struct SyntheticOptions {
  int width = 512;
  int height = 512;
  int bands = 3;
  cv::Point2d shift{0, 0};   ///< post content shift, px
  int buildings = 40;
  double destroyed_fraction = 0.3;
  double noise = 1.0;        ///< post sensor noise sigma (DN)
  double gain = 1.0;         ///< post radiometric gain
  double offset = 0.0;       ///< post radiometric offset
  unsigned seed = 1;
};

struct SyntheticPair {
  std::vector<cv::Mat> pre;   ///< CV_32F bands
  std::vector<cv::Mat> post;  ///< CV_32F bands
  std::vector<SyntheticBuilding> buildings;
};

/// Smooth random texture in [0, 255] (sum of blurred noise at several scales), CV_32F.
cv::Mat make_texture(int width, int height, unsigned seed);

SyntheticPair make_synthetic_pair(const SyntheticOptions& options);

/// Shifts an image by `shift` (out(p + shift) = in(p)) with Lanczos interpolation.
cv::Mat shift_image(const cv::Mat& in, cv::Point2d shift);

/// Single-channel convenience: mean of bands.
cv::Mat mean_of(const std::vector<cv::Mat>& bands);

}  // namespace aftermath::test
