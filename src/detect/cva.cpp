#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "aftermath/core/error.hpp"
#include "aftermath/detect/detector.hpp"

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

void check_pair(const BandPair& p, const char* who) {
  if (p.pre.size() != p.post.size()) {
    throw Error(ErrorKind::internal, std::string(who) + ": pre and post band counts differ");
  }
  if (p.valid.type() != CV_8U) {
    throw Error(ErrorKind::internal, std::string(who) + ": validity mask is not CV_8U");
  }
  for (std::size_t k = 0; k < p.pre.size(); ++k) {
    if (p.pre[k].type() != CV_32F || p.post[k].type() != CV_32F || p.pre[k].size() != p.valid.size() ||
        p.post[k].size() != p.valid.size()) {
      throw Error(ErrorKind::internal, std::string(who) + ": bands must be CV_32F of the validity mask's size");
    }
  }
}

/// Change-vector analysis. Per band b: d = post - pre, z = (d - median_b) / sigma_b with
/// sigma_b = 1.4826 MAD of d over the fit samples; m^2 = mean_b z^2; score = m^2 / (m^2 + s^2).
///
/// sigma floor: sigma_b >= 1e-4 * (1 + median |pre_b|) (and >= 1e-12). This is far above the
/// float32 rounding of normalised values (~1e-7 relative) and far below any sensor noise, so a
/// constant or noise-free scene never divides by zero and rounding residue never scores as change.
class CvaDetector final : public Detector {
 public:
  explicit CvaDetector(double half_score_sigma) : s2_(half_score_sigma * half_score_sigma) {}

  std::string name() const override { return "cva"; }

  void fit(const std::vector<BandPair>& samples) override {
    std::size_t bands = 0;
    bool have_bands = false;
    for (const auto& s : samples) {
      check_pair(s, "cva fit");
      if (s.valid.empty() && s.pre.empty()) continue;
      if (!have_bands) {
        bands = s.pre.size();
        have_bands = true;
      } else if (s.pre.size() != bands) {
        throw Error(ErrorKind::internal, "cva fit: samples differ in band count");
      }
    }
    median_.assign(bands, 0.0);
    sigma_.assign(bands, 1.0);
    std::vector<double> d, mag;
    for (std::size_t b = 0; b < bands; ++b) {
      d.clear();
      mag.clear();
      for (const auto& s : samples) {
        if (s.pre.size() != bands) continue;
        for (int r = 0; r < s.valid.rows; ++r) {
          const auto* v = s.valid.ptr<std::uint8_t>(r);
          const auto* p = s.pre[b].ptr<float>(r);
          const auto* q = s.post[b].ptr<float>(r);
          for (int c = 0; c < s.valid.cols; ++c) {
            if (v[c] == 0 || !std::isfinite(p[c]) || !std::isfinite(q[c])) continue;
            d.push_back(static_cast<double>(q[c]) - static_cast<double>(p[c]));
            mag.push_back(std::abs(static_cast<double>(p[c])));
          }
        }
      }
      if (d.empty()) continue;  // no valid sample: median 0, sigma 1 (nothing valid to score anyway)
      const double med = median_of(d);
      for (double& x : d) x = std::abs(x - med);
      const double mad = median_of(d);
      const double floor = std::max(1e-12, 1e-4 * (1.0 + median_of(mag)));
      median_[b] = med;
      sigma_[b] = std::max(1.4826 * mad, floor);
    }
    fitted_ = true;
  }

  cv::Mat score(const BandPair& w) const override {
    if (!fitted_) throw Error(ErrorKind::internal, "cva: score() called before fit()");
    check_pair(w, "cva score");
    if (w.pre.size() != median_.size()) {
      throw Error(ErrorKind::internal, "cva score: band count differs from the fit");
    }
    cv::Mat out(w.valid.size(), CV_32F, cv::Scalar(0));
    const std::size_t bands = median_.size();
    if (bands == 0) return out;
    std::vector<double> inv(bands);
    for (std::size_t b = 0; b < bands; ++b) inv[b] = 1.0 / sigma_[b];
    std::vector<const float*> pre(bands), post(bands);
    for (int r = 0; r < out.rows; ++r) {
      const auto* v = w.valid.ptr<std::uint8_t>(r);
      for (std::size_t b = 0; b < bands; ++b) {
        pre[b] = w.pre[b].ptr<float>(r);
        post[b] = w.post[b].ptr<float>(r);
      }
      auto* o = out.ptr<float>(r);
      for (int c = 0; c < out.cols; ++c) {
        if (v[c] == 0) continue;
        double m2 = 0;
        for (std::size_t b = 0; b < bands; ++b) {
          const double z = ((static_cast<double>(post[b][c]) - pre[b][c]) - median_[b]) * inv[b];
          m2 += z * z;
        }
        m2 /= static_cast<double>(bands);
        double s;
        if (std::isnan(m2)) {
          s = 0.0;  // non-finite input at a "valid" pixel: no evidence of change
        } else if (std::isinf(m2)) {
          s = 1.0;
        } else {
          s = m2 / (m2 + s2_);
        }
        o[c] = static_cast<float>(s);
      }
    }
    return out;
  }

  int radius() const override { return 0; }

 private:
  double s2_;
  bool fitted_ = false;
  std::vector<double> median_;
  std::vector<double> sigma_;
};

}  // namespace

std::unique_ptr<Detector> make_detector(const DetectConfig& config) {
  if (config.method == "cva") {
    if (!(config.cva_half_score_sigma > 0) || !std::isfinite(config.cva_half_score_sigma)) {
      throw Error(ErrorKind::usage, "detect.cva_half_score_sigma must be a positive number");
    }
    return std::make_unique<CvaDetector>(config.cva_half_score_sigma);
  }
  throw Error(ErrorKind::usage, "unknown detector '" + config.method + "' (detect.method; known: cva)");
}

}  // namespace aftermath
