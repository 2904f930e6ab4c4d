#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <opencv2/imgproc.hpp>
#include <string>
#include <vector>

#include "aftermath/core/error.hpp"
#include "aftermath/core/simd.hpp"
#include "aftermath/core/util.hpp"
#include "aftermath/detect/detector.hpp"

namespace aftermath {
namespace {

/// Scale of the no-change differences from |d - median|, reordered. A disaster can change most of
/// a scene (a tornado path, a burnt town), which inflates the MAD (it breaks down at 50% change),
/// so the scale comes from the 25th percentile of |d - median|: for Gaussian no-change noise it is
/// 0.31864 sigma, and it holds while at least ~25% of the samples are unchanged.
double no_change_sigma(std::vector<double>& abs_dev) {
  if (abs_dev.empty()) return 1.0;
  const auto k = static_cast<std::ptrdiff_t>(static_cast<double>(abs_dev.size() - 1) * 0.25);
  std::nth_element(abs_dev.begin(), abs_dev.begin() + k, abs_dev.end());
  return abs_dev[static_cast<std::size_t>(k)] / 0.31864;
}

/// Per-band differences post - pre, averaged over the valid pixels of a (2r+1)^2 box (r = 0: as
/// is). Debris and burn scars are coherent over several pixels while sensor noise is not, so the
/// box mean raises the change-to-noise ratio. Invalid or non-finite pixels neither contribute nor
/// receive a value (0). The sum runs over the box in a fixed order, so a pixel gets bit-identical
/// values whatever window (tile) it is computed in, given r px of halo.
std::vector<cv::Mat> box_differences(const BandPair& p, int r) {
  const int rows = p.valid.rows, cols = p.valid.cols;
  std::vector<cv::Mat> out;
  cv::Mat d(rows, cols, CV_32F), ok(rows, cols, CV_8U);
  for (std::size_t b = 0; b < p.pre.size(); ++b) {
    for (int y = 0; y < rows; ++y) {
      const float* a = p.pre[b].ptr<float>(y);
      const float* q = p.post[b].ptr<float>(y);
      const std::uint8_t* v = p.valid.ptr<std::uint8_t>(y);
      float* o = d.ptr<float>(y);
      std::uint8_t* k = ok.ptr<std::uint8_t>(y);
      for (int x = 0; x < cols; ++x) {
        const float diff = q[x] - a[x];
        k[x] = (v[x] != 0 && std::isfinite(diff)) ? 1 : 0;
        o[x] = k[x] ? diff : 0.0f;
      }
    }
    if (r == 0) {
      out.push_back(d.clone());
      continue;
    }
    cv::Mat m(rows, cols, CV_32F, cv::Scalar(0));
    for (int y = 0; y < rows; ++y) {
      float* o = m.ptr<float>(y);
      for (int x = 0; x < cols; ++x) {
        if (!ok.at<std::uint8_t>(y, x)) continue;
        double sum = 0;
        int n = 0;
        for (int yy = std::max(0, y - r); yy <= std::min(rows - 1, y + r); ++yy) {
          const float* dr = d.ptr<float>(yy);
          const std::uint8_t* kr = ok.ptr<std::uint8_t>(yy);
          for (int xx = std::max(0, x - r); xx <= std::min(cols - 1, x + r); ++xx) {
            sum += dr[xx];
            n += kr[xx];
          }
        }
        o[x] = static_cast<float>(sum / n);
      }
    }
    out.push_back(m);
  }
  return out;
}

void check_pair(const BandPair& p, const char* who) {
  if (p.pre.size() != p.post.size()) {
    throw Error(ErrorKind::internal, std::string(who) + ": pre and post band counts differ");
  }
  if (p.valid.type() != CV_8U) {
    throw Error(ErrorKind::internal, std::string(who) + ": validity mask is not CV_8U");
  }
  for (std::size_t k = 0; k < p.pre.size(); ++k) {
    if (p.pre[k].type() != CV_32F || p.post[k].type() != CV_32F ||
        p.pre[k].size() != p.valid.size() || p.post[k].size() != p.valid.size()) {
      throw Error(ErrorKind::internal,
                  std::string(who) + ": bands must be CV_32F of the validity mask's size");
    }
  }
}

std::uint32_t float_bits(float f) {
  std::uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}
float float_from_bits(std::uint32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}
constexpr std::uint32_t kExponent = 0x7f800000u;  // all ones: inf or NaN

// The row kernels of CVA, written without branches so that they vectorise, and compiled for
// AVX2 as well (chosen at run time; no FMA, -ffp-contract=off): every version gives the values
// of the per-pixel formulation, bit for bit.

/// e = post - pre in float, 0 where that is not finite (box_differences with r = 0); `bad` |= 1
/// where pre or post is not finite (exactly where the double difference is not finite).
AFTERMATH_AVX2_CLONES void cva_difference_row(const float* pre, const float* post, int cols,
                                              float* e, std::uint32_t* bad) {
  for (int c = 0; c < cols; ++c) {
    const std::uint32_t db = float_bits(post[c] - pre[c]);
    e[c] = float_from_bits(db & -static_cast<std::uint32_t>((db & kExponent) != kExponent));
    bad[c] |= static_cast<std::uint32_t>((float_bits(pre[c]) & kExponent) == kExponent) |
              static_cast<std::uint32_t>((float_bits(post[c]) & kExponent) == kExponent);
  }
}

/// m2 += z^2, z = (e - median) x inv_sigma.
AFTERMATH_AVX2_CLONES void cva_square_row(const float* e, double median, double inv_sigma, int cols,
                                          double* m2) {
  for (int c = 0; c < cols; ++c) {
    const double z = (static_cast<double>(e[c]) - median) * inv_sigma;
    m2[c] += z * z;
  }
}

/// score = q / (q + s2) with q = m2 / bands where the pixel is valid, its inputs finite (bad 0)
/// and q finite; 0 elsewhere. Branch-free, so it vectorises (q <= DBL_MAX: finite, as q >= 0).
AFTERMATH_AVX2_CLONES void cva_score_row(const double* m2, const std::uint32_t* bad,
                                         const std::uint8_t* valid, double bands, double s2,
                                         int cols, float* out) {
  for (int c = 0; c < cols; ++c) {
    const double q = m2[c] / bands;
    const auto score = static_cast<float>(q / (q + s2));
    const bool scored = (valid[c] != 0) & (bad[c] == 0) & (q <= std::numeric_limits<double>::max());
    out[c] = scored ? score : 0.0f;
  }
}

/// Change-vector analysis. Per band b: d = post - pre, z = (d - median_b) / sigma_b with
/// sigma_b = the no-change scale of d over the fit samples (see no_change_sigma); m^2 = mean_b z^2;
/// score = m^2 / (m^2 + s^2).
///
/// sigma floor: sigma_b >= 1e-4 * (1 + median |pre_b|) (and >= 1e-12). This is far above the
/// float32 rounding of normalised values (~1e-7 relative) and far below any sensor noise, so a
/// constant or noise-free scene never divides by zero and rounding residue never scores as change.
///
/// With `log_ratio`, the bands are first mapped to ln(max(x, 0) + e_b), e_b = 1% of the median
/// pre value of band b over the fit samples (at least 1e-6): the difference becomes the log ratio.
class CvaDetector final : public Detector {
 public:
  CvaDetector(int radius, double half_score_sigma, bool log_ratio)
      : radius_(radius), s2_(half_score_sigma * half_score_sigma), log_ratio_(log_ratio) {}

