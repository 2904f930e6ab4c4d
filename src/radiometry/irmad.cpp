#include "aftermath/radiometry/irmad.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <string>

#include "aftermath/core/error.hpp"

namespace aftermath {
namespace {

using Matrix = std::vector<double>;  // row-major n x n

/// In-place lower Cholesky factor of a symmetric positive definite n x n matrix. False if not SPD.
bool cholesky(Matrix& m, int n) {
  for (int j = 0; j < n; ++j) {
    double d = m[j * n + j];
    for (int k = 0; k < j; ++k) d -= m[j * n + k] * m[j * n + k];
    if (!(d > 0)) return false;
    const double l = std::sqrt(d);
    m[j * n + j] = l;
    for (int i = j + 1; i < n; ++i) {
      double s = m[i * n + j];
      for (int k = 0; k < j; ++k) s -= m[i * n + k] * m[j * n + k];
      m[i * n + j] = s / l;
    }
    for (int k = j + 1; k < n; ++k) m[j * n + k] = 0.0;
  }
  return true;
}

/// Solves L x = b (L lower triangular) in place.
void solve_lower(const Matrix& l, int n, double* b) {
  for (int i = 0; i < n; ++i) {
    double s = b[i];
    for (int k = 0; k < i; ++k) s -= l[i * n + k] * b[k];
    b[i] = s / l[i * n + i];
  }
}

/// Solves L^T x = b in place.
void solve_upper_t(const Matrix& l, int n, double* b) {
  for (int i = n - 1; i >= 0; --i) {
    double s = b[i];
    for (int k = i + 1; k < n; ++k) s -= l[k * n + i] * b[k];
    b[i] = s / l[i * n + i];
  }
}

/// A covariance block made positive definite: a band with (near) zero variance gets a ridge
/// small against any real signal, so flat or duplicated bands never stop the fit.
Matrix factor_with_ridge(Matrix s, int p) {
  double trace = 0;
  for (int i = 0; i < p; ++i) trace += s[i * p + i];
  const double ridge = std::max(1e-12, 1e-10 * trace / p);
  for (int i = 0; i < p; ++i) s[i * p + i] += ridge;
  if (!cholesky(s, p))
    throw Error(ErrorKind::internal, "irmad: covariance is not positive definite");
  return s;
}

}  // namespace

double chi_square_sf(double z, int dof) {
  if (std::isnan(z)) return std::numeric_limits<double>::quiet_NaN();
  if (dof < 1) throw Error(ErrorKind::internal, "chi_square_sf: dof must be >= 1");
  if (z <= 0) return 1.0;
  if (std::isinf(z)) return 0.0;
  const double x = 0.5 * z;
  // Q(a + 1, x) = Q(a, x) + t_a with t_a = x^a e^-x / Gamma(a + 1), t_(a+1) = t_a x / (a + 1),
  // from Q(1, x) = e^-x (even dof) or Q(1/2, x) = erfc(sqrt x) (odd dof).
  double q, term, a;
  if (dof % 2 == 0) {
    q = std::exp(-x);
    term = x * q;
    a = 1.0;
  } else {
    q = std::erfc(std::sqrt(x));
    term = 2.0 * std::sqrt(x / std::numbers::pi) * std::exp(-x);
    a = 0.5;
  }
  const double last = 0.5 * dof;
  for (; a < last - 0.25; a += 1.0) {
    q += term;
    term *= x / (a + 1.0);
  }
  return std::clamp(q, 0.0, 1.0);
}

namespace {

/// MAD variate i at one pixel.
double mad_variate(const IrmadModel& m, std::size_t i, const double* pre, const double* post) {
  double u = 0;
  for (std::size_t k = 0; k < m.bands(); ++k) {
    u += m.a[i][k] * (pre[k] - m.pre_mean[k]) - m.b[i][k] * (post[k] - m.post_mean[k]);
  }
  return u;
}

/// Z with the given per-variate centres and scales.
double chi_square_with(const IrmadModel& m, const double* pre, const double* post,
                       const std::vector<double>& centre, const std::vector<double>& sigma) {
  double z = 0;
  for (std::size_t i = 0; i < m.bands(); ++i) {
    const double t = (mad_variate(m, i, pre, post) - centre[i]) / sigma[i];
    z += t * t;
  }
  return z;
}

}  // namespace

double IrmadModel::chi_square(const double* pre, const double* post) const {
  return chi_square_with(*this, pre, post, mad_centre, mad_sigma);
}

IrmadModel fit_irmad(const std::vector<cv::Mat>& pre, const std::vector<cv::Mat>& post,
                     const cv::Mat& valid, const IrmadOptions& options) {
  if (pre.size() != post.size() || pre.empty()) {
    throw Error(ErrorKind::internal, "fit_irmad: pre and post need the same, non-zero band count");
  }
  if (valid.type() != CV_8U)
    throw Error(ErrorKind::internal, "fit_irmad: validity mask is not CV_8U");
  for (std::size_t k = 0; k < pre.size(); ++k) {
    if (pre[k].type() != CV_32F || post[k].type() != CV_32F || pre[k].size() != valid.size() ||
        post[k].size() != valid.size()) {
      throw Error(ErrorKind::internal,
                  "fit_irmad: bands must be CV_32F of the validity mask's size");
    }
  }
  if (options.max_iterations < 1 || !(options.tolerance > 0)) {
    throw Error(ErrorKind::internal, "fit_irmad: max_iterations >= 1 and tolerance > 0 required");
  }
  const int p = static_cast<int>(pre.size());
  const int p2 = 2 * p;
  // Usable pixels, as rows of [pre bands | post bands].
  std::vector<double> data;
  for (int r = 0; r < valid.rows; ++r) {
    const auto* v = valid.ptr<std::uint8_t>(r);
    for (int c = 0; c < valid.cols; ++c) {
      if (v[c] == 0) continue;
      bool ok = true;
      for (int k = 0; k < p && ok; ++k) {
        ok = std::isfinite(pre[k].ptr<float>(r)[c]) && std::isfinite(post[k].ptr<float>(r)[c]);
      }
      if (!ok) continue;
      for (int k = 0; k < p; ++k) data.push_back(pre[k].ptr<float>(r)[c]);
      for (int k = 0; k < p; ++k) data.push_back(post[k].ptr<float>(r)[c]);
    }
  }
  const std::size_t n = data.size() / static_cast<std::size_t>(p2);
  if (n < static_cast<std::size_t>(p2 + 2)) {
    throw Error(ErrorKind::input, "irmad: too few valid pixels to fit (" + std::to_string(n) + ")");
  }
  IrmadModel m;
  m.pixels = static_cast<std::int64_t>(n);
  std::vector<double> zero_centre(static_cast<std::size_t>(p), 0.0),
      weighted_sigma(static_cast<std::size_t>(p), 1.0);
  std::vector<double> weight(n, 1.0), mean(static_cast<std::size_t>(p2)), prev_rho;
  Matrix cov(static_cast<std::size_t>(p2 * p2));
  for (int it = 1; it <= options.max_iterations; ++it) {
    // Weighted means and covariance, summed in pixel order (deterministic).
    double sw = 0;
    std::fill(mean.begin(), mean.end(), 0.0);
    for (std::size_t i = 0; i < n; ++i) {
      const double* z = &data[i * p2];
      sw += weight[i];
      for (int k = 0; k < p2; ++k) mean[k] += weight[i] * z[k];
    }
    if (!(sw > 0)) throw Error(ErrorKind::input, "irmad: every pixel got zero no-change weight");
    for (double& v : mean) v /= sw;
    std::fill(cov.begin(), cov.end(), 0.0);
    std::vector<double> d(static_cast<std::size_t>(p2));
    for (std::size_t i = 0; i < n; ++i) {
      const double* z = &data[i * p2];
      for (int k = 0; k < p2; ++k) d[k] = z[k] - mean[k];
      for (int r = 0; r < p2; ++r) {
        const double wr = weight[i] * d[r];
        for (int c = r; c < p2; ++c) cov[r * p2 + c] += wr * d[c];
      }
    }
    for (int r = 0; r < p2; ++r) {
      for (int c = r; c < p2; ++c) cov[c * p2 + r] = cov[r * p2 + c] /= sw;
    }
    Matrix sxx(p * p), syy(p * p), sxy(p * p);
    for (int r = 0; r < p; ++r) {
      for (int c = 0; c < p; ++c) {
        sxx[r * p + c] = cov[r * p2 + c];
        syy[r * p + c] = cov[(r + p) * p2 + (c + p)];
        sxy[r * p + c] = cov[r * p2 + (c + p)];
      }
    }
    const Matrix lx = factor_with_ridge(sxx, p), ly = factor_with_ridge(syy, p);
    // W = Syy^-1 Syx (column j solves Syy w = Syx e_j); M = Sxy W; C = Lx^-1 M Lx^-T (symmetric).
    Matrix w(p * p), col(p);
    for (int j = 0; j < p; ++j) {
      for (int r = 0; r < p; ++r) col[r] = sxy[j * p + r];  // Syx = Sxy^T
      solve_lower(ly, p, col.data());
      solve_upper_t(ly, p, col.data());
      for (int r = 0; r < p; ++r) w[r * p + j] = col[r];
    }
    Matrix mm(p * p, 0.0);
    for (int r = 0; r < p; ++r) {
      for (int c = 0; c < p; ++c) {
        for (int k = 0; k < p; ++k) mm[r * p + c] += sxy[r * p + k] * w[k * p + c];
      }
    }
    // C = Lx^-1 M Lx^-T: solve column-wise, then row-wise (M is symmetric, so is C).
    Matrix cm = mm;
    for (int j = 0; j < p; ++j) {
      for (int r = 0; r < p; ++r) col[r] = cm[r * p + j];
      solve_lower(lx, p, col.data());
      for (int r = 0; r < p; ++r) cm[r * p + j] = col[r];
    }
    for (int i = 0; i < p; ++i) solve_lower(lx, p, &cm[i * p]);
    cv::Mat cmat(p, p, CV_64F);
    for (int r = 0; r < p; ++r) {
      for (int c = 0; c < p; ++c) cmat.at<double>(r, c) = 0.5 * (cm[r * p + c] + cm[c * p + r]);
    }
    cv::Mat evals, evecs;
    cv::eigen(cmat, evals, evecs);  // descending eigenvalues, eigenvectors as rows
    m.rho.assign(p, 0.0);
    m.a.assign(p, std::vector<double>(p));
    m.b.assign(p, std::vector<double>(p));
    for (int i = 0; i < p; ++i) {
      const int src = p - 1 - i;  // ascending correlation
      const double lambda = std::clamp(evals.at<double>(src), 0.0, 1.0);
      m.rho[i] = std::sqrt(lambda);
      for (int k = 0; k < p; ++k) col[k] = evecs.at<double>(src, k);
      solve_upper_t(lx, p, col.data());  // a = Lx^-T u: unit variance
      m.a[i].assign(col.begin(), col.end());
      // b = Syy^-1 Syx a, scaled to unit variance (then corr(a.x, b.y) = rho >= 0).
      std::vector<double> bv(p, 0.0);
      for (int r = 0; r < p; ++r) {
        for (int k = 0; k < p; ++k) bv[r] += w[r * p + k] * m.a[i][k];
      }
      double var = 0;
      for (int r = 0; r < p; ++r) {
        for (int c = 0; c < p; ++c) var += bv[r] * syy[r * p + c] * bv[c];
      }
      if (var > 1e-300) {
        const double s = 1.0 / std::sqrt(var);
        for (double& v : bv) v *= s;
      } else {
        // No correlation at all: any unit-variance post variate will do; take Ly^-T e_i.
        std::fill(bv.begin(), bv.end(), 0.0);
        bv[i] = 1.0;
        solve_upper_t(ly, p, bv.data());
      }
      m.b[i] = bv;
      weighted_sigma[i] = std::sqrt(std::max(2.0 * (1.0 - m.rho[i]), 1e-12));
    }
    m.pre_mean.assign(mean.begin(), mean.begin() + p);
    m.post_mean.assign(mean.begin() + p, mean.end());
    m.iterations = it;
    double change =
        std::numeric_limits<double>::quiet_NaN();  // first iteration: nothing to compare
    if (!prev_rho.empty()) {
      change = 0;
      for (int i = 0; i < p; ++i) change = std::max(change, std::abs(m.rho[i] - prev_rho[i]));
    }
    m.rho_change.push_back(change);
    if (change < options.tolerance) {
      m.converged = true;
      break;
    }
    prev_rho = m.rho;
    if (it == options.max_iterations) break;
    // Reweight: the no-change probability of each pixel under the current transform.
    for (std::size_t i = 0; i < n; ++i) {
      const double* z = &data[i * p2];
      weight[i] = chi_square_sf(chi_square_with(m, z, z + p, zero_centre, weighted_sigma), p);
    }
  }
  // The weighted variance 2(1 - rho) favours the pixels that already look unchanged, so it
  // underestimates the spread of the unchanged MAD variates (a shrunken fixed point: pure noise
  // would score as change). The test uses, per variate, the unweighted robust centre and
  // no-change scale instead (25th percentile of |MAD - median| / 0.31864: holds while >= 25% of
  // the pixels are unchanged).
  m.mad_centre.assign(static_cast<std::size_t>(p), 0.0);
  m.mad_sigma.assign(static_cast<std::size_t>(p), 1.0);
  std::vector<double> v(n);
  for (int i = 0; i < p; ++i) {
    for (std::size_t j = 0; j < n; ++j)
      v[j] = mad_variate(m, static_cast<std::size_t>(i), &data[j * p2], &data[j * p2 + p]);
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(n / 2), v.end());
    const double med = v[n / 2];
    for (double& x : v) x = std::abs(x - med);
    const auto k = static_cast<std::ptrdiff_t>(static_cast<double>(n - 1) * 0.25);
    std::nth_element(v.begin(), v.begin() + k, v.end());
    m.mad_centre[static_cast<std::size_t>(i)] = med;
    m.mad_sigma[static_cast<std::size_t>(i)] =
        std::max(v[static_cast<std::size_t>(k)] / 0.31864, 1e-6);
  }
  return m;
}

}  // namespace aftermath
