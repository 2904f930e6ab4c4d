/// @file phase_correlation.cpp
/// Sub-pixel phase correlation, coarse to fine, with iterative shift compensation.
///
/// Convention (see registration.hpp): the returned shift s satisfies moving(p + s) ~ reference(p).
///
/// Outline:
///  1. validity: given masks AND finite pixels; < 50 % valid in either image -> "too few valid
///     pixels"; invalid pixels are filled with the mean of the valid ones; (near) constant -> "no
///     texture" (never NaN).
///  2. pyramid (cv::pyrDown) of the filled images and of the masks (a level pixel is valid only if
///     its whole 5x5 footprint was valid), deep enough that the search radius at the coarsest level
///     is <= 8 px, but the coarsest level is kept >= 128 px (smaller ones lose the texture and let
///     repetitive structure win).
///  3. at each level the moving image is pre-shifted by the current estimate (moving'(p) =
///     moving(p + s)) and the residual is measured by phase correlation: both images are weighted
///     by the same Hann window x a smooth taper of the pixels valid in both; the cross-power
///     spectrum is normalised with a noise floor (frequencies holding only noise are not
///     whitened). At the coarsest level several candidate peaks within max_shift_px (and the global
///     maximum, to detect a shift beyond it) are followed down the pyramid, where only the residual
///     the coarser level leaves open is searched.
///  4. at the finest level the shift-and-correlate step is repeated until the update is below
///     the refinement's tolerance (default 0.002 px). Because the residual is then ~0, the 3x3
///     parabolic peak fit is essentially unbiased.
///  5. changed pixels (rubble, new structures: the locally averaged difference of the robustly
///     standardised, aligned images is an outlier) are masked out and step 4 is repeated: change
///     is clutter that otherwise pulls the sub-pixel estimate by a few hundredths of a pixel
///     (unless the refinement says not to).
///
/// The pre-shift uses an exact separable Lanczos-4 kernel evaluated at the true fraction:
/// cv::warpAffine / cv::remap quantise sub-pixel positions to 1/32 px (INTER_BITS = 5), which
/// would put a floor of up to 1/64 px on the achievable accuracy of the iteration.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <utility>
#include <vector>

#include "aftermath/align/registration.hpp"
#include "aftermath/core/error.hpp"
#include "aftermath/core/util.hpp"

