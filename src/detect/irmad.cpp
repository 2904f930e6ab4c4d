// "irmad": IR-MAD chi-square change statistic (Nielsen 2007).
#include "aftermath/radiometry/irmad.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "aftermath/core/error.hpp"
#include "common.hpp"
#include "factories.hpp"

namespace aftermath::detect {
namespace {

class IrmadDetector final : public Detector {
 public:
  IrmadDetector(int max_iterations, double tolerance, double half_score_sigma)
      : options_{max_iterations, tolerance}, s2_(half_score_sigma * half_score_sigma) {}

  std::string name() const override { return "irmad"; }

  void fit_samples(const std::vector<BandPair>& samples, const ForEach& /*for_each*/) override {
    // All samples as one row each, concatenated (the fit sees every sample pixel once).
    std::vector<cv::Mat> pre, post;
    cv::Mat valid;
    std::size_t bands = 0;
    for (const auto& s : samples) {
      check_pair(s, "irmad fit");
      if (!s.pre.empty()) bands = s.pre.size();
    }
    pre.resize(bands);
    post.resize(bands);
    std::vector<cv::Mat> vs;
    for (std::size_t b = 0; b < bands; ++b) {
      std::vector<cv::Mat> a, q;
      for (const auto& s : samples) {
        if (s.pre.size() != bands || s.valid.empty()) continue;
        a.push_back(s.pre[b].reshape(1, 1));
        q.push_back(s.post[b].reshape(1, 1));
      }
      if (!a.empty()) {
        cv::hconcat(a, pre[b]);
        cv::hconcat(q, post[b]);
      }
    }
    for (const auto& s : samples) {
      if (s.pre.size() == bands && !s.valid.empty()) vs.push_back(s.valid.reshape(1, 1));
    }
    bands_ = bands;
    fitted_ = true;
    model_ = IrmadModel{};
    if (bands == 0 || vs.empty()) return;
    cv::hconcat(vs, valid);
    // Too few valid sample pixels for a CCA (a scene that is nearly all nodata): nothing can be
    // told apart, so every pixel scores 0, like the other detectors on such a scene.
    if (cv::countNonZero(valid) < static_cast<int>(2 * bands + 2)) return;
    model_ = fit_irmad(pre, post, valid, options_);
  }

  cv::Mat score(const BandPair& w) const override {
    std::vector<cv::Mat> layers;
    return score_with_layers(w, layers);
  }

  cv::Mat score_with_layers(const BandPair& w, std::vector<cv::Mat>& layers) const override {
    if (!fitted_) throw Error(ErrorKind::internal, "irmad: score() called before fit()");
    check_pair(w, "irmad score");
    const std::size_t p = model_.bands();
    if (w.pre.size() != bands_)
      throw Error(ErrorKind::internal, "irmad score: band count differs from the fit");
    cv::Mat out(w.valid.size(), CV_32F, cv::Scalar(0));
    cv::Mat prob(w.valid.size(), CV_32F, cv::Scalar(std::numeric_limits<float>::quiet_NaN()));
    if (p == 0) {  // not fitted on any pixel: no evidence anywhere
      layers.assign(1, prob);
      return out;
    }
    const cv::Mat ok = usable_mask(w);
    std::vector<double> a(p), b(p);
    const int dof = static_cast<int>(p);
    for (int r = 0; r < out.rows; ++r) {
      const auto* o = ok.ptr<std::uint8_t>(r);
      auto* sc = out.ptr<float>(r);
      auto* pr = prob.ptr<float>(r);
      for (int c = 0; c < out.cols; ++c) {
        if (!o[c]) continue;
        for (std::size_t k = 0; k < p; ++k) {
          a[k] = w.pre[k].ptr<float>(r)[c];
          b[k] = w.post[k].ptr<float>(r)[c];
        }
        const double z = model_.chi_square(a.data(), b.data());
        sc[c] = magnitude_score(z / static_cast<double>(p), s2_);
        pr[c] = static_cast<float>(chi_square_sf(z, dof));
      }
    }
    layers.assign(1, prob);
    return out;
  }

  std::vector<DetectorLayer> extra_layers() const override {
    return {{"irmad_no_change_probability",
             "IR-MAD chi-square no-change probability P(chi2 > Z) (1 = surely unchanged)", "1"}};
  }

  FitReport fit_report() const override {
    return {{"irmad_iterations", {static_cast<double>(model_.iterations)}},
            {"irmad_converged", {model_.converged ? 1.0 : 0.0}},
            {"irmad_canonical_correlations", model_.rho},
            {"irmad_correlation_change", model_.rho_change},
            {"irmad_pixels", {static_cast<double>(model_.pixels)}}};
  }

 private:
  IrmadOptions options_;
  double s2_;
  IrmadModel model_;
  std::size_t bands_ = 0;
  bool fitted_ = false;
};

}  // namespace

std::unique_ptr<Detector> make_irmad(int max_iterations, double tolerance,
                                     double half_score_sigma) {
  return std::make_unique<IrmadDetector>(max_iterations, tolerance, half_score_sigma);
}

}  // namespace aftermath::detect
