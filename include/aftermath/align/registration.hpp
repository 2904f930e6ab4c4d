#pragma once
/// @file registration.hpp
/// Co-registration of the post scene onto the pre scene on the analysis grid.
/// Convention: a shift s means the content at pre pixel p is found at post pixel p + s, so the
/// aligned post is post(p + s). Shifts are in analysis-grid pixels (x = columns, y = rows).
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "aftermath/config/config.hpp"
#include "aftermath/core/grid.hpp"

namespace aftermath {

struct PhaseCorrelation {
  cv::Point2d shift;   ///< sub-pixel, see the convention above
  double peak = 0;     ///< normalised correlation peak height in [0, 1]
  bool ok = false;
  std::string reason;  ///< why not ok ("no texture", "too few valid pixels", "peak too weak", "shift beyond max")
};

/// Sub-pixel phase correlation of two single-channel CV_32F images of equal size, coarse to fine
/// on an image pyramid so that shifts up to `max_shift_px` are found, refined iteratively to
/// better than 0.05 px on textured imagery. `reference_valid`/`moving_valid` (CV_8U, 0 = invalid,
/// may be empty) are filled with the mean before correlation. Never divides by zero: constant
/// input gives ok = false with reason "no texture".
PhaseCorrelation phase_correlate(const cv::Mat& reference, const cv::Mat& moving,
                                 const cv::Mat& reference_valid, const cv::Mat& moving_valid,
                                 double max_shift_px);

struct TiePoint {
  Window window;        ///< where it was measured (analysis grid)
  cv::Point2d shift;
  double peak = 0;
  double residual = 0;  ///< |shift - model shift| after the fit, px
  bool kept = false;
  std::string reason;   ///< why dropped ("" if kept)
};

struct Registration {
  std::string model = "identity";  ///< identity | translation
  cv::Point2d shift;               ///< the model's shift (translation)
  std::vector<TiePoint> ties;
  int kept = 0;
  int dropped = 0;
  double rmse_before = 0;  ///< RMS of tie shifts (kept) before alignment, px
  double rmse_after = 0;   ///< RMS of kept tie residuals after the model, px
  std::string warning;     ///< non-empty when alignment fell back to identity, and why
};

/// Windows (window_size square) on a regular layout across a width x height grid, at most
/// config.max_windows, in row-major order. Fewer if the grid is small; one centred window
/// (clamped to the grid, possibly smaller) if the grid is smaller than window_size.
std::vector<Window> tie_point_windows(int width, int height, const AlignConfig& config);

/// Measures one tie point on single-channel images covering `window`.
TiePoint measure_tie_point(const Window& window, const cv::Mat& reference, const cv::Mat& reference_valid,
                           const cv::Mat& moving, const cv::Mat& moving_valid, const AlignConfig& config);

/// Robust translation from tie points: drops weak/failed ones, then outliers (median + MAD),
/// and averages the rest. With no usable tie point returns model "identity" with a warning.
Registration fit_translation(std::vector<TiePoint> ties, const AlignConfig& config);

/// Mean of the bands: the single channel used for correlation.
cv::Mat to_intensity(const std::vector<cv::Mat>& bands);

/// Resamples bands covering `source` (a window of the analysis grid) onto `target` with the
/// registration: out(p) = in(p + shift), cubic convolution (Keys, a = -0.5; 4 x 4 taps, fewer for
/// whole-pixel shifts, which copy exactly). Output pixels whose taps fall outside `source` or on an
/// invalid pixel are invalid (0 in `out_valid`, 0 in the bands).
void apply_registration(const Registration& registration, const std::vector<cv::Mat>& bands,
                        const cv::Mat& valid, const Window& source, const Window& target,
                        std::vector<cv::Mat>& out_bands, cv::Mat& out_valid);

/// Margin (px) by which the source window must exceed the target for apply_registration.
int registration_margin(const Registration& registration);

}  // namespace aftermath
