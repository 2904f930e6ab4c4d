#include "aftermath/score/built_up.hpp"

#include <algorithm>
#include <cmath>
#include <opencv2/imgproc.hpp>

#include "aftermath/core/error.hpp"

namespace aftermath {

namespace {

cv::Mat brightness(const std::vector<cv::Mat>& bands, const cv::Mat& valid) {
  if (bands.empty()) throw Error(ErrorKind::internal, "built_up_index: no bands", "score");
  cv::Mat b;
  bands[0].convertTo(b, CV_32F);
  for (std::size_t i = 1; i < bands.size(); ++i) {
    cv::Mat f;
    bands[i].convertTo(f, CV_32F);
    cv::max(b, f, b);
  }
  cv::patchNaNs(b, 0.0);
  if (!valid.empty()) b.setTo(0.0f, valid == 0);
  return b;
}

std::vector<int> element_sizes(int max_size_px) {
  std::vector<int> sizes;
  for (const int s : {max_size_px / 4, max_size_px / 2, max_size_px}) {
    const int odd = std::max(3, s | 1);
    if (sizes.empty() || sizes.back() != odd) sizes.push_back(odd);
  }
  return sizes;
}

}  // namespace

int built_up_reach(int max_size_px) { return element_sizes(max_size_px).back(); }

cv::Mat built_up_index(const std::vector<cv::Mat>& bands, const cv::Mat& valid, int max_size_px,
                       double range) {
  const cv::Mat b = brightness(bands, valid);
  cv::Mat sum = cv::Mat::zeros(b.size(), CV_32F), top;
  const auto sizes = element_sizes(max_size_px);
  for (const int s : sizes) {
    // Pixels outside the window count as dark (0), as invalid ones do: the same at every tiling
    // as long as the halo covers the reach.
    cv::morphologyEx(b, top, cv::MORPH_TOPHAT, cv::getStructuringElement(cv::MORPH_RECT, {s, s}),
                     {-1, -1}, 1, cv::BORDER_CONSTANT, cv::Scalar(0));
    sum += top;
  }
  sum *= 1.0 / (static_cast<double>(sizes.size()) * (range > 0 ? range : 1.0));
  if (!valid.empty()) sum.setTo(0.0f, valid == 0);
  return sum;
}

double brightness_range(const std::vector<cv::Mat>& bands, const cv::Mat& valid) {
  const cv::Mat b = brightness(bands, valid);
  std::vector<float> v;
  v.reserve(static_cast<std::size_t>(b.total()));
  for (int r = 0; r < b.rows; ++r) {
    const auto* p = b.ptr<float>(r);
    const auto* m = valid.empty() ? nullptr : valid.ptr<std::uint8_t>(r);
    for (int c = 0; c < b.cols; ++c) {
      if (!m || m[c]) v.push_back(p[c]);
    }
  }
  if (v.size() < 2) return 1.0;
  const auto at = [&](double q) {
    const auto k = static_cast<std::ptrdiff_t>(q * static_cast<double>(v.size() - 1));
    std::nth_element(v.begin(), v.begin() + k, v.end());
    return static_cast<double>(v[static_cast<std::size_t>(k)]);
  };
  const double lo = at(0.01), hi = at(0.99);
  return hi > lo ? hi - lo : 1.0;
}

}  // namespace aftermath
