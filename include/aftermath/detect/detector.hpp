#pragma once
/// @file detector.hpp
/// Change detectors behind one small interface, chosen by name in the config. A detector is
/// fitted once per job on samples of both scenes (job-level statistics, so the result does not
/// depend on tiling or threads) and then scores tiles independently.
#include <memory>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "aftermath/config/config.hpp"

namespace aftermath {

/// Pre and post bands of the same window (CV_32F, equal count and size; post already aligned and
/// normalised) and the joint validity (CV_8U, 255 = valid in both).
struct BandPair {
  std::vector<cv::Mat> pre;
  std::vector<cv::Mat> post;
  cv::Mat valid;
};

class Detector {
 public:
  virtual ~Detector() = default;
  virtual std::string name() const = 0;
  /// Job-level fit from sample windows.
  virtual void fit(const std::vector<BandPair>& samples) = 0;
  /// Score in [0, 1] (CV_32F, window size): 0 no change, 1 certain change; 0 where invalid,
  /// never NaN. Const and thread-safe after fit().
  virtual cv::Mat score(const BandPair& window) const = 0;
  /// Neighbourhood radius the detector reads around each pixel, px (the halo it needs).
  virtual int radius() const { return 0; }
};

/// "cva": change-vector magnitude. Per band d = post - pre, standardised by the median and a
/// no-change sigma of d over the fit samples (25th percentile of |d - median| / 0.31864, which
/// holds while >= 25% of the samples are unchanged; floored at 1e-4 x (1 + median |pre|));
/// m = sqrt(mean over bands of ((d - median)/sigma)^2);
/// score = m^2 / (m^2 + s^2) with s = config.cva_half_score_sigma (a standardised change of s
/// sigmas scores 0.5).
std::unique_ptr<Detector> make_detector(const DetectConfig& config);

}  // namespace aftermath
