/// @file registration.cpp
/// Tie-point layout and measurement, robust translation fit, resampling with the registration.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "aftermath/align/registration.hpp"
#include "aftermath/core/error.hpp"

namespace aftermath {
namespace {

double median_of(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return (n % 2 == 1) ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/// Start of window i of n, each `w` wide, centred in n equal cells across `extent`, clamped.
int layout_start(int i, int n, int extent, int w) {
  const double centre = (i + 0.5) * static_cast<double>(extent) / n;
  const int start = static_cast<int>(std::floor(centre - 0.5 * w + 0.5));
  return std::clamp(start, 0, extent - w);
}

double valid_fraction(const cv::Mat& a, const cv::Mat& b, cv::Size size) {
  const double total = static_cast<double>(size.area());
  if (total <= 0) return 0;
  if (a.empty() && b.empty()) return 1.0;
  cv::Mat both;
  if (a.empty()) {
    cv::compare(b, 0, both, cv::CMP_NE);
  } else if (b.empty()) {
    cv::compare(a, 0, both, cv::CMP_NE);
  } else {
    cv::Mat ma, mb;
    cv::compare(a, 0, ma, cv::CMP_NE);
    cv::compare(b, 0, mb, cv::CMP_NE);
    cv::bitwise_and(ma, mb, both);
  }
  return cv::countNonZero(both) / total;
}

}  // namespace

std::vector<Window> tie_point_windows(int width, int height, const AlignConfig& config) {
  std::vector<Window> out;
  if (width <= 0 || height <= 0) return out;
  const int ws = std::max(1, config.window_size);
  const int wx = std::min(ws, width), wy = std::min(ws, height);
  const int n_max = std::max(1, config.max_windows);
  // Non-overlapping windows only: at most extent / window per axis.
  const int cap_x = std::max(1, width / wx), cap_y = std::max(1, height / wy);

  // Choose nx x ny <= n_max: prefer layouts whose cell spacing is near-square (ratio <= 2), then
  // the most windows, then the squarest spacing; deterministic (first best wins).
  int best_nx = 1, best_ny = 1;
  bool best_square = false;
  int best_count = 0;
  double best_skew = 0;
  for (int ny = 1; ny <= std::min(cap_y, n_max); ++ny) {
    const int nx = std::min(cap_x, n_max / ny);
    if (nx < 1) continue;
    const double sx = static_cast<double>(width) / nx, sy = static_cast<double>(height) / ny;
    const double skew = std::abs(std::log(sx / sy));
    const bool square = skew <= std::log(2.0) + 1e-9;
    const int count = nx * ny;
    const bool better = best_count == 0 || (square && !best_square) ||
                        (square == best_square && (count > best_count || (count == best_count && skew < best_skew - 1e-12)));
    if (better) {
      best_nx = nx;
      best_ny = ny;
      best_square = square;
      best_count = count;
      best_skew = skew;
    }
  }
  out.reserve(static_cast<std::size_t>(best_nx) * static_cast<std::size_t>(best_ny));
  for (int j = 0; j < best_ny; ++j) {
    const int y = layout_start(j, best_ny, height, wy);
    for (int i = 0; i < best_nx; ++i) {
      out.push_back(Window{layout_start(i, best_nx, width, wx), y, wx, wy});
    }
  }
  return out;
}

TiePoint measure_tie_point(const Window& window, const cv::Mat& reference, const cv::Mat& reference_valid,
                           const cv::Mat& moving, const cv::Mat& moving_valid, const AlignConfig& config) {
  TiePoint tp;
  tp.window = window;
  if (reference.empty() || moving.empty() || reference.size() != moving.size()) {
    tp.reason = "image sizes differ";
    return tp;
  }
  if (valid_fraction(reference_valid, moving_valid, reference.size()) < config.min_valid_fraction) {
    tp.reason = "too few valid pixels";
    return tp;
  }
  const PhaseCorrelation pc = phase_correlate(reference, moving, reference_valid, moving_valid, config.max_shift_px);
  tp.shift = pc.shift;
  tp.peak = pc.peak;
  if (!pc.ok) {
    tp.reason = pc.reason.empty() ? "correlation failed" : pc.reason;
  } else if (pc.peak < config.min_peak) {
    tp.reason = "weak peak";
  } else {
    tp.kept = true;  // a candidate: fit_translation may still drop it as an outlier
  }
  return tp;
}

Registration fit_translation(std::vector<TiePoint> ties, const AlignConfig& /*config*/) {
  Registration reg;
  std::vector<std::size_t> usable;
  for (std::size_t i = 0; i < ties.size(); ++i) {
    TiePoint& t = ties[i];
    t.residual = 0;
    if (t.kept && std::isfinite(t.shift.x) && std::isfinite(t.shift.y)) {
      usable.push_back(i);
    } else {
      t.kept = false;
      if (t.reason.empty()) t.reason = "failed";
    }
  }

  if (usable.empty()) {
    std::map<std::string, int> reasons;
    for (const auto& t : ties) ++reasons[t.reason];
    std::string detail;
    if (ties.empty()) {
      detail = "no tie points measured";
    } else {
      detail = "0 of " + std::to_string(ties.size()) + " usable:";
      bool first = true;
      for (const auto& [reason, count] : reasons) {
        detail += (first ? " " : ", ") + std::to_string(count) + " " + reason;
        first = false;
      }
    }
    reg.model = "identity";
    reg.shift = {0, 0};
    reg.kept = 0;
    reg.dropped = static_cast<int>(ties.size());
    reg.warning = "no reliable tie points: alignment skipped (" + detail + ")";
    reg.ties = std::move(ties);
    return reg;
  }

  // Robust centre: component-wise median; outliers by distance from it (MAD in 2-D).
  std::vector<double> xs, ys;
  for (std::size_t i : usable) {
    xs.push_back(ties[i].shift.x);
    ys.push_back(ties[i].shift.y);
  }
  const cv::Point2d centre(median_of(xs), median_of(ys));
  std::vector<double> dist;
  for (std::size_t i : usable) dist.push_back(std::hypot(ties[i].shift.x - centre.x, ties[i].shift.y - centre.y));
  // The distances are absolute deviations from the robust centre: their median is the MAD.
  const double mad = median_of(dist);
  const double limit = std::max(3.0 * 1.4826 * mad, 0.5);

  cv::Point2d sum(0, 0);
  int kept = 0;
  for (std::size_t k = 0; k < usable.size(); ++k) {
    TiePoint& t = ties[usable[k]];
    if (dist[k] > limit) {
      t.kept = false;
      t.reason = "outlier";
    } else {
      sum += t.shift;
      ++kept;
    }
  }
  const cv::Point2d model = sum / static_cast<double>(kept);

  double before = 0, after = 0;
  for (std::size_t i : usable) {
    TiePoint& t = ties[i];
    t.residual = std::hypot(t.shift.x - model.x, t.shift.y - model.y);
    if (t.kept) {
      before += t.shift.x * t.shift.x + t.shift.y * t.shift.y;
      after += t.residual * t.residual;
    }
  }
  reg.model = "translation";
  reg.shift = model;
  reg.kept = kept;
  reg.dropped = static_cast<int>(ties.size()) - kept;
  reg.rmse_before = std::sqrt(before / kept);
  reg.rmse_after = std::sqrt(after / kept);
  reg.ties = std::move(ties);
  return reg;
}

cv::Mat to_intensity(const std::vector<cv::Mat>& bands) {
  if (bands.empty()) return {};
  cv::Mat acc = cv::Mat::zeros(bands[0].size(), CV_64F);
  for (const auto& b : bands) {
    if (b.size() != bands[0].size() || b.channels() != 1) {
      throw Error(ErrorKind::internal, "to_intensity: bands differ in size or are not single-channel", "align");
    }
    cv::Mat d;
    b.convertTo(d, CV_64F);
    acc += d;
  }
  cv::Mat out;
  acc.convertTo(out, CV_32F, 1.0 / static_cast<double>(bands.size()));
  return out;
}

void apply_registration(const Registration& registration, const std::vector<cv::Mat>& bands, const cv::Mat& valid,
                        const Window& source, const Window& target, std::vector<cv::Mat>& out_bands,
                        cv::Mat& out_valid) {
  const cv::Size src_size(std::max(0, source.width), std::max(0, source.height));
  const cv::Size dst_size(std::max(0, target.width), std::max(0, target.height));
  for (const auto& b : bands) {
    if (b.size() != src_size || b.channels() != 1) {
      throw Error(ErrorKind::internal, "apply_registration: band does not cover the source window", "align");
    }
  }
  if (!valid.empty() && valid.size() != src_size) {
    throw Error(ErrorKind::internal, "apply_registration: validity mask does not cover the source window", "align");
  }
  cv::Mat valid_u8;
  if (valid.empty()) {
    valid_u8 = cv::Mat(src_size, CV_8U, cv::Scalar(255));
  } else if (valid.type() == CV_8U) {
    valid_u8 = valid;
  } else {
    cv::compare(valid, 0, valid_u8, cv::CMP_NE);
  }
  std::vector<cv::Mat> src_bands;
  for (const auto& b : bands) {
    cv::Mat f;
    if (b.type() == CV_32F) {
      f = b;
    } else {
      b.convertTo(f, CV_32F);
    }
    src_bands.push_back(f);
  }

  const cv::Point2d shift = registration.model == "identity" ? cv::Point2d(0, 0) : registration.shift;
  // Target-local (tx, ty) -> source-local sample position (tx + ox, ty + oy).
  const double ox = target.x - source.x + shift.x;
  const double oy = target.y - source.y + shift.y;
  out_valid = cv::Mat::zeros(dst_size, CV_8U);
  out_bands.assign(src_bands.size(), cv::Mat());
  for (auto& b : out_bands) b = cv::Mat::zeros(dst_size, CV_32F);
  // A non-finite or absurd shift samples nothing: everything invalid.
  if (!std::isfinite(ox) || !std::isfinite(oy) || std::abs(ox) > 1e9 || std::abs(oy) > 1e9) return;
  const double flx = std::floor(ox), fly = std::floor(oy);
  const int ix = static_cast<int>(flx), iy = static_cast<int>(fly);
  // Cubic convolution (Keys, a = -0.5): sharper than bilinear, so high-contrast edges (roofs on
  // ground) resample with little error and are not mistaken for change. The fractional shift is
  // the same for every pixel, so the taps and weights are computed once. Taps of weight 0 are
  // not needed (an integer shift gives exact copies).
  auto keys = [](double t) {
    t = std::abs(t);
    if (t < 1) return (1.5 * t - 2.5) * t * t + 1;
    if (t < 2) return ((-0.5 * t + 2.5) * t - 4) * t + 2;
    return 0.0;
  };
  struct Tap {
    int offset;
    double weight;
  };
  auto taps_for = [&](double f) {
    std::vector<Tap> taps;
    for (int k = -1; k <= 2; ++k) {
      const double w = keys(f - k);
      if (w != 0) taps.push_back({k, w});
    }
    return taps;
  };
  const std::vector<Tap> tx_taps = taps_for(ox - flx), ty_taps = taps_for(oy - fly);
  const int kx0 = tx_taps.front().offset, kx1 = tx_taps.back().offset;
  const int ky0 = ty_taps.front().offset, ky1 = ty_taps.back().offset;
  const int sw = src_size.width, sh = src_size.height;

  // Validity: every tap of an output pixel inside `source` and valid. Computed separably: first
  // "all taps valid along x", then along y.
  const int tw = dst_size.width, th = dst_size.height;
  cv::Mat row_ok(sh, tw, CV_8U, cv::Scalar(0));
  for (int y = 0; y < sh; ++y) {
    const uchar* v = valid_u8.ptr<uchar>(y);
    uchar* o = row_ok.ptr<uchar>(y);
    for (int tx = 0; tx < tw; ++tx) {
      const int x0 = tx + ix;
      if (x0 + kx0 < 0 || x0 + kx1 >= sw) continue;
      bool ok = true;
      for (const Tap& t : tx_taps) ok = ok && v[x0 + t.offset] != 0;
      o[tx] = ok ? 1 : 0;
    }
  }
  for (int ty = 0; ty < th; ++ty) {
    const int y0 = ty + iy;
    if (y0 + ky0 < 0 || y0 + ky1 >= sh) continue;
    uchar* vo = out_valid.ptr<uchar>(ty);
    for (int tx = 0; tx < tw; ++tx) {
      bool ok = true;
      for (const Tap& t : ty_taps) ok = ok && row_ok.at<uchar>(y0 + t.offset, tx) != 0;
      vo[tx] = ok ? 255 : 0;
    }
  }

  // Values: separable, horizontal pass over the source rows the output needs, then vertical.
  // Each output value is the same fixed sequence of operations whatever the window, so results
  // do not depend on tiling.
  const int row_lo = std::max(0, iy + ky0), row_hi = std::min(sh - 1, th - 1 + iy + ky1);
  cv::Mat horiz(sh, tw, CV_32F, cv::Scalar(0));
  for (std::size_t b = 0; b < src_bands.size(); ++b) {
    for (int y = row_lo; y <= row_hi; ++y) {
      const float* in = src_bands[b].ptr<float>(y);
      float* h = horiz.ptr<float>(y);
      const int tx_lo = std::max(0, -(ix + kx0)), tx_hi = std::min(tw - 1, sw - 1 - (ix + kx1));
      for (int tx = tx_lo; tx <= tx_hi; ++tx) {
        const float* p = in + tx + ix;
        double acc = 0;
        for (const Tap& t : tx_taps) acc += t.weight * p[t.offset];
        h[tx] = static_cast<float>(acc);
      }
    }
    for (int ty = 0; ty < th; ++ty) {
      const uchar* vo = out_valid.ptr<uchar>(ty);
      float* o = out_bands[b].ptr<float>(ty);
      const int y0 = ty + iy;
      if (y0 + ky0 < 0 || y0 + ky1 >= sh) continue;
      const float* rows[4] = {nullptr, nullptr, nullptr, nullptr};
      double w[4] = {0, 0, 0, 0};
      const std::size_t nt = ty_taps.size();
      for (std::size_t k = 0; k < nt; ++k) {
        rows[k] = horiz.ptr<float>(y0 + ty_taps[k].offset);
        w[k] = ty_taps[k].weight;
      }
      for (int tx = 0; tx < tw; ++tx) {
        if (!vo[tx]) continue;
        double acc = 0;
        for (std::size_t k = 0; k < nt; ++k) acc += w[k] * rows[k][tx];
        o[tx] = static_cast<float>(acc);
      }
    }
  }
}

int registration_margin(const Registration& registration) {
  if (registration.model == "identity") return 0;
  const double m = std::max(std::abs(registration.shift.x), std::abs(registration.shift.y));
  if (!std::isfinite(m)) return 0;
  return static_cast<int>(std::ceil(std::min(m, 1e8))) + 2;
}

}  // namespace aftermath
