/// @file phase_correlation.cpp
/// Sub-pixel phase correlation, coarse to fine, with iterative shift compensation.
///
/// Convention (see registration.hpp): the returned shift s satisfies moving(p + s) ~ reference(p).
///
/// Outline:
///  1. validity: given masks AND finite pixels; < 50 % valid in either image -> "too few valid pixels";
///     invalid pixels are filled with the mean of the valid ones; (near) constant -> "no texture".
///  2. pyramid (cv::pyrDown) of the filled images and of the masks (a level pixel is valid only if
///     its whole 5x5 footprint was valid), deep enough that the search radius at the coarsest level
///     is small, but never below ~64 px.
///  3. at each level the moving image is pre-shifted by the current estimate (moving'(p) =
///     moving(p + s)) and the residual is measured by phase correlation on the pixels valid in both
///     (the rest is set to the mean, i.e. 0 after mean removal) under a Hann window; the search for
///     the residual peak covers the whole surface at the coarsest level and is restricted to the
///     radius the coarser level leaves open at the finer ones.
///  4. at the finest level the shift-and-correlate step is repeated until the update is < 0.002 px.
///     Because the residual is then ~0, the 3x3 parabolic peak fit is essentially unbiased.
///
/// The pre-shift uses an exact separable Lanczos-4 kernel evaluated at the true fraction:
/// cv::warpAffine / cv::remap quantise sub-pixel positions to 1/32 px (INTER_BITS = 5), which
/// would put a floor of up to 1/64 px on the achievable accuracy of the iteration.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdlib>
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "aftermath/align/registration.hpp"

