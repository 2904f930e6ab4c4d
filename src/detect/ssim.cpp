// "ssim": local structural dissimilarity (Wang et al. 2004 SSIM over a box window).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "aftermath/core/error.hpp"
#include "aftermath/core/util.hpp"
#include "common.hpp"
#include "factories.hpp"

namespace aftermath::detect {
namespace {

/// 1st..99th percentile spread of `v` (reordered); the dynamic range L of SSIM's constants.
double robust_range(std::vector<double>& v) {
  if (v.size() < 2) return 1.0;
  std::sort(v.begin(), v.end());
  const double lo = v[static_cast<std::size_t>(0.01 * static_cast<double>(v.size() - 1))];
  const double hi = v[static_cast<std::size_t>(0.99 * static_cast<double>(v.size() - 1))];
  return hi > lo ? hi - lo : std::max(1.0, std::abs(hi));
}

class SsimDetector final : public Detector {
 public:
  SsimDetector(int radius, double half_score_sigma)
      : radius_(radius), s2_(half_score_sigma * half_score_sigma) {}

  std::string name() const override { return "ssim"; }

  void fit_samples(const std::vector<BandPair>& samples, const ForEach& /*for_each*/) override {
    std::size_t bands = 0;
    for (const auto& s : samples) {
      check_pair(s, "ssim fit");
      bands = std::max(bands, s.pre.size());
    }
    centre_.assign(bands, 0.0);
    c1_.assign(bands, 1e-4);
    c2_.assign(bands, 9e-4);
    std::vector<double> v;
    for (std::size_t b = 0; b < bands; ++b) {
      v.clear();
      for (const auto& s : samples) {
        if (s.pre.size() != bands) continue;
        const cv::Mat ok = usable_mask(s);
        for (int r = 0; r < ok.rows; ++r) {
          for (int c = 0; c < ok.cols; ++c) {
            if (ok.at<std::uint8_t>(r, c)) v.push_back(s.pre[b].at<float>(r, c));
          }
        }
      }
      if (v.empty()) continue;
      std::vector<double> copy = v;
      const double l = robust_range(v);
      c1_[b] = (0.01 * l) * (0.01 * l);
      c2_[b] = (0.03 * l) * (0.03 * l);
      centre_[b] = median_of(copy);
    }
    fitted_ = true;
    std::vector<cv::Mat> d;
    for (const auto& s : samples) d.push_back(s.pre.size() == bands ? dissimilarity(s) : cv::Mat());
    std::vector<BandPair> used;
    std::vector<cv::Mat> used_d;
    for (std::size_t i = 0; i < samples.size(); ++i) {
      if (d[i].empty()) continue;
      used.push_back(samples[i]);
      used_d.push_back(d[i]);
    }
    std::vector<double> values = collect(used, used_d);
    scale_ = robust_scale(values, 1e-6);
  }

  cv::Mat score(const BandPair& w) const override {
    if (!fitted_) throw Error(ErrorKind::internal, "ssim: score() called before fit()");
    check_pair(w, "ssim score");
    if (w.pre.size() != centre_.size())
      throw Error(ErrorKind::internal, "ssim score: band count differs from the fit");
    const cv::Mat d = dissimilarity(w);
    cv::Mat out(w.valid.size(), CV_32F, cv::Scalar(0));
    for (int r = 0; r < out.rows; ++r) {
      const auto* x = d.ptr<double>(r);
      auto* o = out.ptr<float>(r);
      for (int c = 0; c < out.cols; ++c) {
        if (std::isnan(x[c])) continue;
        const double z =
            std::max(0.0, (x[c] - scale_.median) / scale_.sigma);  // only more dissimilar counts
        o[c] = magnitude_score(z * z, s2_);
      }
    }
    return out;
  }

  int radius() const override { return radius_; }

 private:
  /// D = mean over bands of (1 - SSIM) / 2 in [0, 1] (CV_64F); NaN where not usable or the box
  /// holds fewer than 2 usable pixels.
  cv::Mat dissimilarity(const BandPair& w) const {
    const cv::Mat ok = usable_mask(w);
    cv::Mat okd;
    ok.convertTo(okd, CV_64F);
    const cv::Mat n = box_sum(okd, radius_);
    cv::Mat acc(w.valid.size(), CV_64F, cv::Scalar(0));
    const std::size_t bands = w.pre.size();
    for (std::size_t b = 0; b < bands; ++b) {
      // Centred values (0 where not usable): variances without cancellation.
      cv::Mat x(ok.size(), CV_64F), y(ok.size(), CV_64F);
      for (int r = 0; r < ok.rows; ++r) {
        const auto* o = ok.ptr<std::uint8_t>(r);
        const auto* p = w.pre[b].ptr<float>(r);
        const auto* q = w.post[b].ptr<float>(r);
        auto* xr = x.ptr<double>(r);
        auto* yr = y.ptr<double>(r);
        for (int c = 0; c < ok.cols; ++c) {
          xr[c] = o[c] ? p[c] - centre_[b] : 0.0;
          yr[c] = o[c] ? q[c] - centre_[b] : 0.0;
        }
      }
      const cv::Mat sx = box_sum(x, radius_), sy = box_sum(y, radius_);
      const cv::Mat sxx = box_sum(x.mul(x), radius_), syy = box_sum(y.mul(y), radius_),
                    sxy = box_sum(x.mul(y), radius_);
      const double c1 = c1_[b], c2 = c2_[b], centre = centre_[b];
      for (int r = 0; r < ok.rows; ++r) {
        const auto* nn = n.ptr<double>(r);
        auto* a = acc.ptr<double>(r);
        for (int c = 0; c < ok.cols; ++c) {
          const double k = nn[c];
          if (k < 2) continue;
          const double mx = sx.at<double>(r, c) / k, my = sy.at<double>(r, c) / k;
          const double vx = std::max(0.0, sxx.at<double>(r, c) / k - mx * mx);
          const double vy = std::max(0.0, syy.at<double>(r, c) / k - my * my);
          const double cxy = sxy.at<double>(r, c) / k - mx * my;
          const double ux = mx + centre,
                       uy = my + centre;  // SSIM's luminance term needs the true means
          const double ssim =
              ((2 * ux * uy + c1) * (2 * cxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
          a[c] += std::clamp((1.0 - ssim) / 2.0, 0.0, 1.0);
        }
      }
    }
    cv::Mat out(ok.size(), CV_64F);
    for (int r = 0; r < ok.rows; ++r) {
      const auto* o = ok.ptr<std::uint8_t>(r);
      const auto* nn = n.ptr<double>(r);
      const auto* a = acc.ptr<double>(r);
      auto* d = out.ptr<double>(r);
      for (int c = 0; c < ok.cols; ++c) {
        d[c] = (o[c] && nn[c] >= 2 && bands > 0) ? a[c] / static_cast<double>(bands)
                                                 : std::numeric_limits<double>::quiet_NaN();
      }
    }
    return out;
  }

  int radius_;
  double s2_;
  bool fitted_ = false;
  std::vector<double> centre_, c1_, c2_;
  RobustScale scale_;
};

}  // namespace

std::unique_ptr<Detector> make_ssim(int radius, double half_score_sigma) {
  return std::make_unique<SsimDetector>(radius, half_score_sigma);
}

}  // namespace aftermath::detect
