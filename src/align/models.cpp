/// @file models.cpp
/// Robust models from tie points: affine (RANSAC + trimmed least squares), smooth shift field
/// (affine + thin-plate smoothing spline of the residuals, on a node lattice), the automatic
/// choice by cross-validated residuals, and the uncertainty lattice.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <numeric>
#include <opencv2/core.hpp>
#include <optional>
#include <string>
#include <vector>

#include "aftermath/align/registration.hpp"
#include "internal.hpp"

namespace aftermath {
namespace {

constexpr double kMinOutlierPx = 0.5;  // residuals below this are never outliers
constexpr double kRansacPx = 1.0;      // RANSAC inlier distance
constexpr int kRansacIterations = 500;
constexpr std::size_t kMaxFieldTies = 1500;  // thin-plate system size cap (O(n^3))
constexpr int kMaxLatticeNodes = 160;        // per axis

double median_of(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return (n % 2 == 1) ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/// Robust outlier limit for residual magnitudes of the current inliers.
double outlier_limit(const std::vector<double>& inlier_residuals) {
  return std::max(3.0 * 1.4826 * median_of(inlier_residuals), kMinOutlierPx);
}

struct Obs {
  cv::Point2d c;  // tie centre
  cv::Point2d s;  // measured displacement
};

/// Least-squares affine (post = A * (x, y, 1)) on `idx`, in coordinates centred on `mid` and scaled
/// by `scale` for conditioning. Also returns the leverage (hat diagonal) of each used tie.
struct AffineFit {
  cv::Matx23d a;
  std::vector<double> leverage;  // per idx entry
  bool ok = false;
};

AffineFit fit_affine_ls(const std::vector<Obs>& obs, const std::vector<std::size_t>& idx,
                        cv::Point2d mid, double scale) {
  AffineFit f;
  const int n = static_cast<int>(idx.size());
  if (n < 3) return f;
  cv::Matx33d xtx = cv::Matx33d::zeros();
  cv::Vec3d xtu(0, 0, 0), xtv(0, 0, 0);
  for (std::size_t i : idx) {
    const cv::Vec3d r((obs[i].c.x - mid.x) / scale, (obs[i].c.y - mid.y) / scale, 1.0);
    xtx += r * r.t();
    const cv::Point2d q = obs[i].c + obs[i].s;
    xtu += r * ((q.x - mid.x) / scale);
    xtv += r * ((q.y - mid.y) / scale);
  }
  // Collinear or coincident centres: the affine is not determined.
  cv::Matx31d ev;
  cv::eigen(xtx, ev);
  if (!(ev(2) > 1e-9 * std::max(ev(0), 1e-300))) return f;
  const cv::Matx33d inv = xtx.inv(cv::DECOMP_SVD);
  const cv::Vec3d pu = inv * xtu, pv = inv * xtv;
  // Back to grid coordinates: q = mid + scale * P * ((p - mid) / scale, 1).
  f.a = cv::Matx23d(pu[0], pu[1], mid.x + scale * pu[2] - pu[0] * mid.x - pu[1] * mid.y,  //
                    pv[0], pv[1], mid.y + scale * pv[2] - pv[0] * mid.x - pv[1] * mid.y);
  for (std::size_t i : idx) {
    const cv::Vec3d r((obs[i].c.x - mid.x) / scale, (obs[i].c.y - mid.y) / scale, 1.0);
    f.leverage.push_back(r.dot(inv * r));
  }
  f.ok = true;
  for (int k = 0; k < 6; ++k) f.ok = f.ok && std::isfinite(f.a.val[k]);
  return f;
}

cv::Point2d affine_displacement(const cv::Matx23d& a, cv::Point2d p) {
  return {a(0, 0) * p.x + a(0, 1) * p.y + a(0, 2) - p.x,
          a(1, 0) * p.x + a(1, 1) * p.y + a(1, 2) - p.y};
}

double dist(cv::Point2d a, cv::Point2d b) { return std::hypot(a.x - b.x, a.y - b.y); }

/// Result of a robust fit: per observation the model residual, the cross-validated residual
/// (leave-one-out for inliers, the plain residual for outliers) and the inlier flag.
struct RobustFit {
  bool ok = false;
  cv::Matx23d affine{1, 0, 0, 0, 1, 0};
  ShiftField field;  // thin-plate residual lattice (field model only)
  std::vector<double> residual, cv_residual;
  std::vector<char> inlier;
};

RobustFit robust_affine(const std::vector<Obs>& obs, cv::Point2d mid, double scale) {
  RobustFit out;
  const std::size_t n = obs.size();
  if (n < 3) return out;
  // RANSAC over exact 3-point affines; all triples when there are few, else a fixed random set.
  std::vector<std::array<std::size_t, 3>> triples;
  const double n_triples = static_cast<double>(n) * (n - 1) * (n - 2) / 6.0;
  if (n_triples <= kRansacIterations) {
    for (std::size_t a = 0; a < n; ++a)
      for (std::size_t b = a + 1; b < n; ++b)
        for (std::size_t c = b + 1; c < n; ++c) triples.push_back({a, b, c});
  } else {
    cv::RNG rng(0x5eedu);  // fixed: the fit does not depend on anything but the ties
    for (int it = 0; it < kRansacIterations; ++it) {
      const auto a = static_cast<std::size_t>(rng.uniform(0, static_cast<int>(n)));
      const auto b = static_cast<std::size_t>(rng.uniform(0, static_cast<int>(n)));
      const auto c = static_cast<std::size_t>(rng.uniform(0, static_cast<int>(n)));
      if (a != b && b != c && a != c) triples.push_back({a, b, c});
    }
  }
  std::vector<std::size_t> best;
  double best_cost = 0;
  for (const auto& t : triples) {
    const AffineFit f = fit_affine_ls(obs, {t[0], t[1], t[2]}, mid, scale);
    if (!f.ok) continue;
    std::vector<std::size_t> inl;
    double cost = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const double r = dist(obs[i].s, affine_displacement(f.a, obs[i].c));
      if (r <= kRansacPx) {
        inl.push_back(i);
        cost += r;
      }
    }
    if (inl.size() > best.size() || (inl.size() == best.size() && cost < best_cost)) {
      best = std::move(inl);
      best_cost = cost;
    }
  }
  if (best.size() < 3) return out;
  // Least squares on the inliers, then 3-sigma trimming until stable.
  std::vector<std::size_t> inl = best;
  AffineFit f;
  for (int it = 0; it < 10; ++it) {
    f = fit_affine_ls(obs, inl, mid, scale);
    if (!f.ok) return out;
    std::vector<double> r_in;
    for (std::size_t i : inl) r_in.push_back(dist(obs[i].s, affine_displacement(f.a, obs[i].c)));
    const double limit = outlier_limit(r_in);
    std::vector<std::size_t> next;
    for (std::size_t i = 0; i < n; ++i) {
      if (dist(obs[i].s, affine_displacement(f.a, obs[i].c)) <= limit) next.push_back(i);
    }
    if (next.size() < 3) break;
    if (next == inl) break;
    inl = std::move(next);
  }
  f = fit_affine_ls(obs, inl, mid, scale);
  if (!f.ok) return out;
  out.ok = true;
  out.affine = f.a;
  out.residual.assign(n, 0);
  out.cv_residual.assign(n, 0);
  out.inlier.assign(n, 0);
  for (std::size_t i = 0; i < n; ++i)
    out.residual[i] = dist(obs[i].s, affine_displacement(f.a, obs[i].c));
  for (std::size_t k = 0; k < inl.size(); ++k) {
    const std::size_t i = inl[k];
    out.inlier[i] = 1;
    const double h = std::min(f.leverage[k], 0.999);
    out.cv_residual[i] = inl.size() > 3 ? out.residual[i] / (1.0 - h) : out.residual[i];
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (!out.inlier[i]) out.cv_residual[i] = out.residual[i];
  }
  return out;
}

/// Thin-plate smoothing spline of values v at points u (normalised coordinates).
struct Tps {
  std::vector<cv::Point2d> u;
  cv::Mat wx, wy;  // (n + 3) x 1 each: kernel weights then the affine part (1, x, y)
  bool ok = false;
};

double tps_kernel(double r2) { return r2 > 0 ? 0.5 * r2 * std::log(r2) : 0.0; }  // r^2 log r

/// Fits the spline with smoothing `lambda`; fills the leave-one-out residual magnitudes `loo`.
Tps fit_tps(const std::vector<cv::Point2d>& u, const std::vector<cv::Point2d>& v, double lambda,
            std::vector<double>* loo) {
  Tps t;
  const int n = static_cast<int>(u.size());
  cv::Mat m = cv::Mat::zeros(n + 3, n + 3, CV_64F);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) {
      const double dx = u[i].x - u[j].x, dy = u[i].y - u[j].y;
      m.at<double>(i, j) = tps_kernel(dx * dx + dy * dy) + (i == j ? lambda : 0.0);
    }
    m.at<double>(i, n) = m.at<double>(n, i) = 1;
    m.at<double>(i, n + 1) = m.at<double>(n + 1, i) = u[i].x;
    m.at<double>(i, n + 2) = m.at<double>(n + 2, i) = u[i].y;
  }
  cv::Mat inv;
  if (cv::invert(m, inv, cv::DECOMP_LU) == 0) return t;
  cv::Mat bx = cv::Mat::zeros(n + 3, 1, CV_64F), by = cv::Mat::zeros(n + 3, 1, CV_64F);
  for (int i = 0; i < n; ++i) {
    bx.at<double>(i) = v[static_cast<std::size_t>(i)].x;
    by.at<double>(i) = v[static_cast<std::size_t>(i)].y;
  }
  t.wx = inv * bx;
  t.wy = inv * by;
  t.u = u;
  t.ok = cv::checkRange(t.wx) && cv::checkRange(t.wy);
  if (loo && t.ok) {
    // Fitted values f = S v with S = I - lambda * inv[:n, :n]: residual v - f = lambda * (inv v),
    // i.e. lambda * w; leave-one-out residual = residual / (1 - S_ii) = w_i / inv_ii.
    loo->assign(static_cast<std::size_t>(n), 0);
    for (int i = 0; i < n; ++i) {
      const double g = inv.at<double>(i, i);
      const double ex = g != 0 ? t.wx.at<double>(i) / g : 0,
                   ey = g != 0 ? t.wy.at<double>(i) / g : 0;
      (*loo)[static_cast<std::size_t>(i)] = std::hypot(ex, ey);
    }
  }
  return t;
}