namespace aftermath {
namespace {

constexpr double kMinValidFraction = 0.5;    // of each input image
constexpr double kMinOverlapFraction = 0.2;  // of a level, after the pre-shift
constexpr int kMinCoarseSize = 128;          // smallest dimension of the coarsest pyramid level
constexpr int kCoarseCandidates = 3;         // peaks of the coarsest level followed down
constexpr double kCandidateFraction = 0.5;   // of the best coarse peak, to be followed down
constexpr double kBeyondFactor = 2.0;   // an out-of-range peak must beat the in-range one by this
constexpr double kCoarseRadius = 8.0;   // target search radius at the coarsest level, px
constexpr int kMaxFineIterations = 6;   // refinements at the finest level (after the first)
constexpr double kMinChange = 0.25;     // smallest flagged change, robust sigmas of the image
constexpr double kMaxChangedFraction = 0.4;  // more flagged as change -> no change masking
constexpr double kTaperPx = 6.0;             // weight taper inside the valid region, px
constexpr double kUnstablePx = 0.25;         // last update still above this -> not converged
constexpr double kNoiseWeight = 30.0;        // noise level of the spectral weighting, x median |X|

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
  // Horizontal pass over every row of the input (rows are picked by the vertical pass). Zero
  // weights add exactly nothing (the images are finite), so every tap is summed in order without
  // a branch; columns whose taps are all inside read contiguously (vectorised).
  const int x_in_lo = std::clamp(3 - ix, 0, w), x_in_hi = std::clamp(w - 5 - ix, -1, w - 1);
  cv::Mat tmp(h, w, CV_64F);
  for (int y = 0; y < h; ++y) {
    const float* src = in.ptr<float>(y);
    double* dst = tmp.ptr<double>(y);
    auto gathered = [&](int x) {
      const int* ci = &col_index[static_cast<std::size_t>(x) * 8];
      double acc = 0;
      for (int k = 0; k < 8; ++k) acc += wx[static_cast<std::size_t>(k)] * src[ci[k]];
      return acc;
    };
    for (int x = 0; x < std::min(x_in_lo, w); ++x) dst[x] = gathered(x);
    const float* p = src + ix - 3;
    for (int x = x_in_lo; x <= x_in_hi; ++x) {
      double acc = 0;
      for (int k = 0; k < 8; ++k) acc += wx[static_cast<std::size_t>(k)] * p[x + k];
      dst[x] = acc;
    }
    for (int x = std::max(x_in_hi + 1, x_in_lo); x < w; ++x) dst[x] = gathered(x);
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
      for (int k = 0; k < 8; ++k) acc += wy[static_cast<std::size_t>(k)] * rows[k][x];
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
  cv::erode(valid, eroded, cv::Mat::ones(4, 4, CV_8U), cv::Point(1, 1), 1, cv::BORDER_CONSTANT,
            cv::Scalar(0));
  cv::Mat out = cv::Mat::zeros(valid.size(), CV_8U);
  // out(p) = eroded(p + (ix, iy))
  const cv::Rect all(0, 0, valid.cols, valid.rows);
  const cv::Rect src = cv::Rect(ix, iy, valid.cols, valid.rows) & all;
  if (src.area() > 0)
    eroded(src).copyTo(out(cv::Rect(src.x - ix, src.y - iy, src.width, src.height)));
  return out;
}

/// The reference side of a correlation: the same while the pixels valid in both images are (the
/// refinements shift the moving image by fractions of a pixel, which leaves the mask alone), so
/// its spectrum is computed once for them.
struct ReferenceSide {
  cv::Mat both;             // the mask it was made for
  cv::Mat weight;           // Hann window x taper of `both`
  cv::Mat spectrum;         // of the weighted, mean-free reference
  cv::Scalar mean, stddev;  // of the reference over `both`
  double support = 0;
};

/// The reference sides of a level's recent correlations. A few, not one: the candidates of the
/// coarsest level each come with their own mask, and the finest-level refinement returns to the
/// winner's (recomputed once more per tie-point window with one).
struct ReferenceSides {
  static constexpr std::size_t kCount = 4;
  std::array<ReferenceSide, kCount> sides;
  std::size_t next = 0;  // replaced next (round robin)
  cv::Mat hann;          // the level's Hann window (never written: weights are copies)
  double hann_sum = 0;
};

struct Level {
  cv::Mat ref, mov;               // CV_32F, invalid pixels filled
  cv::Mat ref_valid, mov_valid;   // CV_8U 0/255
  mutable ReferenceSides recent;  // a cache: copies of a level share it until one is recomputed
};

bool same_pixels(const cv::Mat& a, const cv::Mat& b) {
  if (a.empty() || a.size() != b.size() || a.type() != b.type()) return false;
  const std::size_t row_bytes = static_cast<std::size_t>(a.cols) * a.elemSize();
  for (int y = 0; y < a.rows; ++y) {
    if (std::memcmp(a.ptr(y), b.ptr(y), row_bytes) != 0) return false;
  }
  return true;
}

struct Estimate {
  cv::Point2d shift;
  double peak = 0;
  double psr = 0;        ///< peak-to-sidelobe ratio of the surface at this peak
  double support = 0;    ///< total correlation weight relative to a fully valid image, [0, 1]
  bool outside = false;  ///< the global maximum, outside the search radius
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

// The two loops below are functions of their own so that their accumulators live in registers:
// inside estimate_candidates GCC kept them on the stack, a store and a load per pixel. The sums
// run in the same order either way.

/// Adds a row's values and squares to `sum` and `sumsq`.
[[gnu::noinline]] void add_row_sums(const float* row, int n, double& sum, double& sumsq) {
  double s1 = sum, s2 = sumsq;
  for (int x = 0; x < n; ++x) {
    s1 += row[x];
    s2 += static_cast<double>(row[x]) * row[x];
  }
  sum = s1;
  sumsq = s2;
}

/// Whitens `n` complex values of the cross-power spectrum, the real part of the k-th at
/// c[k * stride] and its imaginary part at c[k * stride + im] (`mag`: their magnitudes, at
/// mag[k * stride]): c / (|c| + n0), 0 where |c| <= eps. Returns `weight_sum` plus `copies` x
/// each weight |c| / (|c| + n0).
[[gnu::noinline]] double whiten(float* c, const double* mag, int n, std::ptrdiff_t stride,
                                std::ptrdiff_t im, double copies, double eps, double n0,
                                double weight_sum) {
  for (int k = 0; k < n; ++k) {
    float* re = c + k * stride;
    const double m = mag[k * stride];
    if (m <= eps) {
      re[0] = 0.f;
      if (im) re[im] = 0.f;
    } else {
      const double scale = 1.0 / (m + n0);
      weight_sum += copies * (m * scale);
      re[0] = static_cast<float>(re[0] * scale);
      if (im) re[im] = static_cast<float>(re[im] * scale);
    }
  }
  return weight_sum;
}

/// The frequencies of OpenCV's packed spectrum of a real rows x cols array (CCS: cv::dft without
/// DFT_COMPLEX_OUTPUT). Every frequency of the full spectrum is stored or is the complex
/// conjugate of a stored one, so the packed values stand for all of them: per row, the complex
/// values of columns 1, 3, ... (real part; imaginary part next), each for itself and its
/// conjugate; in column 0 (and the last column when cols is even: the frequency cols / 2) a real
/// value in row 0 for one frequency, then complex values in rows 1 and 2, 3 and 4, ... (real
/// part; imaginary part below) for two each, and when rows is even a real value in the last row
/// for one.
struct PackedSpectrum {
  int rows = 0, cols = 0;
  int row_pairs = 0;         // complex values per row, from column 1
  int column_pairs = 0;      // complex values in a packed column, from row 1
  bool nyquist_col = false;  // the last column is packed like column 0
  bool nyquist_row = false;  // a packed column ends with a real value
  PackedSpectrum(int r, int c)
      : rows(r),
        cols(c),
        row_pairs((c - 1) / 2),
        column_pairs((r - 1) / 2),
        nyquist_col(c % 2 == 0),
        nyquist_row(r % 2 == 0) {}
  /// Calls f(offset of the real part, offset of the imaginary part or 0, copies) for every
  /// packed value of the packed columns (offsets in elements from the first one).
  template <typename F>
  void for_each_in_packed_columns(F&& f) const {
    for (const int col : {0, nyquist_col ? cols - 1 : -1}) {
      if (col < 0) continue;
      f(static_cast<std::ptrdiff_t>(col), std::ptrdiff_t{0}, 1.0);
      for (int j = 0; j < column_pairs; ++j)
        f(static_cast<std::ptrdiff_t>(2 * j + 1) * cols + col, std::ptrdiff_t{cols}, 2.0);
      if (nyquist_row)
        f(static_cast<std::ptrdiff_t>(rows - 1) * cols + col, std::ptrdiff_t{0}, 1.0);
    }
  }
};

/// Residual r of the level's moving image after pre-shifting it by `s`:
/// moving(p + s + r) ~ reference(p). The peaks are searched within |r_x|, |r_y| <= radius; up to
/// `max_peaks` local maxima are returned, best first (or one failed estimate with its reason).
std::vector<Estimate> estimate_candidates(const Level& level, cv::Point2d s, double radius,
                                          int max_peaks) {
  auto fail_with = [](const char* reason) {
    Estimate e;
    e.reason = reason;
    return std::vector<Estimate>{e};
  };
  const cv::Mat mov = (s.x == 0.0 && s.y == 0.0) ? level.mov : shift_exact(level.mov, s);
  const cv::Mat mov_valid =
      (s.x == 0.0 && s.y == 0.0) ? level.mov_valid : shift_mask(level.mov_valid, s);
  cv::Mat both;
  cv::bitwise_and(level.ref_valid, mov_valid, both);
  const int n = cv::countNonZero(both);
  if (n < kMinOverlapFraction * static_cast<double>(both.total()) || n < 16) {
    return fail_with("too few valid pixels");
  }
  // Both images get the same weight: the Hann window times a taper of the pixels valid in both
  // (0 on invalid pixels, rising smoothly to 1 within kTaperPx). A weight common to both images
  // is a structure shared at zero residual; a hard-edged one (its autocorrelation has a cusp)
  // pulls the estimate towards the current shift by a constant amount and the iteration stalls
  // short of the truth, a smooth one only slows the convergence down.
  ReferenceSides& recent = level.recent;
  std::size_t slot = ReferenceSides::kCount;
  for (std::size_t i = 0; i < ReferenceSides::kCount && slot == ReferenceSides::kCount; ++i) {
    if (same_pixels(recent.sides[i].both, both)) slot = i;
  }
  const bool same_side = slot < ReferenceSides::kCount;
  if (!same_side) {
    slot = recent.next;
    recent.next = (recent.next + 1) % ReferenceSides::kCount;
  }
  ReferenceSide& side = recent.sides[slot];
  if (!same_side) {
    // Rebinds every member (never writes into a buffer a copy of the level may share).
    side = ReferenceSide{};
    cv::meanStdDev(level.ref, side.mean, side.stddev, both);
  }
  const cv::Scalar mr = side.mean, sr = side.stddev;
  cv::Scalar mm, sm;
  cv::meanStdDev(mov, mm, sm, both);
  if (!(sr[0] > 1e-6 * (1.0 + std::abs(mr[0]))) || !(sm[0] > 1e-6 * (1.0 + std::abs(mm[0])))) {
    return fail_with("no texture");
  }

  const int w = level.ref.cols, h = level.ref.rows;
  const int pw = cv::getOptimalDFTSize(w), ph = cv::getOptimalDFTSize(h);
  cv::Mat weight = side.weight;
  if (!same_side) {
    if (recent.hann.size() != cv::Size(w, h)) {
      cv::Mat hann;  // a new buffer (a copy of the level may share the old one)
      cv::createHanningWindow(hann, cv::Size(w, h), CV_32F);
      recent.hann = hann;
      recent.hann_sum = cv::sum(hann)[0];
    }
    weight = recent.hann.clone();
    if (n < static_cast<int>(both.total())) {
      cv::Mat dist;
      cv::distanceTransform(both, dist, cv::DIST_L2, cv::DIST_MASK_PRECISE, CV_32F);
      for (int y = 0; y < h; ++y) {
        const float* d = dist.ptr<float>(y);
        float* wp = weight.ptr<float>(y);
        for (int x = 0; x < w; ++x) {
          const double t = std::min(static_cast<double>(d[x]) / kTaperPx, 1.0);
          // At t = 1 the factor is exactly 1 (cos(pi) rounds to -1): most pixels, no cosine.
          if (t < 1.0) wp[x] *= static_cast<float>(0.5 - 0.5 * std::cos(kPi * t));
        }
      }
    }
    side.support = cv::sum(weight)[0] / std::max(recent.hann_sum, 1e-12);
    side.weight = weight;
  }
  const double support = side.support;
  auto prepare = [&](const cv::Mat& img, double mean) {
    cv::Mat a = cv::Mat::zeros(ph, pw, CV_32F);
    for (int y = 0; y < h; ++y) {
      const float* src = img.ptr<float>(y);
      const uchar* v = both.ptr<uchar>(y);
      const float* wp = weight.ptr<float>(y);
      float* dst = a.ptr<float>(y);
      for (int x = 0; x < w; ++x)
        dst[x] = v[x] ? static_cast<float>((src[x] - mean) * wp[x]) : 0.0f;
    }
    // Packed (CCS): the other half of a real array's spectrum is its conjugate, so every step on
    // the spectrum below does half the work of a full complex one.
    cv::Mat spec;
    cv::dft(a, spec);
    return spec;
  };
  if (!same_side) {
    side.spectrum = prepare(level.ref, mr[0]);
    side.both = both;
  }
  const cv::Mat fr = side.spectrum;
  const cv::Mat fm = prepare(mov, mm[0]);

  // Normalised cross-power spectrum M * conj(R) / |M * conj(R)|: its inverse peaks at r.
  // Each frequency is weighted by w = |X| / (|X| + n0), n0 a noise level (kNoiseWeight x the
  // median magnitude over all frequencies): whitening frequencies that only hold noise would
  // drown the peak in noise, band-limited imagery has most of its frequencies at that level.
  // The surface is normalised by the total weight so a perfect match peaks at 1. Frequencies
  // with a negligible magnitude are dropped (never divides by zero).
  cv::Mat cross;
  cv::mulSpectrums(fm, fr, cross, 0, true);
  if (!cross.isContinuous() || cross.type() != CV_32F)
    throw Error(ErrorKind::internal, "phase correlation: unexpected spectrum layout", "align");
  const PackedSpectrum packed(ph, pw);
  float* const cs = cross.ptr<float>(0);
  // Each magnitude once, in double (sqrt of the squares: std::hypot is several times slower, no
  // overflow here), at the offset of its real part; the noise level takes the float ones, each
  // as many times as it stands for frequencies (the median of the full spectrum's magnitudes).
  const std::size_t total = cross.total();
  thread_local std::vector<double> mag_d;
  thread_local std::vector<float> mags;
  mag_d.resize(total);
  mags.resize(total);
  std::size_t nm = 0;
  double max_mag = 0;
  for (int y = 0; y < ph; ++y) {
    const float* c = cs + static_cast<std::ptrdiff_t>(y) * pw + 1;
    double* md = mag_d.data() + static_cast<std::ptrdiff_t>(y) * pw + 1;
    float* mf = mags.data() + nm;
    double row_max = 0;
    for (int k = 0; k < packed.row_pairs; ++k) {
      const double m = std::sqrt(double(c[2 * k]) * c[2 * k] + double(c[2 * k + 1]) * c[2 * k + 1]);
      md[2 * k] = m;
      mf[2 * k] = mf[2 * k + 1] = static_cast<float>(m);
      row_max = std::max(row_max, static_cast<double>(mf[2 * k]));
    }
    nm += 2 * static_cast<std::size_t>(packed.row_pairs);
    max_mag = std::max(max_mag, row_max);
  }
  packed.for_each_in_packed_columns([&](std::ptrdiff_t re, std::ptrdiff_t im, double copies) {
    const double a = cs[re], b = im ? cs[re + im] : 0.0;
    const double m = std::sqrt(a * a + b * b);
    mag_d[static_cast<std::size_t>(re)] = m;
    const auto mf = static_cast<float>(m);
    mags[nm++] = mf;
    if (copies > 1) mags[nm++] = mf;
    max_mag = std::max(max_mag, static_cast<double>(mf));
  });
  if (nm != total)  // every frequency of the full spectrum, once
    throw Error(ErrorKind::internal, "phase correlation: packed spectrum miscounted", "align");
  const float median_mag = kth_smallest(mags, mags.size() / 2);
  const double eps =
      std::max(max_mag * 1e-7, static_cast<double>(std::numeric_limits<float>::min()));
  const double n0 = std::max(kNoiseWeight * static_cast<double>(median_mag), 0.0);
  double weight_sum = 0;
  cs[0] = 0.f;  // DC carries no shift information
  mag_d[0] = 0.0;
  for (int y = 0; y < ph; ++y) {
    const std::ptrdiff_t row = static_cast<std::ptrdiff_t>(y) * pw + 1;
    weight_sum =
        whiten(cs + row, mag_d.data() + row, packed.row_pairs, 2, 1, 2.0, eps, n0, weight_sum);
  }
  packed.for_each_in_packed_columns([&](std::ptrdiff_t re, std::ptrdiff_t im, double copies) {
    weight_sum = whiten(cs + re, mag_d.data() + re, 1, 0, im, copies, eps, n0, weight_sum);
  });
  if (!(weight_sum > 0)) {
    return fail_with("no texture");
  }
  cv::Mat surface;
  cv::dft(cross, surface, cv::DFT_INVERSE | cv::DFT_REAL_OUTPUT);
  surface *= 1.0 / weight_sum;

  // Peaks within the search radius (cyclic indices): the highest local maxima, best first. With
  // max_peaks > 1 the whole surface is scanned as well and, if the global maximum lies outside
  // the radius, it is appended (flagged `outside`).
  const int full_x = std::max(pw / 2 - 1, 0), full_y = std::max(ph / 2 - 1, 0);
  const double r = std::min(radius, 1e6);
  const int rx = std::clamp(static_cast<int>(std::ceil(r)), 0, full_x);
  const int ry = std::clamp(static_cast<int>(std::ceil(r)), 0, full_y);
  const int sx = max_peaks > 1 ? full_x : rx, sy = max_peaks > 1 ? full_y : ry;
  auto at = [&](int dy, int dx) {
    return static_cast<double>(surface.at<float>(((dy % ph) + ph) % ph, ((dx % pw) + pw) % pw));
  };
  struct Peak {
    double value;
    int dx, dy;
  };
  constexpr double kNone = -std::numeric_limits<double>::infinity();
  std::vector<Peak> peaks;
  Peak best{kNone, 0, 0}, global{kNone, 0, 0};
  for (int dy = -sy; dy <= sy; ++dy) {
    for (int dx = -sx; dx <= sx; ++dx) {
      const double v = at(dy, dx);
      if (!(v > kNone)) continue;  // NaN
      if (v > global.value) global = {v, dx, dy};
      if (std::abs(dx) > rx || std::abs(dy) > ry) continue;
      if (v > best.value) best = {v, dx, dy};
      if (max_peaks > 1) {
        bool local_max = true;
        for (int ny = -1; ny <= 1 && local_max; ++ny) {
          for (int nx = -1; nx <= 1; ++nx) {
            if ((nx != 0 || ny != 0) && at(dy + ny, dx + nx) > v) {
              local_max = false;
              break;
            }
          }
        }
        if (local_max) peaks.push_back({v, dx, dy});
      }
    }
  }
  if (!std::isfinite(best.value)) return fail_with("no texture");
  if (peaks.empty()) peaks.push_back(best);
  std::stable_sort(peaks.begin(), peaks.end(),
                   [](const Peak& a, const Peak& b) { return a.value > b.value; });
  if (static_cast<int>(peaks.size()) > max_peaks) peaks.resize(static_cast<std::size_t>(max_peaks));
  const bool global_outside = max_peaks > 1 && std::isfinite(global.value) &&
                              (std::abs(global.dx) > rx || std::abs(global.dy) > ry);
  if (global_outside) peaks.push_back(global);

  // Peak-to-sidelobe ratio: the peak against the rest of the surface (all but 11 x 11 px around
  // it). Sums over the whole surface once, the excluded block is subtracted per peak.
  double sum_all = 0, sumsq_all = 0;
  for (int y = 0; y < ph; ++y) add_row_sums(surface.ptr<float>(y), pw, sum_all, sumsq_all);
  auto psr_at = [&](const Peak& pk) {
    constexpr int kHalf = 5;
    double s1 = sum_all, s2 = sumsq_all;
    int n_out = pw * ph;
    for (int dy = -kHalf; dy <= kHalf; ++dy) {
      for (int dx = -kHalf; dx <= kHalf; ++dx) {
        if (2 * kHalf + 1 > pw || 2 * kHalf + 1 > ph) continue;
        const double v = at(pk.dy + dy, pk.dx + dx);
        s1 -= v;
        s2 -= v * v;
        --n_out;
      }
    }
    if (n_out < 16) return 0.0;
    const double mean = s1 / n_out;
    const double var = std::max(s2 / n_out - mean * mean, 0.0);
    const double sd = std::sqrt(var);
    return sd > 0 ? std::min((pk.value - mean) / sd, 1e6) : 0.0;
  };

  std::vector<Estimate> out;
  for (std::size_t i = 0; i < peaks.size(); ++i) {
    const Peak& pk = peaks[i];
    Estimate e;
    const double ox = parabola_offset(at(pk.dy, pk.dx - 1), pk.value, at(pk.dy, pk.dx + 1));
    const double oy = parabola_offset(at(pk.dy - 1, pk.dx), pk.value, at(pk.dy + 1, pk.dx));
    e.shift = {pk.dx + ox, pk.dy + oy};
    e.peak = std::clamp(pk.value, 0.0, 1.0);
    e.psr = psr_at(pk);
    e.support = support;
    e.outside = global_outside && i + 1 == peaks.size();
    e.ok = true;
    out.push_back(e);
  }
  return out;
}

/// The best peak of estimate_candidates.
Estimate estimate_residual(const Level& level, cv::Point2d s, double radius) {
  return estimate_candidates(level, s, radius, 1).front();
}

/// Median (upper median for even sizes) of `v`, reordering it; 0 when empty.
double median_in_place(std::vector<float>& v) {
  if (v.empty()) return 0;
  return static_cast<double>(kth_smallest(v, v.size() / 2));
}

/// Pixels (reference coordinates, 255) that changed between the images aligned by `s`: the
/// locally averaged difference of the standardised images is an outlier (median + 3 robust
/// sigmas). Empty when nothing, or implausibly much (> kMaxChangedFraction), stands out.
cv::Mat change_mask(const Level& level, cv::Point2d s) {
  const cv::Mat mov = shift_exact(level.mov, s);
  cv::Mat both;
  cv::bitwise_and(level.ref_valid, shift_mask(level.mov_valid, s), both);
  const int n = cv::countNonZero(both);
  if (n < 64) return {};
  // Robust standardisation (median, MAD of the pixels valid in both): unlike mean and standard
  // deviation it is not skewed by the change itself, so unchanged bright roofs stay equal.
  auto robust_z = [&](const cv::Mat& img) {
    std::vector<float> v;
    v.reserve(static_cast<std::size_t>(n));
    for (int y = 0; y < img.rows; ++y) {
      const float* p = img.ptr<float>(y);
      const uchar* m = both.ptr<uchar>(y);
      for (int x = 0; x < img.cols; ++x) {
        if (m[x]) v.push_back(p[x]);
      }
    }
    const double med = median_in_place(v);
    for (auto& x : v) x = std::abs(x - static_cast<float>(med));
    const double scale = 1.4826 * median_in_place(v);
    cv::Mat z;
    if (!(scale > 0)) return z;
    img.convertTo(z, CV_32F, 1.0 / scale, -med / scale);
    return z;
  };
  const cv::Mat zr = robust_z(level.ref), zm = robust_z(mov);
  if (zr.empty() || zm.empty()) return {};
  cv::Mat d;
  cv::absdiff(zr, zm, d);
  cv::Mat invalid;
  cv::bitwise_not(both, invalid);
  d.setTo(0, invalid);
  cv::boxFilter(d, d, CV_32F, cv::Size(5, 5), cv::Point(-1, -1), true, cv::BORDER_REFLECT);
  std::vector<float> values;
  values.reserve(static_cast<std::size_t>(n));
  for (int y = 0; y < d.rows; ++y) {
    const float* dp = d.ptr<float>(y);
    const uchar* v = both.ptr<uchar>(y);
    for (int x = 0; x < d.cols; ++x) {
      if (v[x]) values.push_back(dp[x]);
    }
  }
  const double med = median_in_place(values);
  for (auto& v : values) v = std::abs(v - static_cast<float>(med));
  const double mad = median_in_place(values);
  const double limit = med + std::max(3.0 * 1.4826 * mad, kMinChange);
  cv::Mat changed;
  cv::compare(d, limit, changed, cv::CMP_GT);
  cv::bitwise_and(changed, both, changed);
  cv::dilate(changed, changed, cv::Mat::ones(3, 3, CV_8U));
  const int nc = cv::countNonZero(changed);
  if (nc == 0 || nc > kMaxChangedFraction * n) return {};
  return changed;
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
  cv::compare(cv::abs(img), std::numeric_limits<float>::max(), bounded,
              cv::CMP_LE);  // false for inf
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

PhaseCorrelation phase_correlate(const cv::Mat& reference, const cv::Mat& moving,
                                 const cv::Mat& reference_valid, const cv::Mat& moving_valid,
                                 double max_shift_px,
                                 const PhaseCorrelationRefinement& refinement) {
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

  // Coarsest level: several candidate peaks within the maximum shift are kept (repetitive
  // structure, rows of buildings or a road, can make a wrong coarse peak the highest). Each that
  // stands at least half as high as the best is followed down the pyramid, where only the
  // residual the coarser level leaves open is searched, and the best at the finest level wins; a
  // far-off candidate overlaps less, so its normalised peak is discounted by the support. The
  // global maximum of the coarse surface is followed too when it lies beyond the maximum shift: if
  // it clearly beats the in-range winner, the shift is reported as beyond max_shift_px rather than
  // replaced by a spurious in-range peak.
  const double coarse_radius = max_shift_px / std::ldexp(1.0, coarsest) + 2.0;
  const std::vector<Estimate> coarse = estimate_candidates(
      levels[static_cast<std::size_t>(coarsest)], {0, 0}, coarse_radius, kCoarseCandidates);
  if (!coarse.front().ok) return fail(coarse.front().reason);
  cv::Point2d s(0, 0);  // the in-range winner, finest-level pixels
  Estimate est;         // its last estimate
  bool have = false, have_outside = false;
  cv::Point2d s_out(0, 0);
  Estimate est_out;
  std::string last_reason;
  auto score = [](const Estimate& e) { return e.peak * e.support; };
  for (const Estimate& candidate : coarse) {
    // An alias of repetitive structure peaks about as high as the true shift at the coarsest
    // level (the runners-up that won on the real samples stood at 0.66-1.0 of the best); one
    // below half the best is the surface's noise, and following it down cost a fifth of the
    // correlations of a well-textured window.
    if (&candidate != &coarse.front() && !candidate.outside &&
        score(candidate) < kCandidateFraction * score(coarse.front())) {
      continue;
    }
    cv::Point2d sc = candidate.shift;
    Estimate ec = candidate;
    for (int l = coarsest - 1; l >= 0 && ec.ok; --l) {
      sc *= 2.0;
      ec = estimate_residual(levels[static_cast<std::size_t>(l)], sc, 3.0);
      if (ec.ok) sc += ec.shift;
    }
    if (!ec.ok) {
      last_reason = ec.reason;
      continue;
    }
    if (candidate.outside) {
      have_outside = true;
      s_out = sc;
      est_out = ec;
    } else if (!have || score(ec) > score(est)) {
      have = true;
      s = sc;
      est = ec;
    }
  }
  if (have_outside && (!have || score(est_out) > kBeyondFactor * score(est))) {
    PhaseCorrelation pc;
    pc.shift = s_out;
    pc.peak = est_out.peak;
    pc.psr = est_out.psr;
    pc.reason = "shift beyond max_shift_px";
    return pc;
  }
  if (!have) return fail(last_reason);
  // Finest level: shift and correlate until the update is negligible.
  const double converged = refinement.tolerance_px;
  double update = std::hypot(est.shift.x, est.shift.y);
  for (int it = 0; it < kMaxFineIterations && update >= converged; ++it) {
    est = estimate_residual(levels[0], s, 2.0);
    if (!est.ok) return fail(est.reason);
    s += est.shift;
    update = std::hypot(est.shift.x, est.shift.y);
  }

  // Real change (rubble instead of a roof, new debris...) is uncorrelated clutter that pulls the
  // sub-pixel estimate. Once aligned, mask the pixels that differ much more than the rest and
  // refine again on the unchanged ones.
  if (refinement.mask_change) {
    Level masked = levels[0];
    const cv::Mat changed = change_mask(masked, s);
    if (!changed.empty()) {
      cv::Mat keep, ref_valid;
      cv::bitwise_not(changed, keep);
      cv::bitwise_and(levels[0].ref_valid, keep, ref_valid);
      masked.ref_valid = ref_valid;  // a new buffer: levels[0] stays intact
      cv::Point2d sm = s;
      Estimate em;
      double um = 1.0;
      for (int it = 0; it < kMaxFineIterations && um >= converged; ++it) {
        em = estimate_residual(masked, sm, 2.0);
        if (!em.ok) break;
        sm += em.shift;
        um = std::hypot(em.shift.x, em.shift.y);
      }
      if (em.ok) {
        s = sm;
        update = um;
        est = em;
      }
    }
  }

  PhaseCorrelation pc;
  pc.shift = s;
  pc.peak = est.peak;
  pc.psr = est.psr;
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
