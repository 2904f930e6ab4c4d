// Normalisation methods beyond the robust linear match: IR-MAD invariant pixels with orthogonal
// regression, histogram matching, and the radiometry.method facade.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "aftermath/core/error.hpp"
#include "aftermath/radiometry/normalisation.hpp"

namespace aftermath {
namespace {

void check_inputs(const std::vector<cv::Mat>& pre, const std::vector<cv::Mat>& post,
                  const cv::Mat& valid, const char* who) {
  if (pre.size() != post.size())
    throw Error(ErrorKind::internal, std::string(who) + ": pre and post band counts differ");
  if (pre.empty()) return;
  if (valid.type() != CV_8U)
    throw Error(ErrorKind::internal, std::string(who) + ": validity mask is not CV_8U");
  for (std::size_t k = 0; k < pre.size(); ++k) {
    if (pre[k].type() != CV_32F || post[k].type() != CV_32F || pre[k].size() != valid.size() ||
        post[k].size() != valid.size()) {
      throw Error(ErrorKind::internal,
                  std::string(who) + ": bands must be CV_32F of the validity mask's size");
    }
  }
}

/// Total least squares pre = g * post + o over the pixels where `use` is set.
void orthogonal_regression(const cv::Mat& pre, const cv::Mat& post, const cv::Mat& use,
                           double& gain, double& offset) {
  double n = 0, mx = 0, my = 0;
  for (int r = 0; r < use.rows; ++r) {
    const auto* u = use.ptr<std::uint8_t>(r);
    for (int c = 0; c < use.cols; ++c) {
      if (!u[c]) continue;
      n += 1;
      mx += post.ptr<float>(r)[c];
      my += pre.ptr<float>(r)[c];
    }
  }
  gain = 1.0;
  offset = 0.0;
  if (n < 2) return;
  mx /= n;
  my /= n;
  double sxx = 0, syy = 0, sxy = 0;
  for (int r = 0; r < use.rows; ++r) {
    const auto* u = use.ptr<std::uint8_t>(r);
    for (int c = 0; c < use.cols; ++c) {
      if (!u[c]) continue;
      const double dx = post.ptr<float>(r)[c] - mx, dy = pre.ptr<float>(r)[c] - my;
      sxx += dx * dx;
      syy += dy * dy;
      sxy += dx * dy;
    }
  }
  // No spread in post (flat band): match the means only.
  if (!(sxx > 1e-12 * (1.0 + mx * mx) * n)) {
    offset = my - mx;
    return;
  }
  if (std::abs(sxy) > 1e-300) {
    gain = (syy - sxx + std::sqrt((syy - sxx) * (syy - sxx) + 4.0 * sxy * sxy)) / (2.0 * sxy);
  } else {
    gain = std::sqrt(syy / sxx);  // uncorrelated: match the spreads
  }
  offset = my - gain * mx;
}

/// Value at quantile level `q` in [0, 1] of sorted values (linear between ranks).
double quantile_sorted(const std::vector<double>& v, double q) {
  const double pos = q * static_cast<double>(v.size() - 1);
  const auto i = static_cast<std::size_t>(pos);
  if (i + 1 >= v.size()) return v.back();
  const double f = pos - static_cast<double>(i);
  return v[i] + f * (v[i + 1] - v[i]);
}

}  // namespace

LinearNormalisation fit_irmad_linear(const std::vector<cv::Mat>& pre,
                                     const std::vector<cv::Mat>& post, const cv::Mat& valid,
                                     double min_no_change_probability, IrmadModel* model,
                                     std::int64_t* invariant) {
  check_inputs(pre, post, valid, "fit_irmad_linear");
  LinearNormalisation n;
  n.gain.assign(pre.size(), 1.0);
  n.offset.assign(pre.size(), 0.0);
  if (pre.empty() || cv::countNonZero(valid) < static_cast<int>(2 * pre.size() + 2))
    return n;  // identity
  const IrmadModel m = fit_irmad(pre, post, valid);
  const std::size_t p = pre.size();
  const int dof = static_cast<int>(p);
  cv::Mat prob(valid.size(), CV_64F, cv::Scalar(-1.0));
  std::vector<double> a(p), b(p), probs;
  for (int r = 0; r < valid.rows; ++r) {
    const auto* v = valid.ptr<std::uint8_t>(r);
    for (int c = 0; c < valid.cols; ++c) {
      if (!v[c]) continue;
      for (std::size_t k = 0; k < p; ++k) {
        a[k] = pre[k].ptr<float>(r)[c];
        b[k] = post[k].ptr<float>(r)[c];
      }
      const double pr = chi_square_sf(m.chi_square(a.data(), b.data()), dof);
      if (std::isnan(pr)) continue;
      prob.at<double>(r, c) = pr;
      probs.push_back(pr);
    }
  }
  double cut = min_no_change_probability;
  auto select = [&](double t, bool strict) {
    cv::Mat use(valid.size(), CV_8U, cv::Scalar(0));
    std::int64_t count = 0;
    for (int r = 0; r < valid.rows; ++r) {
      for (int c = 0; c < valid.cols; ++c) {
        const double pr = prob.at<double>(r, c);
        if (pr < 0) continue;
        if (strict ? pr > t : pr >= t) {
          use.at<std::uint8_t>(r, c) = 255;
          ++count;
        }
      }
    }
    return std::pair{use, count};
  };
  auto [use, count] = select(cut, true);
  const auto min_count = static_cast<std::int64_t>(2 * p + 2);
  if (count < min_count && !probs.empty()) {
    // Too few pixels pass the cut: fall back to the most invariant 5% (still the no-change end).
    std::sort(probs.begin(), probs.end());
    cut = quantile_sorted(probs, 0.95);
    std::tie(use, count) = select(cut, false);
  }
  for (std::size_t k = 0; k < p; ++k)
    orthogonal_regression(pre[k], post[k], use, n.gain[k], n.offset[k]);
  if (model) *model = m;
  if (invariant) *invariant = count;
  return n;
}

HistogramMatch fit_histogram_match(const std::vector<cv::Mat>& pre,
                                   const std::vector<cv::Mat>& post, const cv::Mat& valid) {
  check_inputs(pre, post, valid, "fit_histogram_match");
  constexpr int kSteps = 1000;
  HistogramMatch h;
  h.post_q.resize(pre.size());
  h.pre_q.resize(pre.size());
  std::vector<double> a, b;
  for (std::size_t k = 0; k < pre.size(); ++k) {
    a.clear();
    b.clear();
    for (int r = 0; r < valid.rows; ++r) {
      const auto* v = valid.ptr<std::uint8_t>(r);
      const auto* x = pre[k].ptr<float>(r);
      const auto* y = post[k].ptr<float>(r);
      for (int c = 0; c < valid.cols; ++c) {
        if (!v[c] || !std::isfinite(x[c]) || !std::isfinite(y[c])) continue;
        a.push_back(x[c]);
        b.push_back(y[c]);
      }
    }
    if (a.empty()) continue;  // nothing valid: identity for this band
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    auto& pq = h.post_q[k];
    auto& rq = h.pre_q[k];
    for (int i = 0; i <= kSteps; ++i) {
      const double q = static_cast<double>(i) / kSteps;
      const double from = quantile_sorted(b, q), to = quantile_sorted(a, q);
      if (!pq.empty() && from == pq.back()) continue;  // equal post values (integer data): one knot
      pq.push_back(from);
      rq.push_back(to);
    }
    // A knot's target is the mean of the pre quantiles of every level mapping to its post value.
    std::vector<double> sum(pq.size(), 0.0), cnt(pq.size(), 0.0);
    std::size_t j = 0;
    for (int i = 0; i <= kSteps; ++i) {
      const double q = static_cast<double>(i) / kSteps;
      const double from = quantile_sorted(b, q);
      while (j + 1 < pq.size() && from >= pq[j + 1]) ++j;
      sum[j] += quantile_sorted(a, q);
      cnt[j] += 1.0;
    }
    for (std::size_t i = 0; i < pq.size(); ++i) rq[i] = sum[i] / cnt[i];
  }
  return h;
}

namespace {
void histogram_row(const std::vector<double>& pq, const std::vector<double>& rq, float* p,
                   int cols) {
  for (int c = 0; c < cols; ++c) {
    const double v = p[c];
    if (!std::isfinite(v)) continue;
    double out;
    if (v <= pq.front()) {
      out = rq.front() + (v - pq.front());
    } else if (v >= pq.back()) {
      out = rq.back() + (v - pq.back());
    } else {
      const auto it = std::upper_bound(pq.begin(), pq.end(), v);
      const auto i = static_cast<std::size_t>(it - pq.begin());  // pq[i-1] <= v < pq[i]
      const double f = (v - pq[i - 1]) / (pq[i] - pq[i - 1]);
      out = rq[i - 1] + f * (rq[i] - rq[i - 1]);
    }
    p[c] = static_cast<float>(out);
  }
}
}  // namespace

void apply(const HistogramMatch& h, std::vector<cv::Mat>& post_bands) {
  if (h.post_q.empty()) return;
  if (h.post_q.size() != post_bands.size()) {
    throw Error(ErrorKind::internal, "apply(HistogramMatch): band count differs from the fit");
  }
  for (std::size_t k = 0; k < post_bands.size(); ++k) {
    const auto& pq = h.post_q[k];
    cv::Mat& band = post_bands[k];
    if (pq.empty() || band.empty()) continue;
    if (band.type() != CV_32F)
      throw Error(ErrorKind::internal, "apply(HistogramMatch): band is not CV_32F");
    for (int r = 0; r < band.rows; ++r)
      histogram_row(pq, h.pre_q[k], band.ptr<float>(r), band.cols);
  }
}

Normalisation fit_normalisation(const RadiometryConfig& config, const std::vector<cv::Mat>& pre,
                                const std::vector<cv::Mat>& post, const cv::Mat& valid,
                                const ForEach& for_each) {
  Normalisation n;
  n.method = config.method;
  if (config.method == "none") return n;
  if (config.method == "robust-linear") {
    n.linear = fit_robust_linear(pre, post, valid, for_each);
  } else if (config.method == "irmad") {
    n.linear = fit_irmad_linear(pre, post, valid, config.irmad_no_change_probability, &n.irmad,
                                &n.invariant_pixels);
  } else if (config.method == "histogram") {
    n.histogram = fit_histogram_match(pre, post, valid);
  } else {
    throw Error(ErrorKind::usage, "unknown radiometry.method '" + config.method +
                                      "' (known: none, robust-linear, irmad, histogram)");
  }
  return n;
}

void apply(const Normalisation& n, std::vector<cv::Mat>& post_bands) {
  if (n.method == "histogram") {
    apply(n.histogram, post_bands);
  } else {
    apply(n.linear, post_bands);
  }
}

void apply_to_row(const Normalisation& n, std::size_t band, float* row, int cols) {
  if (n.method == "histogram") {
    const HistogramMatch& h = n.histogram;
    if (h.post_q.empty()) return;
    if (band >= h.post_q.size())
      throw Error(ErrorKind::internal, "apply_to_row(HistogramMatch): band beyond the fit");
    if (!h.post_q[band].empty()) histogram_row(h.post_q[band], h.pre_q[band], row, cols);
  } else {
    apply_to_row(n.linear, band, row, cols);
  }
}

bool changes_values(const Normalisation& n) {
  if (n.method == "histogram") return !n.histogram.post_q.empty();
  const LinearNormalisation& l = n.linear;
  if (l.gain.size() != l.offset.size()) return true;  // apply() reports the mismatch
  for (std::size_t k = 0; k < l.gain.size(); ++k) {
    if (l.gain[k] != 1.0 || l.offset[k] != 0.0) return true;
  }
  return false;
}

}  // namespace aftermath
