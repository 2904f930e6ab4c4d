// make_detector: the detectors by name, and "ensemble" (a weighted mean of member scores).
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "aftermath/core/error.hpp"
#include "aftermath/detect/detector.hpp"
#include "common.hpp"
#include "factories.hpp"

namespace aftermath {
namespace {

/// The ensemble's members with weight > 0, in a fixed order.
std::vector<std::pair<std::string, double>> ensemble_members(const DetectConfig& c) {
  std::vector<std::pair<std::string, double>> all{
      {"cva", c.ensemble_cva},   {"log-ratio", c.ensemble_log_ratio}, {"irmad", c.ensemble_irmad},
      {"ssim", c.ensemble_ssim}, {"texture", c.ensemble_texture},     {"ttest", c.ensemble_ttest}};
  std::vector<std::pair<std::string, double>> out;
  for (auto& m : all) {
    if (m.second > 0) out.push_back(m);
  }
  return out;
}

class EnsembleDetector final : public Detector {
 public:
  EnsembleDetector(std::vector<std::unique_ptr<Detector>> members, std::vector<double> weights)
      : members_(std::move(members)), weights_(std::move(weights)) {
    for (double w : weights_) total_ += w;
  }

  std::string name() const override { return "ensemble"; }

  void fit_samples(const std::vector<BandPair>& samples, const ForEach& for_each) override {
    for (auto& m : members_) m->fit(samples, for_each);
  }

  cv::Mat score(const BandPair& w) const override {
    std::vector<cv::Mat> layers;
    return score_with_layers(w, layers);
  }

  cv::Mat score_with_layers(const BandPair& w, std::vector<cv::Mat>& layers) const override {
    layers.clear();
    cv::Mat sum(w.valid.size(), CV_32F, cv::Scalar(0));
    std::vector<cv::Mat> own;
    for (std::size_t i = 0; i < members_.size(); ++i) {
      const cv::Mat s = members_[i]->score_with_layers(w, own);
      cv::scaleAdd(s, weights_[i] / total_, sum, sum);  // member order is fixed: deterministic
      layers.insert(layers.end(), own.begin(), own.end());
    }
    cv::min(sum, 1.0, sum);  // rounding of the weighted mean never leaves [0, 1]
    return sum;
  }

  std::vector<DetectorLayer> extra_layers() const override {
    std::vector<DetectorLayer> out;
    for (const auto& m : members_) {
      const auto l = m->extra_layers();
      out.insert(out.end(), l.begin(), l.end());
    }
    return out;
  }

  FitReport fit_report() const override {
    FitReport out;
    for (std::size_t i = 0; i < members_.size(); ++i) {
      out.push_back({"ensemble_weight_" + members_[i]->name(), {weights_[i]}});
      const auto r = members_[i]->fit_report();
      out.insert(out.end(), r.begin(), r.end());
    }
    return out;
  }

  int radius() const override {
    int r = 0;
    for (const auto& m : members_) r = std::max(r, m->radius());
    return r;
  }

 private:
  std::vector<std::unique_ptr<Detector>> members_;
  std::vector<double> weights_;
  double total_ = 0;
};

void require(bool ok, const std::string& what) {
  if (!ok) throw Error(ErrorKind::usage, what);
}

}  // namespace

std::unique_ptr<Detector> make_detector(const DetectConfig& c) {
  const double s = c.half_score_sigma;
  require(s > 0 && std::isfinite(s), "detect.half_score_sigma must be a positive number");
  if (c.method == "cva") {
    require(c.cva_half_score_sigma > 0 && std::isfinite(c.cva_half_score_sigma),
            "detect.cva_half_score_sigma must be a positive number");
    require(c.cva_radius >= 0, "detect.cva_radius must be >= 0");
    return detect::make_cva(c.cva_radius, c.cva_half_score_sigma, false);
  }
  if (c.method == "log-ratio") {
    require(c.log_ratio_radius >= 0, "detect.log_ratio_radius must be >= 0");
    return detect::make_cva(c.log_ratio_radius, s, true);
  }
  if (c.method == "irmad") {
    require(c.irmad_max_iterations >= 1, "detect.irmad_max_iterations must be >= 1");
    require(c.irmad_tolerance > 0, "detect.irmad_tolerance must be > 0");
    return detect::make_irmad(c.irmad_max_iterations, c.irmad_tolerance, s);
  }
  if (c.method == "ssim") {
    require(c.ssim_radius >= 1, "detect.ssim_radius must be >= 1");
    return detect::make_ssim(c.ssim_radius, s);
  }
  if (c.method == "texture") {
    require(c.texture_radius >= 1, "detect.texture_radius must be >= 1");
    return detect::make_texture(c.texture_radius, s);
  }
  if (c.method == "ttest") {
    require(c.ttest_radius >= 0, "detect.ttest_radius must be >= 0");
    return detect::make_ttest(c.ttest_radius, s);
  }
  if (c.method == "ensemble") {
    std::vector<std::unique_ptr<Detector>> members;
    std::vector<double> weights;
    for (const auto& [name, weight] : ensemble_members(c)) {
      require(std::isfinite(weight), "detect.ensemble_* weights must be finite");
      DetectConfig member = c;
      member.method = name;
      members.push_back(make_detector(member));
      weights.push_back(weight);
    }
    require(!members.empty(),
            "detect.method ensemble needs at least one detect.ensemble_* weight > 0");
    return std::make_unique<EnsembleDetector>(std::move(members), std::move(weights));
  }
  throw Error(
      ErrorKind::usage,
      "unknown detector '" + c.method +
          "' (detect.method; known: cva, log-ratio, irmad, ssim, texture, ttest, ensemble)");
}

std::vector<DetectorLayer> detector_layers(const DetectConfig& config) {
  return make_detector(config)->extra_layers();
}

}  // namespace aftermath
