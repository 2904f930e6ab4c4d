#pragma once
/// @file built_up.hpp
/// Built-up ground in the pre scene, to keep damage sites to where buildings were: a
/// morphological building index (after Huang and Zhang's MBI, simplified to square structuring
/// elements): roofs are bright structures smaller than a building, which a white top-hat of the
/// brightness keeps while large bright areas (bare fields, glint on water) and dark ones drop out.
#include <opencv2/core.hpp>
#include <vector>

namespace aftermath {

/// Index per pixel (CV_32F, >= 0): the mean over square structuring elements of max_size_px / 4,
/// / 2 and max_size_px of the white top-hat of the brightness (the largest band value), divided
/// by `brightness_range` (the scene's p99 - p1 brightness; index 0.05 = 5% of that range).
/// Invalid pixels (`valid` CV_8U 0) count as dark and get index 0. A pixel's index depends on
/// the input within max_size_px of it (built_up_reach), so tiles need that halo. Pure.
cv::Mat built_up_index(const std::vector<cv::Mat>& bands, const cv::Mat& valid, int max_size_px,
                       double brightness_range);

/// Pixels of input on each side a pixel's index depends on.
int built_up_reach(int max_size_px);

/// p99 - p1 of the brightness (largest band value) over valid pixels of `bands` (CV_32F); 1 if
/// there is none or the range is 0.
double brightness_range(const std::vector<cv::Mat>& bands, const cv::Mat& valid);

}  // namespace aftermath