cv::Point2d eval_tps(const Tps& t, cv::Point2d p) {
  const int n = static_cast<int>(t.u.size());
  double x = t.wx.at<double>(n) + t.wx.at<double>(n + 1) * p.x + t.wx.at<double>(n + 2) * p.y;
  double y = t.wy.at<double>(n) + t.wy.at<double>(n + 1) * p.x + t.wy.at<double>(n + 2) * p.y;
  for (int i = 0; i < n; ++i) {
    const double dx = p.x - t.u[static_cast<std::size_t>(i)].x,
                 dy = p.y - t.u[static_cast<std::size_t>(i)].y;
    const double k = tps_kernel(dx * dx + dy * dy);
    x += t.wx.at<double>(i) * k;
    y += t.wy.at<double>(i) * k;
  }
  return {x, y};
}

/// Typical distance between neighbouring ties (median nearest-neighbour distance), px.
double tie_spacing(const std::vector<Obs>& obs, int width, int height) {
  std::vector<double> nn;
  for (std::size_t i = 0; i < obs.size(); ++i) {
    double best = 1e300;
    for (std::size_t j = 0; j < obs.size(); ++j) {
      if (i != j) best = std::min(best, dist(obs[i].c, obs[j].c));
    }
    if (best < 1e300 && best > 0) nn.push_back(best);
  }
  const double s = median_of(nn);
  return s > 0 ? s : std::max(1.0, 0.5 * std::max(width, height));
}

