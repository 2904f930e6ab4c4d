// "ttest": pixel-wise Welch t-test between the pre and the post scenes (PWTT, Ballinger 2024).
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

/// Normal deviate with the two-sided p-value of Student's t with `df` degrees of freedom
/// (Wallace 1959; within ~1% of the exact value for df >= 3, exact as df -> inf).
double t_to_z(double t, double df) {
  const double z = std::sqrt(df * std::log1p(t * t / df)) * (8.0 * df + 1.0) / (8.0 * df + 3.0);
  return t < 0 ? -z : z;
}

class TtestDetector final : public Detector {
 public:
  TtestDetector(int radius, double half_score_sigma)
      : radius_(radius), s2_(half_score_sigma * half_score_sigma) {}

  std::string name() const override { return "ttest"; }

  void fit_samples(const std::vector<BandPair>& samples, const ForEach& /*for_each*/) override {
    std::size_t bands = 0;
    bool first = true;
    for (const auto& s : samples) {
      check_pair(s, "ttest fit");
      if (s.valid.empty()) continue;
      if (first) {
        bands = s.pre.size();
        pre_scenes_ = 1 + s.more_pre.size();
        post_scenes_ = 1 + s.more_post.size();
        first = false;
      }
    }
    const std::size_t box = static_cast<std::size_t>((2 * radius_ + 1) * (2 * radius_ + 1));
    if (pre_scenes_ * box < 2 || post_scenes_ * box < 2) {
      throw Error(ErrorKind::usage,
                  "detect.method ttest needs at least 2 samples per side: give several scenes "
                  "per side (--pre A --pre B ...) or set detect.ttest_radius >= 1");
    }
    // Centre per band (the pre median): sums of squares without cancellation.
    centre_.assign(bands, 0.0);
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
      if (!v.empty()) centre_[b] = median_of(v);
    }
    // Calibration of z per band on the samples: with one scene a side, the box's samples are
    // neighbours, not independent repeats, and residual misregistration or illumination shifts
    // whole areas, so the raw t is overconfident. z is centred on its no-change median and divided
    // by its no-change scale when that is wider than the test's own N(0, 1) (never narrower: the
    // t distribution is the floor).
    scale_.assign(bands, RobustScale{});
    fitted_ = true;
    std::vector<std::vector<double>> zs(bands);
    for (const auto& s : samples) {
      if (s.pre.size() != bands || s.valid.empty()) continue;
      cv::Mat t;
      const std::vector<cv::Mat> z = band_z(s, t);
      for (std::size_t b = 0; b < bands; ++b) {
        for (int r = 0; r < z[b].rows; ++r) {
          const auto* x = z[b].ptr<double>(r);
          for (int c = 0; c < z[b].cols; ++c) {
            if (std::isfinite(x[c])) zs[b].push_back(x[c]);
          }
        }
      }
    }
    for (std::size_t b = 0; b < bands; ++b) scale_[b] = robust_scale(zs[b], 1.0);
  }

  cv::Mat score(const BandPair& w) const override {
    std::vector<cv::Mat> layers;
    return score_with_layers(w, layers);
  }

  cv::Mat score_with_layers(const BandPair& w, std::vector<cv::Mat>& layers) const override {
    if (!fitted_) throw Error(ErrorKind::internal, "ttest: score() called before fit()");
    check_pair(w, "ttest score");
    cv::Mat t_layer;
    const std::vector<cv::Mat> z = band_z(w, t_layer);
    const std::size_t bands = z.size();
    const cv::Mat ok = usable_mask(w);
    cv::Mat out(ok.size(), CV_32F, cv::Scalar(0));
    for (int r = 0; r < out.rows; ++r) {
      const auto* o = ok.ptr<std::uint8_t>(r);
      auto* s = out.ptr<float>(r);
      for (int c = 0; c < out.cols; ++c) {
        if (!o[c] || bands == 0) continue;
        double m2 = 0;
        for (std::size_t b = 0; b < bands; ++b) {
          const double zc = (z[b].at<double>(r, c) - scale_[b].median) / scale_[b].sigma;
          m2 += zc * zc;  // NaN (too few samples in the box) propagates: no evidence
        }
        s[c] = magnitude_score(m2 / static_cast<double>(bands), s2_);
      }
    }
    layers.assign(1, t_layer);
    return out;
  }

 private:
  /// Per band the normal deviate z of the Welch t (CV_64F, NaN where not usable or a side has
  /// fewer than 2 samples); `t_layer` the t of the band with the largest |z| (CV_32F, NaN).
  std::vector<cv::Mat> band_z(const BandPair& w, cv::Mat& t_layer) const {
    const std::size_t bands = centre_.size();
    if (w.pre.size() != bands || 1 + w.more_pre.size() != pre_scenes_ ||
        1 + w.more_post.size() != post_scenes_) {
      throw Error(ErrorKind::internal, "ttest score: bands or scenes differ from the fit");
    }
    const cv::Mat ok = usable_mask(w);
    cv::Mat okd;
    ok.convertTo(okd, CV_64F);
    const cv::Mat count = box_sum(okd, radius_);
    const cv::Size size = ok.size();
    cv::Mat best_z(size, CV_64F, cv::Scalar(-1));
    t_layer = cv::Mat(size, CV_32F, cv::Scalar(std::numeric_limits<float>::quiet_NaN()));
    std::vector<cv::Mat> zs;
    std::vector<const std::vector<cv::Mat>*> pre_side{&w.pre}, post_side{&w.post};
    for (const auto& s : w.more_pre) pre_side.push_back(&s);
    for (const auto& s : w.more_post) post_side.push_back(&s);
    for (std::size_t b = 0; b < bands; ++b) {
      // Per side: box sums of x and x^2 over every scene, added in scene order (deterministic).
      auto side_sums = [&](const std::vector<const std::vector<cv::Mat>*>& scenes, cv::Mat& s1,
                           cv::Mat& s2) {
        s1 = cv::Mat(size, CV_64F, cv::Scalar(0));
        s2 = cv::Mat(size, CV_64F, cv::Scalar(0));
        cv::Mat x(size, CV_64F);
        for (const auto* scene : scenes) {
          const cv::Mat& band = (*scene)[b];
          for (int r = 0; r < size.height; ++r) {
            const auto* o = ok.ptr<std::uint8_t>(r);
            const auto* v = band.ptr<float>(r);
            auto* xr = x.ptr<double>(r);
            for (int c = 0; c < size.width; ++c) xr[c] = o[c] ? v[c] - centre_[b] : 0.0;
          }
          s1 += box_sum(x, radius_);
          s2 += box_sum(x.mul(x), radius_);
        }
      };
      cv::Mat p1, p2, q1, q2;
      side_sums(pre_side, p1, p2);
      side_sums(post_side, q1, q2);
      const double np_scale = static_cast<double>(pre_scenes_),
                   nq_scale = static_cast<double>(post_scenes_);
      cv::Mat zb(size, CV_64F);
      for (int r = 0; r < size.height; ++r) {
        const auto* o = ok.ptr<std::uint8_t>(r);
        const auto* k = count.ptr<double>(r);
        auto* a = zb.ptr<double>(r);
        auto* bz = best_z.ptr<double>(r);
        auto* tl = t_layer.ptr<float>(r);
        for (int c = 0; c < size.width; ++c) {
          const double np = k[c] * np_scale, nq = k[c] * nq_scale;
          if (!o[c] || np < 2 || nq < 2) {
            a[c] = std::numeric_limits<double>::quiet_NaN();
            continue;
          }
          const double mp = p1.at<double>(r, c) / np, mq = q1.at<double>(r, c) / nq;
          const double vp =
              std::max(0.0, (p2.at<double>(r, c) - p1.at<double>(r, c) * mp) / (np - 1));
          const double vq =
              std::max(0.0, (q2.at<double>(r, c) - q1.at<double>(r, c) * mq) / (nq - 1));
          const double ep = vp / np, eq = vq / nq;
          // Standard error floor far below any sensor noise, so identical constant samples give t =
          // 0.
          const double floor = 1e-6 * (1.0 + std::abs(mp + centre_[b]));
          const double se2 = std::max(ep + eq, floor * floor);
          const double t = (mq - mp) / std::sqrt(se2);
          const double denom = ep * ep / (np - 1) + eq * eq / (nq - 1);
          const double df = std::max(1.0, denom > 0 ? (ep + eq) * (ep + eq) / denom : np + nq - 2);
          const double z = t_to_z(t, df);
          a[c] = z;
          if (std::abs(z) > bz[c]) {
            bz[c] = std::abs(z);
            tl[c] = static_cast<float>(t);
          }
        }
      }
      zs.push_back(zb);
    }
    return zs;
  }

 public:
  std::vector<DetectorLayer> extra_layers() const override {
    return {{"ttest_t", "Welch t statistic, post minus pre (band with the largest |t|)", "1"}};
  }

  FitReport fit_report() const override {
    return {{"ttest_pre_scenes", {static_cast<double>(pre_scenes_)}},
            {"ttest_post_scenes", {static_cast<double>(post_scenes_)}}};
  }

  int radius() const override { return radius_; }

 private:
  int radius_;
  double s2_;
  bool fitted_ = false;
  std::size_t pre_scenes_ = 1, post_scenes_ = 1;
  std::vector<double> centre_;
  std::vector<RobustScale> scale_;
};

}  // namespace

std::unique_ptr<Detector> make_ttest(int radius, double half_score_sigma) {
  return std::make_unique<TtestDetector>(radius, half_score_sigma);
}

}  // namespace aftermath::detect