  std::string name() const override { return log_ratio_ ? "log-ratio" : "cva"; }

  void fit_samples(const std::vector<BandPair>& raw_samples, const ForEach& for_each) override {
    std::vector<BandPair> logs;
    if (log_ratio_) fit_log_offsets(raw_samples, logs, for_each);
    const std::vector<BandPair>& samples = log_ratio_ ? logs : raw_samples;
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
    // Samples, then bands, side by side: each band's statistics are its own.
    std::vector<std::vector<cv::Mat>> diffs(samples.size());
    for_each(samples.size(), [&](std::size_t i) {
      if (samples[i].pre.size() == bands) diffs[i] = box_differences(samples[i], radius_);
    });
    for_each(bands, [&](std::size_t b) {
      std::vector<double> d, mag;
      for (std::size_t i = 0; i < samples.size(); ++i) {
        const auto& s = samples[i];
        if (s.pre.size() != bands) continue;
        const cv::Mat& diff = diffs[i][b];
        for (int r = 0; r < s.valid.rows; ++r) {
          const auto* v = s.valid.ptr<std::uint8_t>(r);
          const auto* p = s.pre[b].ptr<float>(r);
          const auto* q = s.post[b].ptr<float>(r);
          const auto* e = diff.ptr<float>(r);
          for (int c = 0; c < s.valid.cols; ++c) {
            if (v[c] == 0 || !std::isfinite(p[c]) || !std::isfinite(q[c])) continue;
            d.push_back(static_cast<double>(e[c]));
            mag.push_back(std::abs(static_cast<double>(p[c])));
          }
        }
      }
      if (d.empty()) return;  // no valid sample: median 0, sigma 1 (nothing valid to score anyway)
      const double med = median_of(d);
      for (double& x : d) x = std::abs(x - med);
      const double floor = std::max(1e-12, 1e-4 * (1.0 + median_of(mag)));
      median_[b] = med;
      sigma_[b] = std::max(no_change_sigma(d), floor);
    });
    fitted_ = true;
  }