/// Lattice geometry covering the grid with nodes every `spacing` px (at most kMaxLatticeNodes).
ShiftField make_lattice(int width, int height, double spacing) {
  ShiftField f;
  const double extent = std::max(width, height) - 1.0;
  spacing = std::max({spacing, 4.0, extent / (kMaxLatticeNodes - 1)});
  f.spacing = spacing;
  f.origin = {0, 0};
  const int cols = static_cast<int>(std::ceil((width - 1.0) / spacing)) + 1;
  const int rows = static_cast<int>(std::ceil((height - 1.0) / spacing)) + 1;
  f.sigma = cv::Mat::zeros(std::max(rows, 1), std::max(cols, 1), CV_64F);
  return f;
}

/// Local RMS of the cross-validated residuals of the kept ties on the lattice (Gaussian weights
/// of width `radius`), floored at half the global value: the misregistration uncertainty.
void fill_sigma(ShiftField& f, const std::vector<Obs>& obs, const std::vector<double>& cv_res,
                const std::vector<char>& kept, double radius, double global) {
  for (int j = 0; j < f.sigma.rows; ++j) {
    for (int i = 0; i < f.sigma.cols; ++i) {
      const cv::Point2d p(f.origin.x + i * f.spacing, f.origin.y + j * f.spacing);
      double sw = 0, se = 0;
      for (std::size_t k = 0; k < obs.size(); ++k) {
        if (!kept[k]) continue;
        const double d = dist(p, obs[k].c) / radius;
        const double w = std::exp(-0.5 * d * d) + 1e-12;
        sw += w;
        se += w * cv_res[k] * cv_res[k];
      }
      const double local = sw > 0 ? std::sqrt(se / sw) : global;
      f.sigma.at<double>(j, i) = std::max(local, 0.5 * global);
    }
  }
}

