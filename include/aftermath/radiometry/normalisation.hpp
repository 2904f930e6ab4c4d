#pragma once
/// @file normalisation.hpp
/// Relative radiometric normalisation: the post scene's bands mapped onto the pre scene's scale.
#include <cstddef>
#include <cstdint>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "aftermath/config/config.hpp"
#include "aftermath/core/util.hpp"
#include "aftermath/radiometry/irmad.hpp"

namespace aftermath {

/// Per band post' = gain * post + offset. Identity when gain = 1, offset = 0.
struct LinearNormalisation {
  std::vector<double> gain;
  std::vector<double> offset;
};

/// Fits a per-band linear map from post to pre matching robust location and scale (median and
/// MAD) over pixels valid in both. `pre`/`post`: CV_32F bands of equal count and size (samples may
/// be several windows concatenated); `valid`: CV_8U, 255 = valid in both. A band with no spread
/// gets gain 1 and an offset matching the medians; no valid pixel gives the identity.
/// Per band gain = MAD(pre) / MAD(post), offset = median(pre) - gain * median(post) (exact
/// medians). Changed pixels would bias that match, so it is refined (up to 3 rounds) on the
/// pixels whose normalised residual is within 3 robust sigmas of its median in every band.
/// The bands' statistics (one body per band) and the per-pixel passes over all bands (one body
/// per piece of 16,384 pixels) run through `for_each`; the result does not depend on it.
LinearNormalisation fit_robust_linear(const std::vector<cv::Mat>& pre,
                                      const std::vector<cv::Mat>& post, const cv::Mat& valid,
                                      const ForEach& for_each = for_each_serial);

/// Applies the map in place to post bands.
void apply(const LinearNormalisation& n, std::vector<cv::Mat>& post_bands);
/// The same on `cols` values of band `band` (Error(internal) for a band beyond the fit).
void apply_to_row(const LinearNormalisation& n, std::size_t band, float* row, int cols);

/// IR-MAD normalisation (Canty & Nielsen 2008): fit IR-MAD (default IrmadOptions: 100 iterations,
/// tolerance 0.001) on the valid pixels, keep the pixels whose chi-square no-change probability is
/// above `min_no_change_probability` (the invariant pixels), and per band fit pre = gain * post +
/// offset by orthogonal regression (total least squares: both scenes carry noise, so ordinary least
/// squares would bias the gain towards 0). Fewer than 2 x bands + 2 invariant pixels: the pixels
/// with the top 5% no-change probability are used instead. `model` receives the IR-MAD fit
/// (iterations, correlations) and `invariant` the number of pixels the regression used.
LinearNormalisation fit_irmad_linear(const std::vector<cv::Mat>& pre,
                                     const std::vector<cv::Mat>& post, const cv::Mat& valid,
                                     double min_no_change_probability, IrmadModel* model,
                                     std::int64_t* invariant);

/// Per-band histogram matching: a monotone piecewise-linear map from post values to pre values
/// through matching quantiles (0.1% steps) of the valid pixels; outside the post range, slope 1.
struct HistogramMatch {
  /// Per band: increasing post quantiles and the pre quantiles they map to (equal post values
  /// are merged, mapping to the mean of their pre quantiles).
  std::vector<std::vector<double>> post_q, pre_q;
};
HistogramMatch fit_histogram_match(const std::vector<cv::Mat>& pre,
                                   const std::vector<cv::Mat>& post, const cv::Mat& valid);
void apply(const HistogramMatch& h, std::vector<cv::Mat>& post_bands);

/// The normalisation chosen by radiometry.method, fitted once per job on sample windows and
/// applied to every tile's post bands.
struct Normalisation {
  std::string method = "none";        ///< none | robust-linear | irmad | histogram
  LinearNormalisation linear;         ///< robust-linear and irmad
  HistogramMatch histogram;           ///< histogram
  IrmadModel irmad;                   ///< irmad: the IR-MAD fit that chose the invariant pixels
  std::int64_t invariant_pixels = 0;  ///< irmad: pixels used by the regression
};
/// Fits the configured normalisation (inputs as fit_robust_linear). Throws Error(usage) for an
/// unknown method.
Normalisation fit_normalisation(const RadiometryConfig& config, const std::vector<cv::Mat>& pre,
                                const std::vector<cv::Mat>& post, const cv::Mat& valid,
                                const ForEach& for_each = for_each_serial);
/// Applies it in place to post bands (CV_32F); NaN stays NaN.
void apply(const Normalisation& n, std::vector<cv::Mat>& post_bands);

/// Applies it in place to `cols` values of post band `band` (what apply() does to each row of
/// that band, the same values): a caller can normalise a row while it is still in the cache.
/// Throws Error(internal) for a band the fit does not have.
void apply_to_row(const Normalisation& n, std::size_t band, float* row, int cols);

/// Whether apply() can change a value (false for method none and an identity fit).
bool changes_values(const Normalisation& n);

}  // namespace aftermath
