#pragma once
/// @file irmad.hpp
/// Iteratively reweighted multivariate alteration detection (IR-MAD; Nielsen 2007, IEEE TIP 16(2)).
/// Canonical correlation analysis of the pre and post bands, reweighted each iteration by the
/// chi-square no-change probability of every pixel, so that changed pixels stop steering the
/// transform. Used by the `irmad` detector and by the IR-MAD radiometric normalisation (its
/// no-change pixels). Plain functions on cv::Mat.
#include <cstddef>
#include <cstdint>
#include <opencv2/core.hpp>
#include <vector>

namespace aftermath {

struct IrmadOptions {
  int max_iterations = 100;  ///< >= 1
  /// Converged when no canonical correlation moves by more than this between two iterations
  /// (0.001 as Canty's iMad; the correlations then creep by less than that per iteration).
  double tolerance = 1e-3;
};

/// The fitted transform. With p bands: MAD_i = a_i . (pre - pre_mean) - b_i . (post - post_mean),
/// i = 0..p-1 in ascending canonical correlation (MAD_0 carries the most change); under no change
/// each (MAD_i - mad_centre_i) / mad_sigma_i is ~N(0, 1) and independent, so
/// Z = sum_i ((MAD_i - mad_centre_i) / mad_sigma_i)^2 is ~chi-square with p degrees of freedom.
/// The iterations weight pixels by P(chi2 > Z) computed with Nielsen's sigma_i = sqrt(2(1 -
/// rho_i)); the final centre and sigma are the unweighted robust median and no-change scale (25th
/// percentile of |MAD_i - median| / 0.31864) of the fit pixels, because the weighted variance
/// underestimates the unchanged spread.
struct IrmadModel {
  std::vector<double> pre_mean, post_mean;  ///< weighted band means (input units)
  std::vector<std::vector<double>> a, b;    ///< [variate][band] canonical vectors, unit variance
  std::vector<double> rho;                  ///< canonical correlations, ascending, in [0, 1]
  std::vector<double> mad_centre;           ///< no-change median of each MAD variate
  std::vector<double> mad_sigma;            ///< no-change scale of each MAD variate, >= 1e-6
  int iterations = 0;                       ///< iterations run (each one a full CCA)
  bool converged = false;                   ///< tolerance reached within max_iterations
  std::vector<double> rho_change;  ///< per iteration: largest |change| of a correlation (first NaN)
  std::int64_t pixels = 0;         ///< pixels used (valid and finite in every band)

  std::size_t bands() const { return pre_mean.size(); }
  /// Z at one pixel from its band values (`pre[k]`, `post[k]`, k < bands()). Non-finite in -> NaN.
  double chi_square(const double* pre, const double* post) const;
};

/// Fits IR-MAD on the pixels valid (`valid` CV_8U, 255 = valid) and finite in every band of
/// `pre` and `post` (CV_32F, equal count and size; several windows may be concatenated). Throws
/// Error(internal) on mismatched inputs and Error(input) when fewer than 2 x bands + 2 pixels
/// are usable. A band with no variance gets a tiny ridge, so the fit never fails on flat data.
IrmadModel fit_irmad(const std::vector<cv::Mat>& pre, const std::vector<cv::Mat>& post,
                     const cv::Mat& valid, const IrmadOptions& options = {});

/// P(chi-square with `dof` degrees of freedom > z): the no-change probability of a pixel whose
/// IR-MAD statistic is z. Exact (closed form of the regularised upper incomplete gamma for
/// integer dof >= 1); 1 for z <= 0; NaN for NaN.
double chi_square_sf(double z, int dof);

}  // namespace aftermath
