// "texture": change of local gradient energy (log ratio post / pre, standardised per band).
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

/// Local gradient energy of one band: mean over the (2r+1)^2 box of |central-difference
/// gradient|^2 where the pixel and its 4 neighbours are usable (CV_64F); NaN where the box has
/// none.
cv::Mat gradient_energy(const cv::Mat& band, const cv::Mat& ok, int r) {
  const int rows = band.rows, cols = band.cols;
  cv::Mat g(rows, cols, CV_64F, cv::Scalar(0)), m(rows, cols, CV_64F, cv::Scalar(0));
  for (int y = 1; y + 1 < rows; ++y) {
    const auto* up = band.ptr<float>(y - 1);
    const auto* mid = band.ptr<float>(y);
    const auto* dn = band.ptr<float>(y + 1);
    const auto* oku = ok.ptr<std::uint8_t>(y - 1);
    const auto* okm = ok.ptr<std::uint8_t>(y);
    const auto* okd = ok.ptr<std::uint8_t>(y + 1);
    auto* gr = g.ptr<double>(y);
    auto* mr = m.ptr<double>(y);
    for (int x = 1; x + 1 < cols; ++x) {
      if (!(okm[x] && okm[x - 1] && okm[x + 1] && oku[x] && okd[x])) continue;
      const double gx = 0.5 * (double{mid[x + 1]} - mid[x - 1]);
      const double gy = 0.5 * (double{dn[x]} - up[x]);
      gr[x] = gx * gx + gy * gy;
      mr[x] = 1.0;
    }
  }
  const cv::Mat sg = box_sum(g, r), sm = box_sum(m, r);
  cv::Mat e(rows, cols, CV_64F);
  for (int y = 0; y < rows; ++y) {
    for (int x = 0; x < cols; ++x) {
      const double k = sm.at<double>(y, x);
      e.at<double>(y, x) =
          k > 0 ? sg.at<double>(y, x) / k : std::numeric_limits<double>::quiet_NaN();
    }
  }
  return e;
}

class TextureDetector final : public Detector {
 public:
  TextureDetector(int radius, double half_score_sigma)
      : radius_(radius), s2_(half_score_sigma * half_score_sigma) {}

  std::string name() const override { return "texture"; }

  void fit_samples(const std::vector<BandPair>& samples, const ForEach& /*for_each*/) override {
    std::size_t bands = 0;
    for (const auto& s : samples) {
      check_pair(s, "texture fit");
      bands = std::max(bands, s.pre.size());
    }
    offset_.assign(bands, 1e-6);
    scale_.assign(bands, RobustScale{});
    std::vector<BandPair> used;
    for (const auto& s : samples) {
      if (s.pre.size() == bands && !s.valid.empty()) used.push_back(s);
    }
    // Offset: 1% of the median pre energy, so that flat areas (energy ~ 0) do not turn sensor
    // noise into huge log ratios.
    for (std::size_t b = 0; b < bands; ++b) {
      std::vector<cv::Mat> e;
      for (const auto& s : used) e.push_back(gradient_energy(s.pre[b], usable_mask(s), radius_));
      std::vector<double> v = collect(used, e);
      if (!v.empty()) offset_[b] = std::max(1e-6, 0.01 * median_of(v));
    }
    fitted_ = true;
    for (std::size_t b = 0; b < bands; ++b) {
      std::vector<cv::Mat> t;
      for (const auto& s : used) t.push_back(log_ratio(s, b, usable_mask(s)));
      std::vector<double> v = collect(used, t);
      scale_[b] = robust_scale(v, 1e-3);
    }
  }

  cv::Mat score(const BandPair& w) const override {
    if (!fitted_) throw Error(ErrorKind::internal, "texture: score() called before fit()");
    check_pair(w, "texture score");
    const std::size_t bands = offset_.size();
    if (w.pre.size() != bands)
      throw Error(ErrorKind::internal, "texture score: band count differs from the fit");
    const cv::Mat ok = usable_mask(w);
    cv::Mat m2(w.valid.size(), CV_64F, cv::Scalar(0));
    for (std::size_t b = 0; b < bands; ++b) {
      const cv::Mat t = log_ratio(w, b, ok);
      const double med = scale_[b].median, inv = 1.0 / scale_[b].sigma;
      for (int r = 0; r < t.rows; ++r) {
        const auto* x = t.ptr<double>(r);
        auto* a = m2.ptr<double>(r);
        for (int c = 0; c < t.cols; ++c) {
          const double z = (x[c] - med) * inv;
          a[c] += z * z;  // NaN propagates: no evidence
        }
      }
    }
    cv::Mat out(w.valid.size(), CV_32F, cv::Scalar(0));
    for (int r = 0; r < out.rows; ++r) {
      const auto* o = ok.ptr<std::uint8_t>(r);
      const auto* a = m2.ptr<double>(r);
      auto* s = out.ptr<float>(r);
      for (int c = 0; c < out.cols; ++c) {
        if (o[c] && bands > 0) s[c] = magnitude_score(a[c] / static_cast<double>(bands), s2_);
      }
    }
    return out;
  }

  int radius() const override { return radius_ + 1; }

 private:
  /// ln((E_post + e) / (E_pre + e)) of band b (CV_64F, NaN where undefined).
  cv::Mat log_ratio(const BandPair& w, std::size_t b, const cv::Mat& ok) const {
    const cv::Mat ep = gradient_energy(w.pre[b], ok, radius_),
                  eq = gradient_energy(w.post[b], ok, radius_);
    cv::Mat t(ok.size(), CV_64F);
    const double e = offset_[b];
    for (int r = 0; r < t.rows; ++r) {
      const auto* o = ok.ptr<std::uint8_t>(r);
      for (int c = 0; c < t.cols; ++c) {
        t.at<double>(r, c) = o[c] ? std::log((eq.at<double>(r, c) + e) / (ep.at<double>(r, c) + e))
                                  : std::numeric_limits<double>::quiet_NaN();
      }
    }
    return t;
  }

  int radius_;
  double s2_;
  bool fitted_ = false;
  std::vector<double> offset_;
  std::vector<RobustScale> scale_;
};

}  // namespace

std::unique_ptr<Detector> make_texture(int radius, double half_score_sigma) {
  return std::make_unique<TextureDetector>(radius, half_score_sigma);
}

}  // namespace aftermath::detect