RobustFit robust_field(const std::vector<Obs>& obs, int width, int height, cv::Point2d mid,
                       double scale, double spacing) {
  RobustFit out;
  const RobustFit base = robust_affine(obs, mid, scale);
  if (!base.ok) return out;
  const std::size_t n = obs.size();
  // Residuals of the affine, on at most kMaxFieldTies ties (evenly subsampled).
  std::vector<std::size_t> use(n);
  std::iota(use.begin(), use.end(), 0);
  if (n > kMaxFieldTies) {
    std::vector<std::size_t> sub;
    for (std::size_t k = 0; k < kMaxFieldTies; ++k) sub.push_back(k * n / kMaxFieldTies);
    use = sub;
  }
  auto norm = [&](cv::Point2d p) {
    return cv::Point2d((p.x - mid.x) / spacing, (p.y - mid.y) / spacing);
  };
  std::vector<char> inl(n, 0);
  for (std::size_t i : use) inl[i] = 1;
  Tps best_t;
  std::vector<double> best_loo;
  std::vector<std::size_t> idx;
  for (int it = 0; it < 4; ++it) {
    idx.clear();
    for (std::size_t i : use) {
      if (inl[i]) idx.push_back(i);
    }
    if (idx.size() < 8) return out;
    std::vector<cv::Point2d> u, v;
    for (std::size_t i : idx) {
      u.push_back(norm(obs[i].c));
      v.push_back(obs[i].s - affine_displacement(base.affine, obs[i].c));
    }
    // Smoothing chosen by leave-one-out cross-validation.
    double best_sse = -1;
    for (const double lambda : {1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0, 1e3}) {
      std::vector<double> loo;
      Tps t = fit_tps(u, v, lambda, &loo);
      if (!t.ok) continue;
      double sse = 0;
      for (double e : loo) sse += e * e;
      if (best_sse < 0 || sse < best_sse) {
        best_sse = sse;
        best_t = std::move(t);
        best_loo = loo;
      }
    }
    if (best_sse < 0) return out;
    const double limit = outlier_limit(best_loo);
    std::vector<char> next(n, 0);
    for (std::size_t k = 0; k < idx.size(); ++k) next[idx[k]] = best_loo[k] <= limit;
    for (std::size_t i : use) {
      if (!inl[i]) {  // a dropped tie comes back if the current field explains it
        const cv::Point2d f =
            eval_tps(best_t, norm(obs[i].c)) + affine_displacement(base.affine, obs[i].c);
        next[i] = dist(obs[i].s, f) <= limit;
      }
    }
    if (next == inl) break;
    inl = next;
  }
  // The last fit belongs to `idx`; re-derive the flags from it.
  std::fill(inl.begin(), inl.end(), 0);
  for (std::size_t i : idx) inl[i] = 1;
  out.ok = true;
  out.affine = base.affine;
  out.field = make_lattice(width, height, 0.5 * spacing);
  out.field.dx = cv::Mat::zeros(out.field.sigma.size(), CV_64F);
  out.field.dy = cv::Mat::zeros(out.field.sigma.size(), CV_64F);
  for (int j = 0; j < out.field.dx.rows; ++j) {
    for (int i = 0; i < out.field.dx.cols; ++i) {
      const cv::Point2d p(out.field.origin.x + i * out.field.spacing,
                          out.field.origin.y + j * out.field.spacing);
      const cv::Point2d d = eval_tps(best_t, norm(p));
      out.field.dx.at<double>(j, i) = d.x;
      out.field.dy.at<double>(j, i) = d.y;
    }
  }
  if (!cv::checkRange(out.field.dx) || !cv::checkRange(out.field.dy)) return RobustFit{};
  out.residual.assign(n, 0);
  out.cv_residual.assign(n, 0);
  out.inlier = inl;
  for (std::size_t i = 0; i < n; ++i) {
    const cv::Point2d d =
        affine_displacement(out.affine, obs[i].c) +
        cv::Point2d(align_detail::lattice_value(out.field, out.field.dx, obs[i].c.x, obs[i].c.y),
                    align_detail::lattice_value(out.field, out.field.dy, obs[i].c.x, obs[i].c.y));
    out.residual[i] = dist(obs[i].s, d);
    out.cv_residual[i] = out.residual[i];
  }
  for (std::size_t k = 0; k < idx.size(); ++k) out.cv_residual[idx[k]] = best_loo[k];
  return out;
}

