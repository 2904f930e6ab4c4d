/// @file registration.cpp
/// Tie-point layout and measurement, robust translation fit, the model's displacement, resampling
/// with the registration, the misregistration layer.
#include "aftermath/align/registration.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <optional>
#include <string>
#include <vector>

#include "aftermath/core/error.hpp"
#include "aftermath/core/simd.hpp"
#include "internal.hpp"

namespace aftermath {
namespace {

/// Median of a copy (the caller's vector keeps its order).
double median_copy(std::vector<double> v) {
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

/// Catmull-Rom weights for the taps -1..2 around a fraction t in [0, 1).
void catmull_rom(double t, double w[4]) {
  const double t2 = t * t, t3 = t2 * t;
  w[0] = 0.5 * (-t3 + 2 * t2 - t);
  w[1] = 0.5 * (3 * t3 - 5 * t2 + 2);
  w[2] = 0.5 * (-3 * t3 + 4 * t2 + t);
  w[3] = 0.5 * (t3 - t2);
}

/// Keys cubic convolution kernel, a = -0.5.
double keys(double t) {
  t = std::abs(t);
  if (t < 1) return (1.5 * t - 2.5) * t * t + 1;
  if (t < 2) return ((-0.5 * t + 2.5) * t - 4) * t + 2;
  return 0.0;
}

/// Resampling when the displacement varies per pixel (affine, field): out(p) = in(p + d(p)) with
/// Keys cubic taps at the exact fraction; d is evaluated at the global grid position.
void apply_general(const Registration& reg, const std::vector<cv::Mat>& src_bands,
                   const cv::Mat& valid_u8, const Window& source, const Window& target,
                   std::vector<cv::Mat>& out_bands, cv::Mat& out_valid) {
  const cv::Size dst_size(std::max(0, target.width), std::max(0, target.height));
  const int sw = std::max(0, source.width), sh = std::max(0, source.height);
  out_valid = cv::Mat::zeros(dst_size, CV_8U);
  out_bands.assign(src_bands.size(), cv::Mat());
  for (auto& b : out_bands) b = cv::Mat::zeros(dst_size, CV_32F);
  const std::size_t nb = src_bands.size();
  std::vector<float*> out_rows(nb);
  for (int ty = 0; ty < dst_size.height; ++ty) {
    const double gy = target.y + ty;
    for (std::size_t b = 0; b < nb; ++b) out_rows[b] = out_bands[b].ptr<float>(ty);
    uchar* vo = out_valid.ptr<uchar>(ty);
    for (int tx = 0; tx < dst_size.width; ++tx) {
      const double gx = target.x + tx;
      const cv::Point2d d = displacement(reg, gx, gy);
      const double sx = gx + d.x - source.x, sy = gy + d.y - source.y;
      if (!(std::abs(sx) < 1e9 && std::abs(sy) < 1e9)) continue;  // also NaN
      const double flx = std::floor(sx), fly = std::floor(sy);
      const int ix = static_cast<int>(flx), iy = static_cast<int>(fly);
      double wx[4], wy[4];
      int kx0 = 2, kx1 = -1, ky0 = 2, ky1 = -1;
      for (int k = -1; k <= 2; ++k) {
        wx[k + 1] = keys(sx - flx - k);
        wy[k + 1] = keys(sy - fly - k);
        if (wx[k + 1] != 0) kx0 = std::min(kx0, k), kx1 = std::max(kx1, k);
        if (wy[k + 1] != 0) ky0 = std::min(ky0, k), ky1 = std::max(ky1, k);
      }
      if (ix + kx0 < 0 || ix + kx1 >= sw || iy + ky0 < 0 || iy + ky1 >= sh) continue;
      bool ok = true;
      for (int j = ky0; j <= ky1 && ok; ++j) {
        const uchar* v = valid_u8.ptr<uchar>(iy + j);
        for (int i = kx0; i <= kx1; ++i) {
          if (wx[i + 1] != 0 && wy[j + 1] != 0 && v[ix + i] == 0) {
            ok = false;
            break;
          }
        }
      }
      if (!ok) continue;
      vo[tx] = 255;
      for (std::size_t b = 0; b < nb; ++b) {
        double acc = 0;
        for (int j = ky0; j <= ky1; ++j) {
          const float* row = src_bands[b].ptr<float>(iy + j);
          double h = 0;
          for (int i = kx0; i <= kx1; ++i) h += wx[i + 1] * row[ix + i];
          acc += wy[j + 1] * h;
        }
        out_rows[b][tx] = static_cast<float>(acc);
      }
    }
  }
}

}  // namespace

double align_detail::lattice_value(const ShiftField& f, const cv::Mat& nodes, double x, double y) {
  const int cols = nodes.cols, rows = nodes.rows;
  if (cols <= 0 || rows <= 0 || !(f.spacing > 0)) return 0;
  const double u = std::clamp((x - f.origin.x) / f.spacing, 0.0, cols - 1.0);
  const double v = std::clamp((y - f.origin.y) / f.spacing, 0.0, rows - 1.0);
  const int i = std::min(static_cast<int>(u), cols - 1),
            j = std::min(static_cast<int>(v), rows - 1);
  double wu[4], wv[4];
  catmull_rom(u - i, wu);
  catmull_rom(v - j, wv);
  double acc = 0;
  for (int b = 0; b < 4; ++b) {
    const double* row = nodes.ptr<double>(std::clamp(j + b - 1, 0, rows - 1));
    double h = 0;
    for (int a = 0; a < 4; ++a) h += wu[a] * row[std::clamp(i + a - 1, 0, cols - 1)];
    acc += wv[b] * h;
  }
  return acc;
}

std::vector<Window> tie_point_windows(int width, int height, const AlignConfig& config) {
  std::vector<Window> out;
  if (width <= 0 || height <= 0) return out;
  const int ws = std::max(1, config.window_size);
  const int wx = std::min(ws, width), wy = std::min(ws, height);
  const int n_max = std::max(1, config.max_windows);
  if (config.spacing > 0) {
    // A lattice of centres every `spacing` px, centred in the grid; widened to respect max_windows.
    double sp = config.spacing;
    int nx = 1, ny = 1;
    for (int guard = 0; guard < 64; ++guard) {
      nx = static_cast<int>((width - wx) / sp) + 1;
      ny = static_cast<int>((height - wy) / sp) + 1;
      if (static_cast<std::int64_t>(nx) * ny <= n_max) break;
      sp *= std::max(1.05, std::sqrt(static_cast<double>(nx) * ny / n_max));
    }
    const double x0 = 0.5 * (width - wx - (nx - 1) * sp), y0 = 0.5 * (height - wy - (ny - 1) * sp);
    out.reserve(static_cast<std::size_t>(nx) * static_cast<std::size_t>(ny));
    for (int j = 0; j < ny; ++j) {
      const int y = std::clamp(static_cast<int>(std::floor(y0 + j * sp + 0.5)), 0, height - wy);
      for (int i = 0; i < nx; ++i) {
        out.push_back(Window{
            std::clamp(static_cast<int>(std::floor(x0 + i * sp + 0.5)), 0, width - wx), y, wx, wy});
      }
    }
    return out;
  }
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
                        (square == best_square &&
                         (count > best_count || (count == best_count && skew < best_skew - 1e-12)));
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

TiePoint measure_tie_point(const Window& window, const cv::Mat& reference,
                           const cv::Mat& reference_valid, const cv::Mat& moving,
                           const cv::Mat& moving_valid, const AlignConfig& config) {
  return measure_tie_point(window, reference, reference_valid, moving, moving_valid, Registration{},
                           config.max_shift_px, config);
}

TiePoint measure_tie_point(const Window& window, const cv::Mat& reference,
                           const cv::Mat& reference_valid, const cv::Mat& moving,
                           const cv::Mat& moving_valid, const Registration& prior, double search_px,
                           const AlignConfig& config) {
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
  const PhaseCorrelation pc =
      phase_correlate(reference, moving, reference_valid, moving_valid, search_px);
  // moving(q) = post(q + d0(q)), and moving(p + r) ~ pre(p): d(c) = r + d0(c + r).
  const cv::Point2d c = tp.centre();
  const cv::Point2d r = pc.shift;
  tp.shift = r + displacement(prior, c.x + r.x, c.y + r.y);
  tp.peak = pc.peak;
  tp.psr = pc.psr;
  if (!pc.ok) {
    tp.reason = pc.reason.empty() ? "correlation failed" : pc.reason;
    return tp;
  }
  if (pc.peak < config.min_peak) {
    tp.reason = "weak peak";
    return tp;
  }
  if (pc.psr < config.min_psr) {
    tp.reason = "low peak-to-sidelobe ratio";
    return tp;
  }
  // Similarity gain (as AROSICS): the residual shift must not make the pair less alike.
  cv::Mat ref_mask = reference_valid, mov_mask = moving_valid;
  if (ref_mask.empty()) ref_mask = cv::Mat(reference.size(), CV_8U, cv::Scalar(255));
  if (mov_mask.empty()) mov_mask = cv::Mat(moving.size(), CV_8U, cv::Scalar(255));
  cv::Mat ref32, mov32;
  reference.convertTo(ref32, CV_32F);
  moving.convertTo(mov32, CV_32F);
  tp.ssim_before = structural_similarity(ref32, mov32, ref_mask, mov_mask);
  const cv::Matx23d back(1, 0, r.x, 0, 1, r.y);  // shifted(p) = moving(p + r)
  cv::Mat shifted, shifted_mask;
  cv::warpAffine(mov32, shifted, back, mov32.size(), cv::INTER_CUBIC | cv::WARP_INVERSE_MAP,
                 cv::BORDER_REFLECT);
  cv::warpAffine(mov_mask, shifted_mask, back, mov_mask.size(),
                 cv::INTER_NEAREST | cv::WARP_INVERSE_MAP, cv::BORDER_CONSTANT, cv::Scalar(0));
  cv::erode(shifted_mask, shifted_mask, cv::Mat::ones(5, 5, CV_8U), cv::Point(-1, -1), 1,
            cv::BORDER_CONSTANT, cv::Scalar(0));
  tp.ssim_after = structural_similarity(ref32, shifted, ref_mask, shifted_mask);
  if (tp.ssim_after - tp.ssim_before < config.min_ssim_gain) {
    tp.reason = "similarity not improved";
    return tp;
  }
  tp.kept = true;  // a candidate: the model fit may still drop it as an outlier
  return tp;
}

double structural_similarity(const cv::Mat& a, const cv::Mat& b, const cv::Mat& a_valid,
                             const cv::Mat& b_valid) {
  if (a.empty() || a.size() != b.size()) return 0;
  cv::Mat both(a.size(), CV_8U, cv::Scalar(255));
  if (!a_valid.empty()) cv::bitwise_and(both, a_valid != 0, both);
  if (!b_valid.empty()) cv::bitwise_and(both, b_valid != 0, both);
  cv::Mat fa, fb;
  a.convertTo(fa, CV_32F);
  b.convertTo(fb, CV_32F);
  // Non-finite pixels are invalid too.
  cv::bitwise_and(both, fa == fa, both);
  cv::bitwise_and(both, fb == fb, both);
  cv::Mat inner;
  cv::erode(both, inner, cv::Mat::ones(7, 7, CV_8U), cv::Point(-1, -1), 1, cv::BORDER_CONSTANT,
            cv::Scalar(0));
  if (cv::countNonZero(inner) < 64) return 0;
  cv::Scalar ma, sa, mb, sb;
  cv::meanStdDev(fa, ma, sa, both);
  cv::meanStdDev(fb, mb, sb, both);
  if (!(sa[0] > 1e-9 * (1 + std::abs(ma[0]))) || !(sb[0] > 1e-9 * (1 + std::abs(mb[0])))) return 0;
  // Standardised, invalid pixels at 0 (the mean): a gain or offset is not dissimilarity.
  fa = (fa - ma[0]) / sa[0];
  fb = (fb - mb[0]) / sb[0];
  fa.setTo(0, both == 0);
  fb.setTo(0, both == 0);
  auto blur = [](const cv::Mat& m) {
    cv::Mat out;
    cv::GaussianBlur(m, out, cv::Size(11, 11), 1.5, 1.5, cv::BORDER_REFLECT);
    return out;
  };
  const cv::Mat mu_a = blur(fa), mu_b = blur(fb);
  const cv::Mat saa = blur(fa.mul(fa)) - mu_a.mul(mu_a), sbb = blur(fb.mul(fb)) - mu_b.mul(mu_b),
                sab = blur(fa.mul(fb)) - mu_a.mul(mu_b);
  // Constants for data of unit spread (the usual (0.01 L)^2, (0.03 L)^2 with L ~ 6 sd).
  constexpr double c1 = 0.0036, c2 = 0.0324;
  cv::Mat num = (2 * mu_a.mul(mu_b) + c1).mul(2 * sab + c2);
  cv::Mat den = (mu_a.mul(mu_a) + mu_b.mul(mu_b) + c1).mul(saa + sbb + c2);
  cv::Mat map;
  cv::divide(num, den, map);
  const double v = cv::mean(map, inner)[0];
  return std::isfinite(v) ? std::clamp(v, -1.0, 1.0) : 0.0;
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
  const cv::Point2d centre(median_copy(xs), median_copy(ys));
  std::vector<double> dist;
  for (std::size_t i : usable)
    dist.push_back(std::hypot(ties[i].shift.x - centre.x, ties[i].shift.y - centre.y));
  // The distances are absolute deviations from the robust centre: their median is the MAD.
  const double mad = median_copy(dist);
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
  // Leave-one-out residuals of the mean: r * n / (n - 1) for the kept ties.
  double cv_sum = 0;
  for (std::size_t i : usable) {
    TiePoint& t = ties[i];
    t.cv_residual = t.kept && kept > 1 ? t.residual * kept / (kept - 1.0) : t.residual;
    if (t.kept) cv_sum += t.cv_residual * t.cv_residual;
  }
  reg.model = "translation";
  reg.shift = model;
  reg.affine = cv::Matx23d(1, 0, model.x, 0, 1, model.y);
  reg.max_displacement = std::max(std::abs(model.x), std::abs(model.y));
  reg.kept = kept;
  reg.dropped = static_cast<int>(ties.size()) - kept;
  reg.rmse_before = std::sqrt(before / kept);
  reg.rmse_after = std::sqrt(after / kept);
  reg.cv_rmse = kept > 1 ? std::sqrt(cv_sum / kept) : 0.0;
  reg.uncertainty = reg.cv_rmse;
  reg.ties = std::move(ties);
  return reg;
}

cv::Mat to_intensity(const std::vector<cv::Mat>& bands) {
  if (bands.empty()) return {};
  bool all_float = true;
  for (const auto& b : bands) {
    if (b.size() != bands[0].size() || b.channels() != 1) {
      throw Error(ErrorKind::internal,
                  "to_intensity: bands differ in size or are not single-channel", "align");
    }
    all_float = all_float && b.type() == CV_32F;
  }
  const double scale = 1.0 / static_cast<double>(bands.size());
  cv::Mat out(bands[0].size(), CV_32F);
  if (all_float) {
    // One pass, row by row: the same double sums in the same band order and the same scaling
    // as the general path below (identical values), without its whole-window double buffers.
    std::vector<const float*> in(bands.size());
    for (int y = 0; y < out.rows; ++y) {
      for (std::size_t k = 0; k < bands.size(); ++k) in[k] = bands[k].ptr<float>(y);
      float* o = out.ptr<float>(y);
      for (int x = 0; x < out.cols; ++x) {
        double acc = 0;
        for (const float* p : in) acc += static_cast<double>(p[x]);
        o[x] = static_cast<float>(acc * scale);
      }
    }
    return out;
  }
  cv::Mat acc = cv::Mat::zeros(bands[0].size(), CV_64F);
  for (const auto& b : bands) {
    cv::Mat d;
    b.convertTo(d, CV_64F);
    acc += d;
  }
  acc.convertTo(out, CV_32F, scale);
  return out;
}

namespace {

// The 4-tap rows of the separable cubic convolution, unrolled so the compiler vectorises them,
// and compiled for AVX2 as well (chosen at run time). The same operations in the same order as
// the generic loops (no FMA: -ffp-contract=off), so every version gives identical values. In
// float: eight lanes where double had four (the warp was compute-bound on the conversions), and
// the sum of four taps of a 16-bit value is accurate to ~1e-7 of it, far below the data's own
// quantisation.
template <typename T>
inline void cubic_row_horizontal_body(const T* p, const float* w, int lo, int hi, float* h) {
  for (int tx = lo; tx <= hi; ++tx) {
    float acc = 0;
    acc += w[0] * static_cast<float>(p[tx]);
    acc += w[1] * static_cast<float>(p[tx + 1]);
    acc += w[2] * static_cast<float>(p[tx + 2]);
    acc += w[3] * static_cast<float>(p[tx + 3]);
    h[tx] = acc;
  }
}
AFTERMATH_AVX2_CLONES void cubic_row_horizontal(const float* p, const float* w, int lo, int hi,
                                                float* h) {
  cubic_row_horizontal_body(p, w, lo, hi, h);
}
// Integer bands (SceneReader::read_native) are sampled as they are: a 16-bit integer converts
// to float exactly, so the values are those of a float band.
AFTERMATH_AVX2_CLONES void cubic_row_horizontal(const std::uint16_t* p, const float* w, int lo,
                                                int hi, float* h) {
  cubic_row_horizontal_body(p, w, lo, hi, h);
}

// Invalid pixels (vo 0) are set to +0, by a bit mask in a second pass (a select in the first
// loop keeps GCC 12 from vectorising it).
AFTERMATH_AVX2_CLONES void cubic_row_vertical(const float* const* rows, const float* w,
                                              const uchar* vo, int tw, float* o) {
  const float *r0 = rows[0], *r1 = rows[1], *r2 = rows[2], *r3 = rows[3];
  for (int tx = 0; tx < tw; ++tx) {
    float acc = 0;
    acc += w[0] * r0[tx];
    acc += w[1] * r1[tx];
    acc += w[2] * r2[tx];
    acc += w[3] * r3[tx];
    o[tx] = acc;
  }
  for (int tx = 0; tx < tw; ++tx) {
    std::uint32_t b;
    std::memcpy(&b, &o[tx], sizeof b);
    b &= -static_cast<std::uint32_t>(vo[tx] != 0);
    std::memcpy(&o[tx], &b, sizeof b);
  }
}

}  // namespace

void apply_registration(const Registration& registration, const std::vector<cv::Mat>& bands,
                        const cv::Mat& valid, const Window& source, const Window& target,
                        std::vector<cv::Mat>& out_bands, cv::Mat& out_valid,
                        const RowEpilogue& finish_row) {
  // The paths that do not go row by row finish every row at the end.
  auto finish_all = [&] {
    if (!finish_row) return;
    for (std::size_t b = 0; b < out_bands.size(); ++b) {
      for (int y = 0; y < out_bands[b].rows; ++y)
        finish_row(b, out_bands[b].ptr<float>(y), out_bands[b].cols);
    }
  };
  const cv::Size src_size(std::max(0, source.width), std::max(0, source.height));
  const cv::Size dst_size(std::max(0, target.width), std::max(0, target.height));
  for (const auto& b : bands) {
    if (b.size() != src_size || b.channels() != 1) {
      throw Error(ErrorKind::internal, "apply_registration: band does not cover the source window",
                  "align");
    }
  }
  if (!valid.empty() && valid.size() != src_size) {
    throw Error(ErrorKind::internal,
                "apply_registration: validity mask does not cover the source window", "align");
  }
  cv::Mat valid_u8;
  if (valid.empty()) {
    valid_u8 = cv::Mat(src_size, CV_8U, cv::Scalar(255));
  } else if (valid.type() == CV_8U) {
    valid_u8 = valid;
  } else {
    cv::compare(valid, 0, valid_u8, cv::CMP_NE);
  }
  // Float bands for the general models; the translation below samples uint16 bands directly.
  const bool general = registration.model == "affine" || registration.model == "field";
  std::vector<cv::Mat> src_bands;
  for (const auto& b : bands) {
    cv::Mat f;
    if (b.type() == CV_32F || (!general && b.type() == CV_16U)) {
      f = b;
    } else {
      b.convertTo(f, CV_32F);
    }
    src_bands.push_back(f);
  }

  if (general) {
    apply_general(registration, src_bands, valid_u8, source, target, out_bands, out_valid);
    finish_all();
    return;
  }
  const cv::Point2d shift =
      registration.model == "identity" ? cv::Point2d(0, 0) : registration.shift;
  // Target-local (tx, ty) -> source-local sample position (tx + ox, ty + oy).
  const double ox = target.x - source.x + shift.x;
  const double oy = target.y - source.y + shift.y;
  out_valid = cv::Mat::zeros(dst_size, CV_8U);
  out_bands.assign(src_bands.size(), cv::Mat());
  // A non-finite or absurd shift samples nothing: everything invalid.
  if (!std::isfinite(ox) || !std::isfinite(oy) || std::abs(ox) > 1e9 || std::abs(oy) > 1e9) {
    for (auto& b : out_bands) b = cv::Mat::zeros(dst_size, CV_32F);
    finish_all();
    return;
  }
  // Every output value is written below (0 where invalid): no zeroing first.
  for (auto& b : out_bands) b.create(dst_size, CV_32F);
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
    float weight;
  };
  auto taps_for = [&](double f) {
    std::vector<Tap> taps;
    for (int k = -1; k <= 2; ++k) {
      const auto w = static_cast<float>(keys(f - k));
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
  // Source validity as 0/1, so "all taps valid" is a product (branch-free, vectorised).
  cv::Mat v01;
  cv::min(valid_u8, 1, v01);
  const int ox_lo = std::max(0, -(ix + kx0)), ox_hi = std::min(tw - 1, sw - 1 - (ix + kx1));
  for (int y = 0; y < sh; ++y) {
    const uchar* v = v01.ptr<uchar>(y);
    uchar* o = row_ok.ptr<uchar>(y);
    if (tx_taps.size() == 4) {
      const uchar* p = v + ix + kx0;
      for (int tx = ox_lo; tx <= ox_hi; ++tx) o[tx] = static_cast<uchar>(p[tx] & p[tx + 1] & p[tx + 2] & p[tx + 3]);
      continue;
    }
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
    if (ty_taps.size() == 4) {
      const uchar *r0 = row_ok.ptr<uchar>(y0 + ky0), *r1 = row_ok.ptr<uchar>(y0 + ky0 + 1),
                  *r2 = row_ok.ptr<uchar>(y0 + ky0 + 2), *r3 = row_ok.ptr<uchar>(y0 + ky0 + 3);
      for (int tx = 0; tx < tw; ++tx) vo[tx] = static_cast<uchar>((r0[tx] & r1[tx] & r2[tx] & r3[tx]) * 255);
      continue;
    }
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
  const int tx_lo = std::max(0, -(ix + kx0)), tx_hi = std::min(tw - 1, sw - 1 - (ix + kx1));
  // The vertical pass reads rows row_lo..row_hi only; in them, the columns the horizontal pass
  // skips (outputs whose taps leave the source: invalid, masked to 0) must still hold numbers,
  // and are zeroed once. The rest is written for every band: no zeroing of the whole buffer.
  cv::Mat horiz(sh, tw, CV_32F);
  for (int y = row_lo; y <= row_hi; ++y) {
    float* h = horiz.ptr<float>(y);
    std::fill(h, h + std::min(tx_lo, tw), 0.0f);
    std::fill(h + std::clamp(tx_hi + 1, 0, tw), h + tw, 0.0f);
  }
  for (std::size_t b = 0; b < src_bands.size(); ++b) {
    auto horizontal = [&]<typename T>(const cv::Mat& band) {
      for (int y = row_lo; y <= row_hi; ++y) {
        const T* in = band.ptr<T>(y);
        float* h = horiz.ptr<float>(y);
        if (tx_taps.size() == 4) {
          // The usual case, unrolled so the compiler vectorises it; the same operations in the
          // same order as the generic loop, so the values are identical.
          const float wx[4] = {tx_taps[0].weight, tx_taps[1].weight, tx_taps[2].weight,
                               tx_taps[3].weight};
          cubic_row_horizontal(in + ix + tx_taps[0].offset, wx, tx_lo, tx_hi, h);
          continue;
        }
        for (int tx = tx_lo; tx <= tx_hi; ++tx) {
          const T* p = in + tx + ix;
          float acc = 0;
          for (const Tap& t : tx_taps) acc += t.weight * static_cast<float>(p[t.offset]);
          h[tx] = acc;
        }
      }
    };
    if (src_bands[b].type() == CV_16U) {
      horizontal.operator()<std::uint16_t>(src_bands[b]);
    } else {
      horizontal.operator()<float>(src_bands[b]);
    }
    for (int ty = 0; ty < th; ++ty) {
      const uchar* vo = out_valid.ptr<uchar>(ty);
      float* o = out_bands[b].ptr<float>(ty);
      const int y0 = ty + iy;
      if (y0 + ky0 < 0 || y0 + ky1 >= sh) {
        std::fill(o, o + tw, 0.0f);  // taps outside the source: invalid
      } else {
        const float* rows[4] = {nullptr, nullptr, nullptr, nullptr};
        float w[4] = {0, 0, 0, 0};
        const std::size_t nt = ty_taps.size();
        for (std::size_t k = 0; k < nt; ++k) {
          rows[k] = horiz.ptr<float>(y0 + ty_taps[k].offset);
          w[k] = ty_taps[k].weight;
        }
        if (nt == 4) {  // unrolled and branch-free (vectorised); invalid pixels stay 0
          cubic_row_vertical(rows, w, vo, tw, o);
        } else {
          for (int tx = 0; tx < tw; ++tx) {
            float acc = 0;
            for (std::size_t k = 0; k < nt; ++k) acc += w[k] * rows[k][tx];
            o[tx] = vo[tx] ? acc : 0.0f;
          }
        }
      }
      if (finish_row) finish_row(b, o, tw);
    }
  }
}

int registration_margin(const Registration& registration) {
  if (registration.model == "identity") return 0;
  const double m = registration.model == "translation"
                       ? std::max(std::abs(registration.shift.x), std::abs(registration.shift.y))
                       : registration.max_displacement;
  if (!std::isfinite(m)) return 0;
  return static_cast<int>(std::ceil(std::min(m, 1e8))) + 2;
}

Window registration_source(const Registration& registration, const Window& target) {
  if (registration.model == "identity" || target.empty()) return target;
  double x0 = 1e300, y0 = 1e300, x1 = -1e300, y1 = -1e300;
  const cv::Matx23d& a = registration.model == "translation"
                             ? cv::Matx23d(1, 0, registration.shift.x, 0, 1, registration.shift.y)
                             : registration.affine;
  for (const cv::Point2d p :
       {cv::Point2d(target.x, target.y), cv::Point2d(target.x + target.width - 1.0, target.y),
        cv::Point2d(target.x, target.y + target.height - 1.0),
        cv::Point2d(target.x + target.width - 1.0, target.y + target.height - 1.0)}) {
    const double qx = a(0, 0) * p.x + a(0, 1) * p.y + a(0, 2),
                 qy = a(1, 0) * p.x + a(1, 1) * p.y + a(1, 2);
    x0 = std::min(x0, qx), y0 = std::min(y0, qy), x1 = std::max(x1, qx), y1 = std::max(y1, qy);
  }
  double pad = 0;
  const ShiftField& f = registration.field;
  if (registration.model == "field" && !f.empty()) {
    // Catmull-Rom uses the nodes up to two cells away and overshoots them by at most 1.266x.
    auto node_range = [&](double lo, double hi, double origin, int n, int& i0, int& i1) {
      i0 = std::clamp(static_cast<int>(std::floor((lo - origin) / f.spacing)) - 2, 0, n - 1);
      i1 = std::clamp(static_cast<int>(std::ceil((hi - origin) / f.spacing)) + 2, 0, n - 1);
    };
    int c0, c1, r0, r1;
    node_range(target.x, target.x + target.width - 1.0, f.origin.x, f.dx.cols, c0, c1);
    node_range(target.y, target.y + target.height - 1.0, f.origin.y, f.dx.rows, r0, r1);
    double mx = 0, my = 0;
    const cv::Rect cells(c0, r0, c1 - c0 + 1, r1 - r0 + 1);
    cv::minMaxLoc(cv::abs(f.dx(cells)), nullptr, &mx);
    cv::minMaxLoc(cv::abs(f.dy(cells)), nullptr, &my);
    pad = 1.27 * std::max(mx, my);
  }
  if (!(x1 - x0 < 1e8 && y1 - y0 < 1e8 && std::abs(x0) < 1e8 && std::abs(y0) < 1e8 && pad < 1e8))
    return target;
  const int sx0 = static_cast<int>(std::floor(x0 - pad)) - 2,
            sy0 = static_cast<int>(std::floor(y0 - pad)) - 2;
  const int sx1 = static_cast<int>(std::ceil(x1 + pad)) + 3,
            sy1 = static_cast<int>(std::ceil(y1 + pad)) + 3;
  return {sx0, sy0, sx1 - sx0 + 1, sy1 - sy0 + 1};
}

cv::Point2d displacement(const Registration& registration, double x, double y) {
  if (registration.model == "identity") return {0, 0};
  if (registration.model == "translation") return registration.shift;
  const cv::Matx23d& a = registration.affine;
  cv::Point2d d(a(0, 0) * x + a(0, 1) * y + a(0, 2) - x, a(1, 0) * x + a(1, 1) * y + a(1, 2) - y);
  if (registration.model == "field" && !registration.field.empty()) {
    const ShiftField& f = registration.field;
    d.x += align_detail::lattice_value(f, f.dx, x, y);
    d.y += align_detail::lattice_value(f, f.dy, x, y);
  }
  return d;
}

std::optional<float> uniform_misregistration(const Registration& registration) {
  if (registration.model == "identity") return -1.0f;
  const ShiftField& f = registration.field;
  if (f.spacing <= 0 || f.sigma.empty()) return static_cast<float>(registration.uncertainty);
  return std::nullopt;
}

cv::Mat misregistration(const Registration& registration, const Window& window) {
  const cv::Size size(std::max(0, window.width), std::max(0, window.height));
  // A uniform value is written once (a tile's layer is filled for every tile of the run).
  if (const auto v = uniform_misregistration(registration)) return {size, CV_32F, cv::Scalar(*v)};
  cv::Mat out(size, CV_32F);
  if (out.empty()) return out;
  const ShiftField& f = registration.field;
  // Bilinear between lattice nodes (never negative, unlike a cubic), constant beyond.
  const int cols = f.sigma.cols, rows = f.sigma.rows;
  std::vector<int> ix0(static_cast<std::size_t>(window.width)), ix1(ix0.size());
  std::vector<double> fx(ix0.size());
  for (int x = 0; x < window.width; ++x) {
    const double u = std::clamp((window.x + x - f.origin.x) / f.spacing, 0.0, cols - 1.0);
    const int i = std::min(static_cast<int>(u), cols - 1);
    ix0[static_cast<std::size_t>(x)] = i;
    ix1[static_cast<std::size_t>(x)] = std::min(i + 1, cols - 1);
    fx[static_cast<std::size_t>(x)] = u - i;
  }
  // A lattice row interpolated along x is the same for every output row between two lattice
  // rows: computed once per lattice row (the same operations, so the same values), which leaves
  // a loop the compiler vectorises per output row.
  std::vector<std::vector<double>> along_x(static_cast<std::size_t>(rows));
  auto lattice_row = [&](int j) -> const double* {
    auto& r = along_x[static_cast<std::size_t>(j)];
    if (r.empty()) {
      const double* s = f.sigma.ptr<double>(j);
      r.resize(static_cast<std::size_t>(window.width));
      for (std::size_t k = 0; k < r.size(); ++k) r[k] = s[ix0[k]] * (1 - fx[k]) + s[ix1[k]] * fx[k];
    }
    return r.data();
  };
  for (int y = 0; y < window.height; ++y) {
    const double v = std::clamp((window.y + y - f.origin.y) / f.spacing, 0.0, rows - 1.0);
    const int j = std::min(static_cast<int>(v), rows - 1), j1 = std::min(j + 1, rows - 1);
    const double fy = v - j;
    const double* top = lattice_row(j);
    const double* bottom = lattice_row(j1);
    float* o = out.ptr<float>(y);
    for (int x = 0; x < window.width; ++x)
      o[x] = static_cast<float>(top[x] * (1 - fy) + bottom[x] * fy);
  }
  return out;
}

}  // namespace aftermath
