#include "aftermath/radiometry/normalisation.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "aftermath/core/error.hpp"
#include "aftermath/core/simd.hpp"
#include "aftermath/core/util.hpp"

namespace aftermath {
namespace {

/// Refinement rounds after the first fit (see fit_robust_linear's header comment).
constexpr int kRefineRounds = 3;
/// A pixel is "unchanged" when every band's residual is within this many robust sigmas.
constexpr double kKeepSigmas = 3.0;

/// Median absolute deviation about `med`. Overwrites `v`.
double mad_of(std::vector<double>& v, double med) {
  for (double& x : v) x = std::abs(x - med);
  return median_of(v);
}

void check_band(const cv::Mat& band, const cv::Size& size, const char* what) {
  if (band.type() != CV_32F || band.size() != size) {
    throw Error(ErrorKind::internal,
                std::string("fit_robust_linear: ") + what + " band is not CV_32F of the validity mask's size");
  }
}

/// Median/MAD match of one band over the pixels where `use` is nonzero.
void fit_band(const cv::Mat& pre, const cv::Mat& post, const cv::Mat& use, std::vector<double>& a,
              std::vector<double>& b, double& gain, double& offset) {
  a.clear();
  b.clear();
  for (int r = 0; r < use.rows; ++r) {
    const auto* u = use.ptr<std::uint8_t>(r);
    const auto* p = pre.ptr<float>(r);
    const auto* q = post.ptr<float>(r);
    for (int c = 0; c < use.cols; ++c) {
      if (u[c] == 0) continue;
      a.push_back(p[c]);
      b.push_back(q[c]);
    }
  }
  gain = 1.0;
  offset = 0.0;
  if (a.empty()) return;
  const double med_pre = median_of(a);
  const double med_post = median_of(b);
  const double mad_pre = mad_of(a, med_pre);
  const double mad_post = mad_of(b, med_post);
  // "No spread": a MAD at the level of float32 rounding of the values.
  const double tiny = 1e-7 * (1.0 + std::abs(med_post));
  if (!(mad_post > tiny)) {
    offset = med_pre - med_post;
  } else {
    gain = mad_pre / mad_post;
    offset = med_pre - gain * med_post;
  }
}

/// Pixels per piece of the per-pixel passes run side by side (the masks, the kept count).
constexpr std::int64_t kPiecePx = 16384;

/// Runs body(r, c0, c1) on the row pieces of pixels [begin, end) of a grid `cols` wide, in
/// row-major order.
template <class Body>
void for_row_pieces(int cols, std::int64_t begin, std::int64_t end, Body&& body) {
  while (begin < end) {
    const auto r = static_cast<int>(begin / cols);
    const auto c0 = static_cast<int>(begin % cols);
    const auto c1 = static_cast<int>(std::min<std::int64_t>(cols, c0 + (end - begin)));
    body(r, c0, c1);
    begin += c1 - c0;
  }
}

/// Sets to 255 the pixels of `to` (CV_8U, zero, the size of `from`) that are nonzero in `from`
/// and where pass(k, r, c) holds for every band k < bands; returns how many. Runs in pieces of
/// kPiecePx pixels side by side (`for_each`); each piece writes its own pixels and counts its
/// own, so the mask and the count are exact in any order.
template <class Pass>
std::int64_t mark_where_every_band(const cv::Mat& from, cv::Mat& to, std::size_t bands,
                                   const ForEach& for_each, Pass&& pass) {
  const std::int64_t total = static_cast<std::int64_t>(from.rows) * from.cols;
  const auto pieces = static_cast<std::size_t>((total + kPiecePx - 1) / kPiecePx);
  std::vector<std::int64_t> counts(pieces, 0);
  for_each(pieces, [&](std::size_t i) {
    const std::int64_t begin = static_cast<std::int64_t>(i) * kPiecePx;
    std::int64_t count = 0;  // local: the pieces' counts share cache lines
    for_row_pieces(from.cols, begin, std::min(total, begin + kPiecePx), [&](int r, int c0, int c1) {
      const auto* f = from.ptr<std::uint8_t>(r);
      auto* t = to.ptr<std::uint8_t>(r);
      for (int c = c0; c < c1; ++c) {
        if (f[c] == 0) continue;
        bool in = true;
        for (std::size_t k = 0; k < bands && in; ++k) in = pass(k, r, c);
        if (in) {
          t[c] = 255;
          ++count;
        }
      }
    });
    counts[i] = count;
  });
  std::int64_t sum = 0;
  for (const std::int64_t c : counts) sum += c;
  return sum;
}

}  // namespace

LinearNormalisation fit_robust_linear(const std::vector<cv::Mat>& pre,
                                      const std::vector<cv::Mat>& post, const cv::Mat& valid,
                                      const ForEach& for_each) {
  if (pre.size() != post.size()) {
    throw Error(ErrorKind::internal, "fit_robust_linear: pre and post band counts differ");
  }
  LinearNormalisation n;
  n.gain.assign(pre.size(), 1.0);
  n.offset.assign(pre.size(), 0.0);
  if (pre.empty()) return n;
  if (valid.type() != CV_8U) {
    throw Error(ErrorKind::internal, "fit_robust_linear: validity mask is not CV_8U");
  }
  for (std::size_t k = 0; k < pre.size(); ++k) {
    check_band(pre[k], valid.size(), "pre");
    check_band(post[k], valid.size(), "post");
  }
  const std::size_t bands = pre.size();
  // Pixels usable at all: valid and finite in every band.
  // (The per-pixel passes over all bands run in pieces side by side; the per-band statistics
  // run band by band side by side.)
  cv::Mat usable(valid.size(), CV_8U, cv::Scalar(0));
  const std::int64_t usable_count =
      mark_where_every_band(valid, usable, bands, for_each, [&](std::size_t k, int r, int c) {
        return std::isfinite(pre[k].ptr<float>(r)[c]) && std::isfinite(post[k].ptr<float>(r)[c]);
      });
  if (usable_count == 0) return n;  // no valid pixel: identity

  // Scratch per band: the bands' statistics are independent (bodies of `for_each`).
  std::vector<std::vector<double>> as(bands), bs(bands);
  auto fit_bands = [&](const cv::Mat& use) {
    for_each(bands, [&](std::size_t k) {
      fit_band(pre[k], post[k], use, as[k], bs[k], n.gain[k], n.offset[k]);
    });
  };
  fit_bands(usable);
  // 1e-4 x (1 + median |pre|): the sigma floor of each band, over the usable pixels (fixed).
  std::vector<double> floors(bands);
  for_each(bands, [&](std::size_t k) {
    auto& b = bs[k];
    b.clear();
    for (int r = 0; r < usable.rows; ++r) {
      const auto* u = usable.ptr<std::uint8_t>(r);
      const auto* p = pre[k].ptr<float>(r);
      for (int c = 0; c < usable.cols; ++c) {
        if (u[c] != 0) b.push_back(std::abs(static_cast<double>(p[c])));
      }
    }
    floors[k] = 1e-4 * (1.0 + median_of(b));
  });

  // Refinement: changed pixels (rubble, new roofs) bias a median/MAD match. Keep the pixels whose
  // normalised residual g*post + o - pre lies within kKeepSigmas robust sigmas of its median in
  // every band and refit on them; stop when the kept set no longer changes. The kept set is the
  // same for pre and post, so any subset of unchanged pixels gives an unbiased fit.
  cv::Mat keep = usable.clone();
  const std::int64_t min_keep = std::max<std::int64_t>(16, usable_count / 4);
  for (int round = 0; round < kRefineRounds; ++round) {
    std::vector<double> med(bands), sigma(bands);
    for_each(bands, [&](std::size_t k) {
      auto& a = as[k];
      a.clear();
      for (int r = 0; r < usable.rows; ++r) {
        const auto* u = usable.ptr<std::uint8_t>(r);
        const auto* p = pre[k].ptr<float>(r);
        const auto* q = post[k].ptr<float>(r);
        for (int c = 0; c < usable.cols; ++c) {
          if (u[c] == 0) continue;
          a.push_back(n.gain[k] * q[c] + n.offset[k] - p[c]);
        }
      }
      med[k] = median_of(a);
      sigma[k] = std::max(1.4826 * mad_of(a, med[k]), floors[k]);
    });
    cv::Mat next(valid.size(), CV_8U, cv::Scalar(0));
    const std::int64_t kept =
        mark_where_every_band(usable, next, bands, for_each, [&](std::size_t k, int r, int c) {
          const double res =
              n.gain[k] * post[k].ptr<float>(r)[c] + n.offset[k] - pre[k].ptr<float>(r)[c];
          return std::abs(res - med[k]) <= kKeepSigmas * sigma[k];
        });
    if (kept < min_keep) break;  // too few "unchanged" pixels to trust: keep the current fit
    if (cv::countNonZero(next != keep) == 0) break;
    keep = next;
    fit_bands(keep);
  }
  return n;
}

namespace {
// p = g p + o in double, rounded to float; also compiled for AVX2 (chosen at run time; no FMA,
// so the values are the same).
AFTERMATH_AVX2_CLONES void gain_offset_row(float* p, int cols, double g, double o) {
  for (int c = 0; c < cols; ++c) p[c] = static_cast<float>(g * p[c] + o);
}
}  // namespace

void apply_to_row(const LinearNormalisation& n, std::size_t band, float* row, int cols) {
  if (n.gain.empty() && n.offset.empty()) return;  // identity
  if (band >= n.gain.size() || band >= n.offset.size())
    throw Error(ErrorKind::internal, "apply_to_row(LinearNormalisation): band beyond the fit");
  if (n.gain[band] == 1.0 && n.offset[band] == 0.0) return;
  gain_offset_row(row, cols, n.gain[band], n.offset[band]);
}

void apply(const LinearNormalisation& n, std::vector<cv::Mat>& post_bands) {
  if (n.gain.empty() && n.offset.empty()) return;  // identity
  if (n.gain.size() != post_bands.size() || n.offset.size() != post_bands.size()) {
    throw Error(ErrorKind::internal, "apply(LinearNormalisation): band count differs from the fit");
  }
  for (std::size_t k = 0; k < post_bands.size(); ++k) {
    cv::Mat& band = post_bands[k];
    if (band.empty()) continue;
    if (band.type() != CV_32F) {
      throw Error(ErrorKind::internal, "apply(LinearNormalisation): band is not CV_32F");
    }
    for (int r = 0; r < band.rows; ++r) apply_to_row(n, k, band.ptr<float>(r), band.cols);
  }
}

}  // namespace aftermath