/// Translation as a RobustFit, from fit_translation's result.
RobustFit as_fit(const Registration& t, const std::vector<std::size_t>& usable) {
  RobustFit out;
  if (t.model != "translation") return out;
  out.ok = true;
  out.affine = t.affine;
  for (std::size_t i : usable) {
    out.residual.push_back(t.ties[i].residual);
    out.cv_residual.push_back(t.ties[i].cv_residual);
    out.inlier.push_back(t.ties[i].kept ? 1 : 0);
  }
  return out;
}

/// Root mean square of the smallest 80 % of the cross-validated residuals: the comparison score
/// (robust to the outliers a model rightly drops, sensitive to its precision).
double trimmed_cv_rmse(std::vector<double> e) {
  if (e.empty()) return -1;
  std::sort(e.begin(), e.end());
  const std::size_t k = std::max<std::size_t>(1, (e.size() * 4 + 4) / 5);
  double s = 0;
  for (std::size_t i = 0; i < k; ++i) s += e[i] * e[i];
  return std::sqrt(s / static_cast<double>(k));
}

/// Chebyshev bound of the displacement over the grid.
double max_displacement_of(const Registration& r, int width, int height) {
  double m = 0;
  for (const cv::Point2d p :
       {cv::Point2d(0, 0), cv::Point2d(width - 1.0, 0), cv::Point2d(0, height - 1.0),
        cv::Point2d(width - 1.0, height - 1.0)}) {
    const cv::Point2d d = affine_displacement(r.affine, p);
    m = std::max({m, std::abs(d.x), std::abs(d.y)});
  }
  if (r.model == "field" && !r.field.empty()) {
    double fx = 0, fy = 0;
    cv::minMaxLoc(cv::abs(r.field.dx), nullptr, &fx);
    cv::minMaxLoc(cv::abs(r.field.dy), nullptr, &fy);
    m += 1.27 * std::max(fx, fy);  // Catmull-Rom overshoots the nodes by at most 1.266x
  }
  return m;
}

}  // namespace