namespace aftermath {
namespace {

constexpr double kMinValidFraction = 0.5;   // of each input image
constexpr double kMinOverlapFraction = 0.2;  // of a level, after the pre-shift
constexpr int kMinCoarseSize = 64;           // smallest dimension of the coarsest pyramid level
constexpr double kCoarseRadius = 8.0;        // target search radius at the coarsest level, px
constexpr double kConvergedPx = 0.002;       // stop refining below this update
constexpr int kMaxFineIterations = 6;        // refinements at the finest level (after the first)
constexpr double kUnstablePx = 0.25;         // last update still above this -> not converged
static const double kNoiseWeight = std::getenv("PCW") ? std::atof(std::getenv("PCW")) : 1.0;         // noise level of the spectral weighting, x median |X|

constexpr double kPi = 3.14159265358979323846;

/// Lanczos kernel with a = 4.
double lanczos4(double x) {
  x = std::abs(x);
  if (x < 1e-12) return 1.0;
  if (x >= 4.0) return 0.0;
  const double px = kPi * x;
  return 4.0 * std::sin(px) * std::sin(px / 4.0) / (px * px);
}

/// 8 normalised taps for the offsets -3..4 around floor(position), fraction f in [0, 1).
std::array<double, 8> lanczos_taps(double f) {
  std::array<double, 8> w{};
  if (f == 0.0) {
    w[3] = 1.0;
    return w;
  }
  double sum = 0;
  for (int k = -3; k <= 4; ++k) {
    w[static_cast<std::size_t>(k + 3)] = lanczos4(k - f);
    sum += w[static_cast<std::size_t>(k + 3)];
  }
  for (auto& v : w) v /= sum;
  return w;
}

/// out(p) = in(p + s), separable Lanczos-4 at the exact fraction, BORDER_REFLECT outside.
cv::Mat shift_exact(const cv::Mat& in, cv::Point2d s) {
  CV_Assert(in.type() == CV_32F);
  const int w = in.cols, h = in.rows;
  const double flx = std::floor(s.x), fly = std::floor(s.y);
  const int ix = static_cast<int>(flx), iy = static_cast<int>(fly);
  const auto wx = lanczos_taps(s.x - flx);
  const auto wy = lanczos_taps(s.y - fly);

  std::vector<int> col_index(static_cast<std::size_t>(w) * 8);
  for (int x = 0; x < w; ++x) {
    for (int k = 0; k < 8; ++k) {
      col_index[static_cast<std::size_t>(x) * 8 + static_cast<std::size_t>(k)] =
          cv::borderInterpolate(x + ix + k - 3, w, cv::BORDER_REFLECT);
    }
  }
  // Horizontal pass over every row of the input (rows are picked by the vertical pass).
  cv::Mat tmp(h, w, CV_64F);
  for (int y = 0; y < h; ++y) {
    const float* src = in.ptr<float>(y);
    double* dst = tmp.ptr<double>(y);
    for (int x = 0; x < w; ++x) {
      const int* ci = &col_index[static_cast<std::size_t>(x) * 8];
      double acc = 0;
      for (int k = 0; k < 8; ++k) {
        if (wx[static_cast<std::size_t>(k)] != 0.0) acc += wx[static_cast<std::size_t>(k)] * src[ci[k]];
      }
      dst[x] = acc;
    }
  }
  cv::Mat out(h, w, CV_32F);
  for (int y = 0; y < h; ++y) {
    const double* rows[8];
    for (int k = 0; k < 8; ++k) {
      rows[k] = tmp.ptr<double>(cv::borderInterpolate(y + iy + k - 3, h, cv::BORDER_REFLECT));
    }
    float* dst = out.ptr<float>(y);
    for (int x = 0; x < w; ++x) {
      double acc = 0;
      for (int k = 0; k < 8; ++k) {
        if (wy[static_cast<std::size_t>(k)] != 0.0) acc += wy[static_cast<std::size_t>(k)] * rows[k][x];
      }
      dst[x] = static_cast<float>(acc);
    }
  }
  return out;
}

/// Validity of shift_exact(in, s): the central 4x4 taps (which carry nearly all the weight) must
/// be inside the image and valid.
cv::Mat shift_mask(const cv::Mat& valid, cv::Point2d s) {
  const int ix = static_cast<int>(std::floor(s.x)), iy = static_cast<int>(std::floor(s.y));
  cv::Mat eroded;
  cv::erode(valid, eroded, cv::Mat::ones(4, 4, CV_8U), cv::Point(1, 1), 1, cv::BORDER_CONSTANT, cv::Scalar(0));
  cv::Mat out = cv::Mat::zeros(valid.size(), CV_8U);
  // out(p) = eroded(p + (ix, iy))
  const cv::Rect all(0, 0, valid.cols, valid.rows);
  const cv::Rect src = cv::Rect(ix, iy, valid.cols, valid.rows) & all;
  if (src.area() > 0) eroded(src).copyTo(out(cv::Rect(src.x - ix, src.y - iy, src.width, src.height)));
  return out;
}

struct Level {
  cv::Mat ref, mov;              // CV_32F, invalid pixels filled
  cv::Mat ref_valid, mov_valid;  // CV_8U 0/255
};

struct Estimate {
  cv::Point2d shift;
  double peak = 0;
  bool ok = false;
  std::string reason;
};

/// Parabola vertex offset from three samples around a maximum at the middle one, in [-1, 1].
double parabola_offset(double left, double centre, double right) {
  const double denom = left - 2.0 * centre + right;
  if (!(denom < 0.0)) return 0.0;  // flat or not a maximum (also guards NaN)
  const double d = 0.5 * (left - right) / denom;
  return std::clamp(d, -1.0, 1.0);
}

/// Residual r of the level's moving image after pre-shifting it by `s`:
/// moving(p + s + r) ~ reference(p). The peak is searched within |r_x|, |r_y| <= radius.
Estimate estimate_residual(const Level& level, cv::Point2d s, double radius) {
  Estimate est;
  const cv::Mat mov = (s.x == 0.0 && s.y == 0.0) ? level.mov : shift_exact(level.mov, s);
  const cv::Mat mov_valid = (s.x == 0.0 && s.y == 0.0) ? level.mov_valid : shift_mask(level.mov_valid, s);
  cv::Mat both;
  cv::bitwise_and(level.ref_valid, mov_valid, both);
  const int n = cv::countNonZero(both);
  if (n < kMinOverlapFraction * static_cast<double>(both.total()) || n < 16) {
    est.reason = "too few valid pixels";
    return est;
  }
  cv::Scalar mr, sr, mm, sm;
  cv::meanStdDev(level.ref, mr, sr, both);
  cv::meanStdDev(mov, mm, sm, both);
  if (!(sr[0] > 1e-6 * (1.0 + std::abs(mr[0]))) || !(sm[0] > 1e-6 * (1.0 + std::abs(mm[0])))) {
    est.reason = "no texture";
    return est;
  }

  const int w = level.ref.cols, h = level.ref.rows;
  const int pw = cv::getOptimalDFTSize(w), ph = cv::getOptimalDFTSize(h);
  cv::Mat hann;
  cv::createHanningWindow(hann, cv::Size(w, h), CV_32F);
  auto prepare = [&](const cv::Mat& img, double mean) {
    cv::Mat a = cv::Mat::zeros(ph, pw, CV_32F);
    for (int y = 0; y < h; ++y) {
      const float* src = img.ptr<float>(y);
      const uchar* v = both.ptr<uchar>(y);
      const float* win = hann.ptr<float>(y);
      float* dst = a.ptr<float>(y);
      for (int x = 0; x < w; ++x) dst[x] = v[x] ? static_cast<float>((src[x] - mean) * win[x]) : 0.0f;
    }
    cv::Mat spec;
    cv::dft(a, spec, cv::DFT_COMPLEX_OUTPUT);
    return spec;
  };
  const cv::Mat fr = prepare(level.ref, mr[0]);
  const cv::Mat fm = prepare(mov, mm[0]);

  // Normalised cross-power spectrum M * conj(R) / |M * conj(R)|: its inverse peaks at r.
  // Each frequency is weighted by w = |X| / (|X| + n0), n0 a noise level (kNoiseWeight x the
  // median magnitude): whitening frequencies that only hold noise would drown the peak in
  // noise, band-limited imagery has most of its frequencies at that level. The surface is
  // normalised by the total weight so a perfect match peaks at 1. Frequencies with a negligible
  // magnitude are dropped (never divides by zero).
  cv::Mat cross;
  cv::mulSpectrums(fm, fr, cross, 0, true);
  std::vector<float> mags;
  mags.reserve(cross.total());
  double max_mag = 0;
  for (int y = 0; y < ph; ++y) {
    const cv::Vec2f* c = cross.ptr<cv::Vec2f>(y);
    for (int x = 0; x < pw; ++x) {
      const float m = std::hypot(c[x][0], c[x][1]);
      mags.push_back(m);
      max_mag = std::max(max_mag, static_cast<double>(m));
    }
  }
  auto mid = mags.begin() + static_cast<std::ptrdiff_t>(mags.size() / 2);
  std::nth_element(mags.begin(), mid, mags.end());
  const double eps = std::max(max_mag * 1e-7, static_cast<double>(std::numeric_limits<float>::min()));
  const double n0 = std::max(kNoiseWeight * static_cast<double>(*mid), 0.0);
  double weight_sum = 0;
  cross.at<cv::Vec2f>(0, 0) = cv::Vec2f(0.f, 0.f);  // DC carries no shift information
  for (int y = 0; y < ph; ++y) {
    cv::Vec2f* c = cross.ptr<cv::Vec2f>(y);
    for (int x = 0; x < pw; ++x) {
      const double mag = std::hypot(double(c[x][0]), double(c[x][1]));
      if (mag <= eps) {
        c[x] = cv::Vec2f(0.f, 0.f);
      } else {
        const double scale = 1.0 / (mag + n0);
        weight_sum += mag * scale;
        c[x] = cv::Vec2f(static_cast<float>(c[x][0] * scale), static_cast<float>(c[x][1] * scale));
      }
    }
  }
  if (!(weight_sum > 0)) {
    est.reason = "no texture";
    return est;
  }
  cv::Mat surface;
  cv::dft(cross, surface, cv::DFT_INVERSE | cv::DFT_REAL_OUTPUT);
  surface *= 1.0 / weight_sum;

  // Peak within the search radius (cyclic indices).
  const double r = std::min(radius, 1e6);
  const int rx = std::clamp(static_cast<int>(std::ceil(r)), 0, pw / 2 - 1);
  const int ry = std::clamp(static_cast<int>(std::ceil(r)), 0, ph / 2 - 1);
  auto at = [&](int dy, int dx) {
    return static_cast<double>(surface.at<float>(((dy % ph) + ph) % ph, ((dx % pw) + pw) % pw));
  };
  double best = -std::numeric_limits<double>::infinity();
  int bx = 0, by = 0;
  for (int dy = -ry; dy <= ry; ++dy) {
    for (int dx = -rx; dx <= rx; ++dx) {
      const double v = at(dy, dx);
      if (v > best) {
        best = v;
        bx = dx;
        by = dy;
      }
    }
  }
  if (!std::isfinite(best)) {
    est.reason = "no texture";
    return est;
  }
  const double ox = parabola_offset(at(by, bx - 1), best, at(by, bx + 1));
  const double oy = parabola_offset(at(by - 1, bx), best, at(by + 1, bx));
  est.shift = {bx + ox, by + oy};
  est.peak = std::clamp(best, 0.0, 1.0);
  est.ok = true;
  return est;
}

PhaseCorrelation fail(const std::string& reason) {
  PhaseCorrelation pc;
  pc.ok = false;
  pc.reason = reason;
  return pc;
}

/// Validity mask (CV_8U 0/255) from an optional mask and the finite pixels of `img`.
cv::Mat validity(const cv::Mat& img, const cv::Mat& mask) {
  cv::Mat finite;
  cv::compare(img, img, finite, cv::CMP_EQ);  // false for NaN
  cv::Mat bounded;
  cv::compare(cv::abs(img), std::numeric_limits<float>::max(), bounded, cv::CMP_LE);  // false for inf
  cv::bitwise_and(finite, bounded, finite);
  if (!mask.empty()) {
    cv::Mat m;
    cv::compare(mask, 0, m, cv::CMP_NE);
    cv::bitwise_and(finite, m, finite);
  }
  return finite;
}

cv::Mat fill_invalid(const cv::Mat& img, const cv::Mat& valid) {
  const double mean = cv::mean(img, valid)[0];
  cv::Mat out = img.clone();
  cv::Mat invalid;
  cv::bitwise_not(valid, invalid);
  out.setTo(mean, invalid);
  return out;
}

cv::Mat pyr_down_mask(const cv::Mat& valid) {
  cv::Mat f, d, out;
  valid.convertTo(f, CV_32F, 1.0 / 255.0);
  cv::pyrDown(f, d);
  cv::compare(d, 0.999, out, cv::CMP_GT);
  return out;
}

}  // namespace

PhaseCorrelation phase_correlate(const cv::Mat& reference, const cv::Mat& moving, const cv::Mat& reference_valid,
                                 const cv::Mat& moving_valid, double max_shift_px) {
  if (reference.empty() || moving.empty()) return fail("empty image");
  if (reference.size() != moving.size()) return fail("image sizes differ");
  if (reference.channels() != 1 || moving.channels() != 1) return fail("not single-channel");
  if ((!reference_valid.empty() && reference_valid.size() != reference.size()) ||
      (!moving_valid.empty() && moving_valid.size() != moving.size())) {
    return fail("mask size differs from image size");
  }
  if (std::min(reference.cols, reference.rows) < 8) return fail("image too small");
  if (!(max_shift_px >= 0)) max_shift_px = 0;  // also NaN

  cv::Mat ref, mov;
  reference.convertTo(ref, CV_32F);
  moving.convertTo(mov, CV_32F);
  auto as_u8 = [](const cv::Mat& m) {
    if (m.empty() || m.type() == CV_8U) return m;
    cv::Mat u;
    cv::compare(m, 0, u, cv::CMP_NE);
    return u;
  };

  Level base;
  base.ref_valid = validity(ref, as_u8(reference_valid));
  base.mov_valid = validity(mov, as_u8(moving_valid));
  const double total = static_cast<double>(ref.total());
  if (cv::countNonZero(base.ref_valid) < kMinValidFraction * total ||
      cv::countNonZero(base.mov_valid) < kMinValidFraction * total) {
    return fail("too few valid pixels");
  }
  base.ref = fill_invalid(ref, base.ref_valid);
  base.mov = fill_invalid(mov, base.mov_valid);
  {
    cv::Scalar m1, s1, m2, s2;
    cv::meanStdDev(base.ref, m1, s1, base.ref_valid);
    cv::meanStdDev(base.mov, m2, s2, base.mov_valid);
    if (!(s1[0] > 1e-6 * (1.0 + std::abs(m1[0]))) || !(s2[0] > 1e-6 * (1.0 + std::abs(m2[0])))) {
      return fail("no texture");
    }
  }

  // Pyramid: coarsen until the search radius at the coarsest level is <= kCoarseRadius px,
  // keeping the coarsest level at least kMinCoarseSize px.
  std::vector<Level> levels{base};
  {
    int min_dim = std::min(ref.cols, ref.rows);
    double radius = max_shift_px;
    while (radius > kCoarseRadius && (min_dim + 1) / 2 >= kMinCoarseSize) {
      const Level& f = levels.back();
      Level c;
      cv::pyrDown(f.ref, c.ref);
      cv::pyrDown(f.mov, c.mov);
      c.ref_valid = pyr_down_mask(f.ref_valid);
      c.mov_valid = pyr_down_mask(f.mov_valid);
      levels.push_back(std::move(c));
      min_dim = std::min(levels.back().ref.cols, levels.back().ref.rows);
      radius /= 2;
    }
  }
  const int coarsest = static_cast<int>(levels.size()) - 1;

  cv::Point2d s(0, 0);  // current estimate in pixels of the current level
  Estimate est;
  for (int l = coarsest; l >= 0; --l) {
    if (l < coarsest) s *= 2.0;
    // The coarsest level searches the whole surface (a shift beyond the maximum is then reported
    // as such instead of being replaced by a spurious in-range peak); finer levels only search
    // the residual the coarser level leaves open.
    const double radius = (l == coarsest) ? std::numeric_limits<double>::infinity() : 3.0;
    est = estimate_residual(levels[static_cast<std::size_t>(l)], s, radius);
    if (!est.ok) return fail(est.reason);
    s += est.shift;
    if (l == coarsest && std::hypot(s.x, s.y) > max_shift_px / std::ldexp(1.0, l) + 2.0) {
      PhaseCorrelation pc;
      pc.shift = s * std::ldexp(1.0, l);
      pc.peak = est.peak;
      pc.reason = "shift beyond max_shift_px";
      return pc;
    }
  }
  // Finest level: shift and correlate until the update is negligible.
  double update = std::hypot(est.shift.x, est.shift.y);
  for (int it = 0; it < kMaxFineIterations && update >= kConvergedPx; ++it) {
    est = estimate_residual(levels[0], s, 2.0);
    if (!est.ok) return fail(est.reason);
    s += est.shift;
    update = std::hypot(est.shift.x, est.shift.y);
  }

  PhaseCorrelation pc;
  pc.shift = s;
  pc.peak = est.peak;
  if (!std::isfinite(s.x) || !std::isfinite(s.y)) return fail("no texture");
  if (update > kUnstablePx) {
    pc.reason = "unstable peak";
    return pc;
  }
  if (std::hypot(s.x, s.y) > max_shift_px) {
    pc.reason = "shift beyond max_shift_px";
    return pc;
  }
  pc.ok = true;
  return pc;
}

}  // namespace aftermath