  cv::Mat score(const BandPair& raw) const override {
    if (!fitted_) throw Error(ErrorKind::internal, "cva: score() called before fit()");
    check_pair(raw, "cva score");
    BandPair logs;
    if (log_ratio_) logs = to_log(raw);
    const BandPair& w = log_ratio_ ? logs : raw;
    if (w.pre.size() != median_.size()) {
      throw Error(ErrorKind::internal, "cva score: band count differs from the fit");
    }
    const std::size_t bands = median_.size();
    if (bands == 0) return cv::Mat(w.valid.size(), CV_32F, cv::Scalar(0));
    cv::Mat out(w.valid.size(), CV_32F);  // every pixel written below
    std::vector<double> inv(bands);
    for (std::size_t b = 0; b < bands; ++b) inv[b] = 1.0 / sigma_[b];
    // Radius 0 (the default): the differences are taken inline, as box_differences(r = 0) takes
    // them, instead of in a pass of their own. Bands run in the outer loop over row buffers, so
    // the inner loops are branch-free and vectorise. Per pixel the values are those of the
    // per-pixel formulation: squares summed in band order from 0; a pixel whose pre or post is
    // not finite in some band had a non-finite m^2 there and scored 0, it is flagged instead.
    const std::vector<cv::Mat> diffs =
        radius_ == 0 ? std::vector<cv::Mat>{} : box_differences(w, radius_);
    const auto cols = static_cast<std::size_t>(out.cols);
    std::vector<double> m2(cols);
    std::vector<float> e(cols);
    std::vector<std::uint32_t> bad(cols);
    const double nb = static_cast<double>(bands);
    for (int r = 0; r < out.rows; ++r) {
      const auto* v = w.valid.ptr<std::uint8_t>(r);
      std::fill(m2.begin(), m2.end(), 0.0);
      std::fill(bad.begin(), bad.end(), 0u);
      for (std::size_t b = 0; b < bands; ++b) {
        cva_difference_row(w.pre[b].ptr<float>(r), w.post[b].ptr<float>(r), out.cols, e.data(),
                           bad.data());
        cva_square_row(diffs.empty() ? e.data() : diffs[b].ptr<float>(r), median_[b], inv[b],
                       out.cols, m2.data());
      }
      // Non-finite input at a "valid" pixel: no evidence of change (as every detector).
      cva_score_row(m2.data(), bad.data(), v, nb, s2_, out.cols, out.ptr<float>(r));
    }
    return out;
  }

  int radius() const override { return radius_; }

 private:
  /// e_b from the pre bands of the samples, then the samples mapped to logs.
  void fit_log_offsets(const std::vector<BandPair>& samples, std::vector<BandPair>& logs,
                       const ForEach& for_each) {
    std::size_t bands = 0;
    for (const auto& s : samples) bands = std::max(bands, s.pre.size());
    log_offset_.assign(bands, 1e-6);
    for_each(bands, [&](std::size_t b) {
      std::vector<double> v;
      for (const auto& s : samples) {
        if (s.pre.size() != bands) continue;
        for (int r = 0; r < s.valid.rows; ++r) {
          const auto* ok = s.valid.ptr<std::uint8_t>(r);
          const auto* x = s.pre[b].ptr<float>(r);
          for (int c = 0; c < s.valid.cols; ++c) {
            if (ok[c] && std::isfinite(x[c])) v.push_back(std::max(0.0f, x[c]));
          }
        }
      }
      if (!v.empty()) log_offset_[b] = std::max(1e-6, 0.01 * median_of(v));
    });
    logs.resize(samples.size());
    for_each(samples.size(), [&](std::size_t i) {
      logs[i] = samples[i].pre.size() == bands ? to_log(samples[i]) : samples[i];
    });
  }

  BandPair to_log(const BandPair& p) const {
    if (p.pre.size() != log_offset_.size()) {
      throw Error(ErrorKind::internal, "log-ratio: band count differs from the fit");
    }
    BandPair out;
    out.valid = p.valid;
    auto map = [&](const std::vector<cv::Mat>& in, std::vector<cv::Mat>& dst) {
      for (std::size_t b = 0; b < in.size(); ++b) {
        // ln(max(x, 0) + e): negative values (noise around 0) clip to 0. cv::log is vectorised;
        // non-finite inputs keep their value (NaN, +-inf), so they stay "no evidence" downstream.
        cv::Mat m;
        cv::max(in[b], 0.0, m);
        m += cv::Scalar(log_offset_[b]);
        cv::log(m, m);
        const cv::Mat non_finite =
            ~(in[b] == in[b]) | (cv::abs(in[b]) == std::numeric_limits<float>::infinity());
        in[b].copyTo(m, non_finite);
        dst.push_back(m);
      }
    };
    map(p.pre, out.pre);
    map(p.post, out.post);
    return out;
  }

  int radius_;
  double s2_;
  bool log_ratio_;
  std::vector<double> log_offset_;
  bool fitted_ = false;
  std::vector<double> median_;
  std::vector<double> sigma_;
};

}  // namespace

namespace detect {

std::unique_ptr<Detector> make_cva(int radius, double half_score_sigma, bool log_ratio) {
  return std::make_unique<CvaDetector>(radius, half_score_sigma, log_ratio);
}

}  // namespace detect

}  // namespace aftermath
