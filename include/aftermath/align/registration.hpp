#pragma once
/// @file registration.hpp
/// Co-registration of the post scene onto the pre scene on the analysis grid.
///
/// Conventions:
/// - Positions are analysis-grid pixel indices (x = column, y = row); pixel (x, y) is the sample
///   at integer (x, y), so a window {x0, y0, w, h} has its centre at (x0 + (w-1)/2, y0 + (h-1)/2).
/// - A displacement d(p) means the content at pre pixel p is found at post position p + d(p), so
///   the aligned post is post(p + d(p)). A tie point's `shift` is d at its window centre.
/// - Everything is in analysis-grid pixels. Nothing here knows threads or files: the engine reads
///   windows (WindowReader) and may run the per-window work in parallel (ForEach).
#include <cstddef>
#include <functional>
#include <opencv2/core.hpp>
#include <optional>
#include <string>
#include <vector>

#include "aftermath/config/config.hpp"
#include "aftermath/core/grid.hpp"
#include "aftermath/core/util.hpp"

namespace aftermath {

struct PhaseCorrelation {
  cv::Point2d shift;  ///< sub-pixel, see the convention above
  double peak = 0;    ///< normalised correlation peak height in [0, 1]
  double psr = 0;  ///< peak-to-sidelobe ratio: (peak - mean) / sd of the surface outside 11 x 11 px
                   ///< around the peak
  bool ok = false;
  std::string reason;  ///< why not ok ("no texture", "too few valid pixels", "peak too weak",
                       ///< "shift beyond max")
};

/// How far phase_correlate refines its estimate at full resolution.
struct PhaseCorrelationRefinement {
  /// Shift and correlate again until the update is below this, px (at most 6 more times after
  /// the pyramid's estimate at full resolution).
  double tolerance_px = 0.002;
  /// Then mask the pixels that changed and refine again on the others (change pulls the
  /// sub-pixel estimate by a few hundredths of a pixel).
  bool mask_change = true;
};

/// Sub-pixel phase correlation of two single-channel CV_32F images of equal size, coarse to fine
/// on an image pyramid so that shifts up to `max_shift_px` are found, refined iteratively to
/// better than 0.05 px on textured imagery (the default `refinement`; a caller that needs the
/// shift to the nearest pixel only asks for less). `reference_valid`/`moving_valid` (CV_8U,
/// 0 = invalid, may be empty) are filled with the mean before correlation. Never divides by zero:
/// constant input gives ok = false with reason "no texture".
PhaseCorrelation phase_correlate(const cv::Mat& reference, const cv::Mat& moving,
                                 const cv::Mat& reference_valid, const cv::Mat& moving_valid,
                                 double max_shift_px,
                                 const PhaseCorrelationRefinement& refinement = {});

/// Mean structural similarity (Gaussian sigma 1.5 px) of two single-channel images over the pixels
/// valid in both (masks CV_8U, may be empty), each first standardised (mean 0, sd 1 over those
/// pixels) so that a gain or offset between the scenes does not count as dissimilarity. In
/// [-1, 1]; 0 when fewer than 64 pixels are valid or an image is constant (never NaN).
double structural_similarity(const cv::Mat& a, const cv::Mat& b, const cv::Mat& a_valid,
                             const cv::Mat& b_valid);

struct TiePoint {
  Window window;           ///< where it was measured (analysis grid)
  cv::Point2d shift;       ///< displacement d at the window centre, px
  double peak = 0;         ///< normalised phase-correlation peak, [0, 1]
  double psr = 0;          ///< peak-to-sidelobe ratio of the correlation surface
  double ssim_before = 0;  ///< similarity of pre and post before the measured residual shift
  double ssim_after = 0;   ///< ... and after it (a reliable shift does not lower it)
  double residual = 0;     ///< |shift - model displacement| after the fit, px
  double cv_residual =
      0;  ///< |shift - displacement of the model fitted without this tie|, px (kept ties)
  bool kept = false;
  std::string
      reason;  ///< why dropped ("" if kept): "too few valid pixels", "no texture", "weak peak",
               ///< "low peak-to-sidelobe ratio", "similarity not improved", "outlier", ...
  cv::Point2d centre() const {
    return {window.x + (window.width - 1) / 2.0, window.y + (window.height - 1) / 2.0};
  }
};

/// A smooth shift field on a regular node lattice: node (i, j) sits at grid position
/// (origin.x + i * spacing, origin.y + j * spacing); values between nodes are interpolated with
/// Catmull-Rom splines, and held constant beyond the outermost nodes.
struct ShiftField {
  cv::Point2d origin;
  double spacing = 0;  ///< px; 0 = no field
  cv::Mat dx, dy;      ///< CV_64F, rows x cols of nodes, px (added to the affine part)
  cv::Mat sigma;       ///< CV_64F, same lattice: the local misregistration uncertainty, px
  bool empty() const { return spacing <= 0 || dx.empty(); }
};

struct Registration {
  /// identity | translation | affine | field. translation and affine use `affine` (translation: a
  /// pure shift); field adds `field` to `affine`.
  std::string model = "identity";
  /// How the tie points were found: "phase correlation", "phase correlation (feature-matching
  /// prior)", "feature matching", "stored" (read back from an alignment file), "" for identity.
  std::string method;
  cv::Point2d shift;  ///< the displacement at the grid centre (translation: the shift), px
  /// Maps a pre grid position p to its post position: post = affine * (x, y, 1). Identity by
  /// default.
  cv::Matx23d affine{1, 0, 0, 0, 1, 0};
  ShiftField field;
  cv::Size grid;  ///< the analysis grid the model was fitted on (width x height), for the margin
  double max_displacement = 0;  ///< bound of |d| over the grid, px (sets the read margin)
  double uncertainty =
      0;  ///< global misregistration uncertainty (RMS of cross-validated residuals), px
  std::vector<TiePoint> ties;
  int kept = 0;
  int dropped = 0;
  double rmse_before = 0;  ///< RMS of kept tie displacements before alignment, px
  double rmse_after = 0;   ///< RMS of kept tie residuals after the model, px
  double cv_rmse = 0;      ///< RMS of the kept ties' cross-validated residuals, px
  /// Cross-validated RMSE of each candidate model on the same ties (auto selection); -1 = not
  /// fitted.
  double cv_translation = -1, cv_affine = -1, cv_field = -1;
  std::string warning;  ///< non-empty when alignment fell back or is doubtful, and why
};

/// Displacement d(x, y) of the model at a grid position (see the convention). (0, 0) for identity.
cv::Point2d displacement(const Registration& registration, double x, double y);

/// Windows (window_size square) on a regular layout across a width x height grid, in row-major
/// order. config.spacing == 0: at most config.max_windows non-overlapping windows spread evenly;
/// fewer if the grid is small; one centred window (clamped to the grid, possibly smaller) if the
/// grid is smaller than window_size. config.spacing > 0: centres every `spacing` px (windows may
/// overlap), the lattice centred in the grid; spacing is widened if that would exceed max_windows.
std::vector<Window> tie_point_windows(int width, int height, const AlignConfig& config);

/// Measures one tie point on single-channel images covering `window`.
TiePoint measure_tie_point(const Window& window, const cv::Mat& reference,
                           const cv::Mat& reference_valid, const cv::Mat& moving,
                           const cv::Mat& moving_valid, const AlignConfig& config);

/// Measures one tie point against a prior model: `moving` is the post scene already resampled onto
/// `window` with `prior` (apply_registration), so only the residual (up to `search_px`) is
/// searched. The tie's shift is the prior's displacement at the window centre corrected by the
/// residual. Applies the peak, peak-to-sidelobe and similarity-gain filters of `config`.
TiePoint measure_tie_point(const Window& window, const cv::Mat& reference,
                           const cv::Mat& reference_valid, const cv::Mat& moving,
                           const cv::Mat& moving_valid, const Registration& prior, double search_px,
                           const AlignConfig& config);

/// Robust translation from tie points: drops weak/failed ones, then outliers (median + MAD),
/// and averages the rest. With no usable tie point returns model "identity" with a warning.
Registration fit_translation(std::vector<TiePoint> ties, const AlignConfig& config);

/// Robust model from tie points on a width x height grid: config.model (translation | affine |
/// field), or with "auto" the simplest model whose cross-validated residual RMSE is within 10 % (+
/// 0.01 px) of the best. Affine: RANSAC, then least squares on the inliers with 3-sigma trimming.
/// Field: affine + a thin-plate smoothing spline of the residuals (smoothing chosen by
/// leave-one-out cross-validation), sampled on a node lattice. Fewer usable ties than a model
/// needs (affine 3, field 8) falls back to the simpler one, with a warning. Never NaN: a non-finite
/// result falls back to identity with a warning. Fills max_displacement and the uncertainty.
Registration fit_registration(std::vector<TiePoint> ties, int width, int height,
                              const AlignConfig& config);

/// Single-channel intensity of a window of the analysis grid: CV_32F image and CV_8U validity
/// (255 = valid). Windows may extend beyond the grid or the scene: such pixels are invalid.
struct IntensityWindow {
  cv::Mat image;
  cv::Mat valid;
};
/// Reads a window of the pre (post = false) or post scene. Must be callable concurrently when
/// the ForEach runs bodies concurrently (the engine gives each thread its own reader).
using WindowReader = std::function<IntensityWindow(bool post, const Window& window)>;
// ForEach, for_each_serial: aftermath/core/util.hpp.

/// The whole estimation on a width x height grid, reading only the windows it needs:
///  1. a coarse shift from the central window (side max(1024, 4 x max_shift_px), at most 4096,
///     clamped to the grid), downsampled to <= 512 px, so that shifts up to max_shift_px are found;
///  2. tie points on tie_point_windows, each post window resampled with the coarse prior and its
///     residual measured (in parallel through `for_each`), then fit_registration;
///  3. when phase correlation is unreliable (no model, or under a quarter of the textured windows
///     kept) and config.feature_fallback: ORB feature matching + RANSAC on the coarse window gives
///     a similarity prior (large rotation, scale, shift), the tie points are measured again against
///     it, and the better of the two results is kept (or the feature model itself).
/// Deterministic whatever the ForEach (results are collected by index). Never throws for bad data:
/// the reasons are in the ties and `warning`.
Registration estimate_registration(int width, int height, const AlignConfig& config,
                                   const WindowReader& read,
                                   const ForEach& for_each = for_each_serial);

/// Mean of the bands: the single channel used for correlation.
cv::Mat to_intensity(const std::vector<cv::Mat>& bands);

/// Resamples bands covering `source` (a window of the analysis grid) onto `target` with the
/// registration: out(p) = in(p + d(p)), cubic convolution (Keys, a = -0.5; 4 x 4 taps). For
/// identity and translation the taps are shared by every pixel (fewer for whole-pixel shifts,
/// which copy exactly); for affine and field models they follow d(p), evaluated at the global grid
/// position so the result does not depend on the tiling. Output pixels whose taps fall outside
/// `source` or on an invalid pixel are invalid (0 in `out_valid`, 0 in the bands). `bands` are
/// CV_32F or of any type convertTo takes (uint16 bands are sampled as they are, other types
/// converted first); `out_bands` are CV_32F. `finish_row`, when given, is called once on every
/// output row of every band after its values are final (band index, row, width): work on the
/// resampled values (a radiometric normalisation) done while the row is in the cache.
using RowEpilogue = std::function<void(std::size_t band, float* row, int cols)>;
void apply_registration(const Registration& registration, const std::vector<cv::Mat>& bands,
                        const cv::Mat& valid, const Window& source, const Window& target,
                        std::vector<cv::Mat>& out_bands, cv::Mat& out_valid,
                        const RowEpilogue& finish_row = {});

/// Margin (px) by which the source window must exceed the target for apply_registration: covers
/// the model's largest displacement over its grid plus the cubic taps.
int registration_margin(const Registration& registration);

/// The smallest source window apply_registration needs for `target`: the target mapped by the
/// model (bounding box, with the field's largest nearby node and the cubic taps added). Its size
/// follows the target's, not the scene's, whatever the model.
Window registration_source(const Registration& registration, const Window& target);

/// The model's local misregistration uncertainty over `window` (CV_32F, px): the field's sigma
/// lattice interpolated, or the global uncertainty for translation/affine; -1 (unknown) for
/// identity.
cv::Mat misregistration(const Registration& registration, const Window& window);

/// The value misregistration() gives every pixel when it is the same everywhere (identity,
/// translation, affine: no lattice), else nothing.
std::optional<float> uniform_misregistration(const Registration& registration);

}  // namespace aftermath
