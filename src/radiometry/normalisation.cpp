#include "aftermath/radiometry/normalisation.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "aftermath/core/error.hpp"

namespace aftermath {
namespace {

/// Exact median (mean of the two middle values for an even count). Reorders `v`. Empty -> 0.
double median_of(std::vector<double>& v) {
  if (v.empty()) return 0.0;
  const std::size_t n = v.size();
  const std::size_t mid = n / 2;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid), v.end());
  const double upper = v[mid];
  if (n % 2 == 1) return upper;
  const double lower = *std::max_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid));
  return 0.5 * (lower + upper);
}

/// Median absolute deviation about `med`. Overwrites `v`.
double mad_of(std::vector<double>& v, double med) {
  for (double& x : v) x = std::abs(x - med);
  return median_of(v);
}

void check_band(const cv::Mat& band, const cv::Size& size, const char* what) {
  if (band.type() != CV_32F || band.size() != size) {
    throw Error(ErrorKind::internal,
                std::string("fit_robust_linear: ") + what + " band is not CV_32F of the validity mask's size");
  }
}

}  // namespace

LinearNormalisation fit_robust_linear(const std::vector<cv::Mat>& pre, const std::vector<cv::Mat>& post,
                                      const cv::Mat& valid) {
  if (pre.size() != post.size()) {
    throw Error(ErrorKind::internal, "fit_robust_linear: pre and post band counts differ");
  }
  if (!pre.empty() && valid.type() != CV_8U) {
    throw Error(ErrorKind::internal, "fit_robust_linear: validity mask is not CV_8U");
  }
  LinearNormalisation n;
  n.gain.assign(pre.size(), 1.0);
  n.offset.assign(pre.size(), 0.0);
  std::vector<double> a, b;
  for (std::size_t k = 0; k < pre.size(); ++k) {
    check_band(pre[k], valid.size(), "pre");
    check_band(post[k], valid.size(), "post");
    a.clear();
    b.clear();
    for (int r = 0; r < valid.rows; ++r) {
      const auto* v = valid.ptr<std::uint8_t>(r);
      const auto* p = pre[k].ptr<float>(r);
      const auto* q = post[k].ptr<float>(r);
      for (int c = 0; c < valid.cols; ++c) {
        if (v[c] == 0) continue;
        if (!std::isfinite(p[c]) || !std::isfinite(q[c])) continue;
        a.push_back(p[c]);
        b.push_back(q[c]);
      }
    }
    if (a.empty()) continue;  // no valid pixel: identity
    const double med_pre = median_of(a);
    const double med_post = median_of(b);
    const double mad_pre = mad_of(a, med_pre);
    const double mad_post = mad_of(b, med_post);
    // "No spread": a MAD at the level of float32 rounding of the values.
    const double tiny = 1e-7 * (1.0 + std::abs(med_post));
    if (!(mad_post > tiny)) {
      n.gain[k] = 1.0;
      n.offset[k] = med_pre - med_post;
    } else {
      n.gain[k] = mad_pre / mad_post;
      n.offset[k] = med_pre - n.gain[k] * med_post;
    }
  }
  return n;
}

void apply(const LinearNormalisation& n, std::vector<cv::Mat>& post_bands) {
  if (n.gain.empty() && n.offset.empty()) return;  // identity
  if (n.gain.size() != post_bands.size() || n.offset.size() != post_bands.size()) {
    throw Error(ErrorKind::internal, "apply(LinearNormalisation): band count differs from the fit");
  }
  for (std::size_t k = 0; k < post_bands.size(); ++k) {
    cv::Mat& band = post_bands[k];
    if (band.empty()) continue;
    if (band.type() != CV_32F) {
      throw Error(ErrorKind::internal, "apply(LinearNormalisation): band is not CV_32F");
    }
    if (n.gain[k] == 1.0 && n.offset[k] == 0.0) continue;
    const double g = n.gain[k], o = n.offset[k];
    for (int r = 0; r < band.rows; ++r) {
      auto* p = band.ptr<float>(r);
      for (int c = 0; c < band.cols; ++c) p[c] = static_cast<float>(g * p[c] + o);
    }
  }
}

}  // namespace aftermath