Registration fit_registration(std::vector<TiePoint> ties, int width, int height,
                              const AlignConfig& config) {
  std::vector<std::size_t> usable;
  for (std::size_t i = 0; i < ties.size(); ++i) {
    TiePoint& t = ties[i];
    t.residual = t.cv_residual = 0;
    if (t.kept && std::isfinite(t.shift.x) && std::isfinite(t.shift.y)) {
      usable.push_back(i);
    } else {
      t.kept = false;
      if (t.reason.empty()) t.reason = "failed";
    }
  }
  Registration translation = fit_translation(ties, config);
  translation.grid = cv::Size(width, height);
  if (translation.model != "translation" || config.model == "translation") {
    if (translation.model == "translation") {
      std::vector<Obs> obs;
      std::vector<double> e;
      std::vector<char> k;
      for (std::size_t i : usable) {
        obs.push_back({translation.ties[i].centre(), translation.ties[i].shift});
        e.push_back(translation.ties[i].cv_residual);
        k.push_back(translation.ties[i].kept ? 1 : 0);
      }
      const double radius = tie_spacing(obs, width, height);
      ShiftField lattice = make_lattice(width, height, 0.5 * radius);
      fill_sigma(lattice, obs, e, k, radius, translation.uncertainty);
      translation.field = lattice;
      translation.cv_translation = trimmed_cv_rmse(e);
    }
    return translation;
  }

  std::vector<Obs> obs;
  for (std::size_t i : usable) obs.push_back({ties[i].centre(), ties[i].shift});
  const cv::Point2d mid((width - 1) / 2.0, (height - 1) / 2.0);
  const double scale = std::max(1.0, 0.5 * std::max(width, height));
  const double spacing = tie_spacing(obs, width, height);

  std::vector<std::string> notes;
  const RobustFit fit_t = as_fit(translation, usable);
  std::optional<RobustFit> fit_a, fit_f;
  if (config.model == "affine" || config.model == "field" || config.model == "auto") {
    RobustFit a = robust_affine(obs, mid, scale);
    if (a.ok) fit_a = a;
  }
  if (config.model == "field" || config.model == "auto") {
    RobustFit f = robust_field(obs, width, height, mid, scale, spacing);
    if (f.ok) fit_f = f;
  }

  Registration reg;
  const double cv_t = trimmed_cv_rmse(fit_t.cv_residual);
  const double cv_a = fit_a ? trimmed_cv_rmse(fit_a->cv_residual) : -1;
  const double cv_f = fit_f ? trimmed_cv_rmse(fit_f->cv_residual) : -1;
  std::string chosen = "translation";
  if (config.model == "affine") {
    if (fit_a) {
      chosen = "affine";
    } else {
      notes.push_back(
          "align.model = affine needs 3 tie points not on one line: fell back to translation");
    }
  } else if (config.model == "field") {
    if (fit_f) {
      chosen = "field";
    } else if (fit_a) {
      chosen = "affine";
      notes.push_back("align.model = field needs 8 consistent tie points: fell back to affine");
    } else {
      notes.push_back(
          "align.model = field needs 8 consistent tie points: fell back to translation");
    }
  } else {
    // auto: the simplest model within 10 % (+ 0.01 px) of the best cross-validated residual.
    double best = cv_t;
    if (cv_a >= 0) best = std::min(best, cv_a);
    if (cv_f >= 0) best = std::min(best, cv_f);
    const double good_enough = 1.1 * best + 0.01;
    if (cv_t <= good_enough) {
      chosen = "translation";
    } else if (cv_a >= 0 && cv_a <= good_enough) {
      chosen = "affine";
    } else if (cv_f >= 0) {
      chosen = "field";
    }
  }
  if (chosen == "translation") {
    reg = translation;
  } else {
    const RobustFit& f = chosen == "affine" ? *fit_a : *fit_f;
    reg.model = chosen;
    reg.affine = f.affine;
    if (chosen == "field") reg.field = f.field;
    reg.ties = std::move(ties);
    int kept = 0;
    double before = 0, after = 0, cvs = 0;
    for (std::size_t k = 0; k < usable.size(); ++k) {
      TiePoint& t = reg.ties[usable[k]];
      t.residual = f.residual[k];
      t.cv_residual = f.cv_residual[k];
      t.kept = f.inlier[k] != 0;
      if (!t.kept) {
        t.reason = "outlier";
        continue;
      }
      ++kept;
      before += t.shift.dot(t.shift);
      after += t.residual * t.residual;
      cvs += t.cv_residual * t.cv_residual;
    }
    reg.kept = kept;
    reg.dropped = static_cast<int>(reg.ties.size()) - kept;
    reg.rmse_before = kept ? std::sqrt(before / kept) : 0;
    reg.rmse_after = kept ? std::sqrt(after / kept) : 0;
    reg.cv_rmse = kept ? std::sqrt(cvs / kept) : 0;
    reg.uncertainty = reg.cv_rmse;
  }
  reg.grid = cv::Size(width, height);
  reg.cv_translation = cv_t;
  reg.cv_affine = cv_a;
  reg.cv_field = cv_f;
  reg.shift = displacement(reg, (width - 1) / 2.0, (height - 1) / 2.0);
  reg.max_displacement = max_displacement_of(reg, width, height);
  // The uncertainty lattice (shares the field's lattice when there is one).
  {
    std::vector<double> e;
    std::vector<char> k;
    for (std::size_t i : usable) {
      e.push_back(reg.ties[i].cv_residual);
      k.push_back(reg.ties[i].kept ? 1 : 0);
    }
    if (reg.model != "field") reg.field = make_lattice(width, height, 0.5 * spacing);
    fill_sigma(reg.field, obs, e, k, spacing, reg.uncertainty);
  }
  bool finite = std::isfinite(reg.shift.x) && std::isfinite(reg.shift.y) &&
                std::isfinite(reg.max_displacement);
  for (int i = 0; i < 6; ++i) finite = finite && std::isfinite(reg.affine.val[i]);
  if (!finite) {
    Registration id;
    id.grid = reg.grid;
    id.ties = std::move(reg.ties);
    for (auto& t : id.ties) {
      if (t.kept) t.reason = "model not finite";
      t.kept = false;
    }
    id.dropped = static_cast<int>(id.ties.size());
    id.warning = "the fitted registration model is not finite: alignment skipped";
    return id;
  }
  for (const auto& n : notes) reg.warning += (reg.warning.empty() ? "" : "; ") + n;
  return reg;
}

}  // namespace aftermath
