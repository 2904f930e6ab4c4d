/// @file estimate.cpp
/// The estimation driver: coarse shift on a central window, tie points against that prior, the
/// model fit, and the feature-matching fallback. Reads through a WindowReader and runs the
/// per-window work through a ForEach, so it knows neither files nor threads.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <opencv2/calib3d.hpp>
#include <opencv2/core.hpp>
#include <opencv2/features2d.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <vector>

#include "aftermath/align/registration.hpp"

namespace aftermath {
namespace {

constexpr int kCoarseMin = 1024;    // smallest side of the coarse window, px
constexpr int kCoarseMax = 4096;    // largest side (bounds its memory whatever the scene)
constexpr int kCoarseTarget = 512;  // the coarse window is downsampled to at most this side
constexpr int kMinFeatureInliers = 12;
constexpr int kTrustFeatureInliers = 20;  // enough to use the feature model on its own

struct Coarse {
  Window window;
  int factor = 1;
  cv::Mat pre, pre_valid, post, post_valid;  // downsampled
  PhaseCorrelation pc;                       // shift in grid px
};

Window coarse_window(int width, int height, const AlignConfig& config) {
  const int side = static_cast<int>(
      std::clamp(4.0 * config.max_shift_px, double(kCoarseMin), double(kCoarseMax)));
  const int w = std::min(side, width), h = std::min(side, height);
  return {(width - w) / 2, (height - h) / 2, w, h};
}

/// Area downsampling by an integer factor; a pixel is valid when its whole block was.
void downsample(const IntensityWindow& in, int f, cv::Mat& img, cv::Mat& valid) {
  cv::Mat v = in.valid.empty() ? cv::Mat(in.image.size(), CV_8U, cv::Scalar(255)) : in.valid;
  if (f <= 1) {
    img = in.image;
    valid = v;
    return;
  }
  cv::Mat filled = in.image.clone();
  const double mean = cv::countNonZero(v) > 0 ? cv::mean(in.image, v)[0] : 0.0;
  filled.setTo(mean, v == 0);
  const cv::Size size(std::max(1, in.image.cols / f), std::max(1, in.image.rows / f));
  cv::resize(filled, img, size, 0, 0, cv::INTER_AREA);
  cv::Mat vf;
  v.convertTo(vf, CV_32F, 1.0 / 255.0);
  cv::resize(vf, vf, size, 0, 0, cv::INTER_AREA);
  cv::compare(vf, 0.999, valid, cv::CMP_GT);
}

Coarse coarse_shift(int width, int height, const AlignConfig& config, const WindowReader& read,
                    const ForEach& for_each) {
  Coarse c;
  c.window = coarse_window(width, height, config);
  const int side = std::max(c.window.width, c.window.height);
  c.factor = std::max(1, (side + kCoarseTarget - 1) / kCoarseTarget);
  // The two scenes' windows are read side by side (a quarter of the estimate stage otherwise).
  for_each(2, [&](std::size_t post) {
    if (post != 0) {
      downsample(read(true, c.window), c.factor, c.post, c.post_valid);
    } else {
      downsample(read(false, c.window), c.factor, c.pre, c.pre_valid);
    }
  });
  const double f = c.factor;
  // The coarse shift is only the tie points' prior, rounded to whole grid pixels (they search at
  // least 4 x factor + 8 px around it, or max_shift_px): a tenth of a downsampled pixel is plenty,
  // and the sub-pixel refinement of this largest correlation (512^2) was the longest serial step of
  // the stage.
  const PhaseCorrelationRefinement to_a_tenth{0.1, false};
  c.pc = phase_correlate(c.pre, c.post, c.pre_valid, c.post_valid, config.max_shift_px / f + 2.0,
                         to_a_tenth);
  // Block centres: a downsampled pixel i covers grid pixels i*f .. i*f + f - 1, so a shift scales
  // by f.
  c.pc.shift *= f;
  if (c.pc.ok && (c.pc.peak < config.min_peak || c.pc.psr < config.min_psr)) {
    c.pc.ok = false;
    c.pc.reason = "weak peak";
  }
  return c;
}

/// Tie points on the layout, each post window resampled with `prior` and its residual measured.
std::vector<TiePoint> measure_all(const std::vector<Window>& windows, const Registration& prior,
                                  double search_px, const AlignConfig& config,
                                  const WindowReader& read, const ForEach& for_each) {
  std::vector<TiePoint> ties(windows.size());
  const bool integer_shift =
      prior.model == "identity" ||
      (prior.model == "translation" && prior.shift.x == std::floor(prior.shift.x) &&
       prior.shift.y == std::floor(prior.shift.y));
  for_each(windows.size(), [&](std::size_t i) {
    const Window& w = windows[i];
    const IntensityWindow pre = read(false, w);
    if (integer_shift) {
      // A whole-pixel prior is a read at an offset: no resampling.
      const cv::Point2d d = displacement(prior, 0, 0);
      const Window src{w.x + static_cast<int>(d.x), w.y + static_cast<int>(d.y), w.width, w.height};
      const IntensityWindow post = read(true, src);
      ties[i] = measure_tie_point(w, pre.image, pre.valid, post.image, post.valid, prior, search_px,
                                  config);
      return;
    }
    // The post region the prior maps the window onto, plus the cubic taps.
    double x0 = 1e300, y0 = 1e300, x1 = -1e300, y1 = -1e300;
    for (const cv::Point2d p : {cv::Point2d(w.x, w.y), cv::Point2d(w.x + w.width - 1.0, w.y),
                                cv::Point2d(w.x, w.y + w.height - 1.0),
                                cv::Point2d(w.x + w.width - 1.0, w.y + w.height - 1.0)}) {
      const cv::Point2d q = p + displacement(prior, p.x, p.y);
      x0 = std::min(x0, q.x), y0 = std::min(y0, q.y), x1 = std::max(x1, q.x),
      y1 = std::max(y1, q.y);
    }
    if (!(x1 - x0 < 1e6 && y1 - y0 < 1e6)) {
      ties[i].window = w;
      ties[i].reason = "prior model out of range";
      return;
    }
    const Window src{static_cast<int>(std::floor(x0)) - 3, static_cast<int>(std::floor(y0)) - 3,
                     static_cast<int>(std::ceil(x1) - std::floor(x0)) + 7,
                     static_cast<int>(std::ceil(y1) - std::floor(y0)) + 7};
    const IntensityWindow post = read(true, src);
    std::vector<cv::Mat> out;
    cv::Mat out_valid;
    apply_registration(prior, {post.image}, post.valid, src, w, out, out_valid);
    ties[i] =
        measure_tie_point(w, pre.image, pre.valid, out[0], out_valid, prior, search_px, config);
  });
  return ties;
}

/// 8-bit version for the feature detector: 1st..99th percentile of the valid pixels stretched.
cv::Mat to_u8(const cv::Mat& img, const cv::Mat& valid) {
  std::vector<float> v;
  for (int y = 0; y < img.rows; ++y) {
    const float* p = img.ptr<float>(y);
    const uchar* m = valid.ptr<uchar>(y);
    for (int x = 0; x < img.cols; ++x) {
      if (m[x] && std::isfinite(p[x])) v.push_back(p[x]);
    }
  }
  cv::Mat out(img.size(), CV_8U, cv::Scalar(0));
  if (v.size() < 64) return out;
  const auto lo_it = v.begin() + static_cast<std::ptrdiff_t>(v.size() / 100);
  std::nth_element(v.begin(), lo_it, v.end());
  const double lo = *lo_it;
  const auto hi_it = v.begin() + static_cast<std::ptrdiff_t>(v.size() * 99 / 100);
  std::nth_element(v.begin(), hi_it, v.end());
  const double hi = *hi_it;
  if (!(hi > lo)) return out;
  img.convertTo(out, CV_8U, 255.0 / (hi - lo), -lo * 255.0 / (hi - lo));
  out.setTo(0, valid == 0);
  return out;
}

struct FeatureModel {
  bool ok = false;
  cv::Matx23d affine;
  int matches = 0, inliers = 0;
  double rmse = 0;  // inlier residual RMS, grid px
  std::string reason;
};

/// ORB matching + RANSAC similarity (rotation, scale, shift) on the coarse window.
FeatureModel feature_match(const Coarse& c) {
  FeatureModel fm;
  const cv::Mat a = to_u8(c.pre, c.pre_valid), b = to_u8(c.post, c.post_valid);
  cv::Mat ma, mb;
  cv::erode(c.pre_valid, ma, cv::Mat::ones(15, 15, CV_8U));
  cv::erode(c.post_valid, mb, cv::Mat::ones(15, 15, CV_8U));
  auto orb = cv::ORB::create(3000);
  std::vector<cv::KeyPoint> ka, kb;
  cv::Mat da, db;
  orb->detectAndCompute(a, ma, ka, da);
  orb->detectAndCompute(b, mb, kb, db);
  if (da.empty() || db.empty()) {
    fm.reason = "no features";
    return fm;
  }
  cv::BFMatcher matcher(cv::NORM_HAMMING);
  std::vector<std::vector<cv::DMatch>> knn;
  matcher.knnMatch(da, db, knn, 2);
  std::vector<cv::Point2f> pa, pb;
  const double f = c.factor, off = (f - 1) / 2.0;
  for (const auto& m : knn) {
    if (m.size() == 2 && m[0].distance < 0.8f * m[1].distance) {
      const cv::Point2f p = ka[static_cast<std::size_t>(m[0].queryIdx)].pt;
      const cv::Point2f q = kb[static_cast<std::size_t>(m[0].trainIdx)].pt;
      pa.emplace_back(static_cast<float>(c.window.x + p.x * f + off),
                      static_cast<float>(c.window.y + p.y * f + off));
      pb.emplace_back(static_cast<float>(c.window.x + q.x * f + off),
                      static_cast<float>(c.window.y + q.y * f + off));
    }
  }
  fm.matches = static_cast<int>(pa.size());
  if (fm.matches < kMinFeatureInliers) {
    fm.reason = "too few feature matches";
    return fm;
  }
  std::vector<uchar> inl;
  const cv::Mat m = cv::estimateAffinePartial2D(pa, pb, inl, cv::RANSAC, 3.0 * f, 5000, 0.995, 10);
  if (m.empty()) {
    fm.reason = "no consistent feature matches";
    return fm;
  }
  fm.affine = cv::Matx23d(m.ptr<double>(0)[0], m.ptr<double>(0)[1], m.ptr<double>(0)[2],
                          m.ptr<double>(1)[0], m.ptr<double>(1)[1], m.ptr<double>(1)[2]);
  double ss = 0;
  for (std::size_t i = 0; i < inl.size(); ++i) {
    if (!inl[i]) continue;
    ++fm.inliers;
    const cv::Point2d p = pa[i], q = pb[i];
    const cv::Point2d r(fm.affine(0, 0) * p.x + fm.affine(0, 1) * p.y + fm.affine(0, 2) - q.x,
                        fm.affine(1, 0) * p.x + fm.affine(1, 1) * p.y + fm.affine(1, 2) - q.y);
    ss += r.dot(r);
  }
  fm.rmse = fm.inliers ? std::sqrt(ss / fm.inliers) : 0;
  bool finite = true;
  for (int k = 0; k < 6; ++k) finite = finite && std::isfinite(fm.affine.val[k]);
  fm.ok = finite && fm.inliers >= kMinFeatureInliers && fm.inliers * 5 >= fm.matches;
  if (!fm.ok) fm.reason = "too few consistent feature matches";
  return fm;
}

bool textured(const TiePoint& t) {
  return t.reason != "too few valid pixels" && t.reason != "no texture" &&
         t.reason != "image sizes differ";
}

/// Phase correlation is unreliable: no model, under a quarter of the textured windows kept, or
/// tie points that no smooth model explains (cross-validated residual above kUnreliableCvPx).
constexpr double kUnreliableCvPx = 1.0;
bool unreliable(const Registration& r) {
  const auto n =
      std::count_if(r.ties.begin(), r.ties.end(), [](const TiePoint& t) { return textured(t); });
  return r.model == "identity" || (n > 0 && 4 * r.kept < n) || r.cv_rmse > kUnreliableCvPx;
}

std::string reason_summary(const std::vector<TiePoint>& ties) {
  std::vector<std::pair<std::string, int>> counts;
  for (const auto& t : ties) {
    if (t.kept) continue;
    auto it = std::find_if(counts.begin(), counts.end(),
                           [&](const auto& p) { return p.first == t.reason; });
    if (it == counts.end()) {
      counts.emplace_back(t.reason, 1);
    } else {
      ++it->second;
    }
  }
  std::string s;
  for (const auto& [reason, n] : counts)
    s += (s.empty() ? "" : ", ") + std::to_string(n) + " " + reason;
  return s;
}

void add_warning(Registration& r, const std::string& w) {
  r.warning += (r.warning.empty() ? "" : "; ") + w;
}

}  // namespace

Registration estimate_registration(int width, int height, const AlignConfig& config,
                                   const WindowReader& read, const ForEach& for_each) {
  const std::vector<Window> windows = tie_point_windows(width, height, config);
  if (windows.empty()) {
    Registration r = fit_registration({}, width, height, config);
    return r;
  }
  // 1. Coarse shift: an integer prior for the tie points, so their windows overlap whatever the
  // shift.
  const Coarse coarse = coarse_shift(width, height, config, read, for_each);
  Registration prior;
  double search = config.max_shift_px;
  if (coarse.pc.ok && std::hypot(coarse.pc.shift.x, coarse.pc.shift.y) <= config.max_shift_px) {
    prior.model = "translation";
    prior.shift = {std::round(coarse.pc.shift.x), std::round(coarse.pc.shift.y)};
    prior.affine = cv::Matx23d(1, 0, prior.shift.x, 0, 1, prior.shift.y);
    // What the coarse level leaves open: its resolution, plus local departures from one shift.
    search = std::min(config.max_shift_px,
                      std::max(4.0 * coarse.factor + 8.0, config.window_size / 4.0));
  }
  // 2. Tie points and the model.
  Registration reg = fit_registration(measure_all(windows, prior, search, config, read, for_each),
                                      width, height, config);
  reg.method = reg.model == "identity" ? "" : "phase correlation";

  // 3. Feature-matching fallback.
  if (config.feature_fallback && unreliable(reg)) {
    const FeatureModel fm = feature_match(coarse);
    const cv::Point2d mid((width - 1) / 2.0, (height - 1) / 2.0);
    const cv::Point2d d_mid(
        fm.affine(0, 0) * mid.x + fm.affine(0, 1) * mid.y + fm.affine(0, 2) - mid.x,
        fm.affine(1, 0) * mid.x + fm.affine(1, 1) * mid.y + fm.affine(1, 2) - mid.y);
    if (fm.ok && std::hypot(d_mid.x, d_mid.y) <= config.max_shift_px) {
      Registration fprior;
      fprior.model = "affine";
      fprior.affine = fm.affine;
      const double fsearch = std::min(config.max_shift_px, std::max(8.0, config.window_size / 8.0));
      Registration again = fit_registration(
          measure_all(windows, fprior, fsearch, config, read, for_each), width, height, config);
      const bool better =
          !unreliable(again) ||
          (again.model != "identity" && again.kept > reg.kept && again.cv_rmse < reg.cv_rmse);
      if (better) {
        again.method = "phase correlation (feature-matching prior)";
        add_warning(again, "phase correlation alone was unreliable (" + std::to_string(reg.kept) +
                               " tie points kept); "
                               "measured again from an ORB feature-matching prior (" +
                               std::to_string(fm.inliers) + " of " + std::to_string(fm.matches) +
                               " matches)");
        reg = std::move(again);
      } else if (fm.inliers >= kTrustFeatureInliers) {
        Registration feat;
        feat.model = "affine";
        feat.method = "feature matching";
        feat.affine = fm.affine;
        feat.grid = cv::Size(width, height);
        feat.ties = std::move(reg.ties);
        feat.dropped = static_cast<int>(feat.ties.size());
        for (auto& t : feat.ties) {
          if (t.kept) t.reason = "superseded by feature matching";
          t.kept = false;
        }
        feat.rmse_after = feat.cv_rmse = feat.uncertainty = fm.rmse;
        feat.shift = d_mid;
        double m = 0;
        for (const cv::Point2d p :
             {cv::Point2d(0, 0), cv::Point2d(width - 1.0, 0), cv::Point2d(0, height - 1.0),
              cv::Point2d(width - 1.0, height - 1.0)}) {
          const cv::Point2d d = displacement(feat, p.x, p.y);
          m = std::max({m, std::abs(d.x), std::abs(d.y)});
        }
        feat.max_displacement = m;
        add_warning(feat, "phase correlation unreliable (" + reason_summary(feat.ties) +
                              "); model from " + std::to_string(fm.inliers) +
                              " ORB feature matches, residual RMSE " + std::to_string(fm.rmse) +
                              " px");
        reg = std::move(feat);
      }
    }
  }
  // Doubtful results are said so.
  if (reg.model != "identity" && reg.method != "feature matching" &&
      reg.cv_rmse > kUnreliableCvPx) {
    add_warning(reg, "the tie points disagree with every model (cross-validated residual RMSE " +
                         std::to_string(reg.cv_rmse) + " px): check the alignment");
  }
  const auto n = static_cast<int>(reg.ties.size());
  if (reg.model != "identity" && n > 0 && 3 * reg.kept < 2 * n &&
      reg.method != "feature matching") {
    add_warning(reg, "only " + std::to_string(reg.kept) + " of " + std::to_string(n) +
                         " tie points kept (" + reason_summary(reg.ties) +
                         "): the alignment rests on part of the scene");
  }
  return reg;
}

}  // namespace aftermath
