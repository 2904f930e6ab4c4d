#pragma once
/// @file normalisation.hpp
/// Relative radiometric normalisation: the post scene's bands mapped onto the pre scene's scale.
#include <vector>

#include <opencv2/core.hpp>

namespace aftermath {

/// Per band post' = gain * post + offset. Identity when gain = 1, offset = 0.
struct LinearNormalisation {
  std::vector<double> gain;
  std::vector<double> offset;
};

/// Fits a per-band linear map from post to pre matching robust location and scale (median and
/// MAD) over pixels valid in both. `pre`/`post`: CV_32F bands of equal count and size (samples may
/// be several windows concatenated); `valid`: CV_8U, 255 = valid in both. A band with no spread
/// gets gain 1 and an offset matching the medians; no valid pixel gives the identity.
/// Per band gain = MAD(pre) / MAD(post), offset = median(pre) - gain * median(post) (exact
/// medians). Changed pixels would bias that match, so it is refined (up to 3 rounds) on the
/// pixels whose normalised residual is within 3 robust sigmas of its median in every band.
LinearNormalisation fit_robust_linear(const std::vector<cv::Mat>& pre, const std::vector<cv::Mat>& post,
                                      const cv::Mat& valid);

/// Applies the map in place to post bands.
void apply(const LinearNormalisation& n, std::vector<cv::Mat>& post_bands);

}  // namespace aftermath
