#pragma once
/// @file detector.hpp
/// Change detectors behind one small interface, chosen by name in the config (detect.method).
/// A detector is fitted once per job on samples of both scenes (job-level statistics, so the
/// result does not depend on tiling or threads) and then scores tiles independently.
///
/// One score scale for all: each detector turns its evidence into a standardised change
/// magnitude m >= 0, in no-change standard deviations (under no change m^2 averages about 1), and
/// scores score = m^2 / (m^2 + s^2), so a pixel s no-change sigmas away scores 0.5, 2s scores 0.8,
/// 3s scores 0.9 (s = detect.cva_half_score_sigma for cva, detect.half_score_sigma for the others).
/// Scores of different detectors are therefore comparable and can be averaged (`ensemble`).
/// docs/detectors.md measures them against labels.
#include <memory>
#include <opencv2/core.hpp>
#include <string>
#include <utility>
#include <vector>

#include "aftermath/config/config.hpp"
#include "aftermath/core/util.hpp"

namespace aftermath {

/// Pre and post bands of the same window (CV_32F, equal count and size; post already aligned and
/// normalised) and the joint validity (CV_8U, 255 = valid in every scene).
struct BandPair {
  std::vector<cv::Mat> pre;
  std::vector<cv::Mat> post;
  cv::Mat valid;
  /// Further scenes of the same place, each a band vector like `pre`/`post` (multi-date
  /// detectors: ttest uses every scene of a side; the others compare `pre` with `post` only).
  std::vector<std::vector<cv::Mat>> more_pre, more_post;
};

/// A per-pixel layer a detector produces beside its score (stored in the output as float32,
/// fill NaN where invalid).
struct DetectorLayer {
  std::string name;       ///< HDF5 dataset name, e.g. "ttest_t"
  std::string long_name;  ///< CF long_name
  std::string units;      ///< CF units ("1" dimensionless)
};

/// Job-level fit diagnostics: name -> values (e.g. "irmad_iterations" -> {12}).
using FitReport = std::vector<std::pair<std::string, std::vector<double>>>;

class Detector {
 public:
  virtual ~Detector() = default;
  virtual std::string name() const = 0;
  /// Job-level fit from sample windows. Throws Error(usage) when the samples cannot serve the
  /// detector (e.g. ttest with one scene per side and detect.ttest_radius 0). `for_each` runs
  /// the fit's independent parts (bands, samples) side by side where a detector has them; the
  /// fitted values do not depend on it.
  void fit(const std::vector<BandPair>& samples, const ForEach& for_each = for_each_serial) {
    fit_samples(samples, for_each);
  }
  /// Score in [0, 1] (CV_32F, window size): 0 no change, 1 certain change; 0 where invalid or
  /// where a band value is not finite, never NaN. Const and thread-safe after fit().
  virtual cv::Mat score(const BandPair& window) const = 0;
  /// The score and, in `layers`, the extra layers (extra_layers() order, CV_32F, window size,
  /// NaN where invalid).
  virtual cv::Mat score_with_layers(const BandPair& window, std::vector<cv::Mat>& layers) const {
    layers.clear();
    return score(window);
  }
  virtual std::vector<DetectorLayer> extra_layers() const { return {}; }
  /// Diagnostics of the last fit() (stored as attributes of the output, logged by the engine).
  virtual FitReport fit_report() const { return {}; }
  /// Neighbourhood radius the detector reads around each pixel, px (the halo it needs);
  /// equals detect_radius(config).
  virtual int radius() const { return 0; }

 protected:
  virtual void fit_samples(const std::vector<BandPair>& samples, const ForEach& for_each) = 0;
};

/// Builds the detector named by config.method. Throws Error(usage) for an unknown name or a
/// parameter out of range.
///
/// - "cva": change-vector magnitude. Per band d = post - pre (optionally box-averaged over
///   cva_radius), standardised by the median and a no-change sigma of d over the fit samples
///   (25th percentile of |d - median| / 0.31864, which holds while >= 25% of the samples are
///   unchanged; floored at 1e-4 x (1 + median |pre|)); m^2 = mean over bands of z^2;
///   s = cva_half_score_sigma.
/// - "log-ratio": the same on ln(x + e_b), e_b = 1% of the median pre value of band b (> 0):
///   multiplicative change (SAR intensity, illumination) becomes additive and speckle's spread
///   no longer grows with brightness; box averaging over log_ratio_radius.
/// - "irmad": iteratively reweighted MAD (Nielsen 2007, see radiometry/irmad.hpp) fitted on the
///   samples; Z = sum of squared standardised MAD variates (~chi-square, p dof under no change),
///   m^2 = Z / p. Extra layer `irmad_no_change_probability` = P(chi2_p > Z). Fit report:
///   iterations, converged, canonical correlations, largest correlation change per iteration.
/// - "ssim": local structural dissimilarity D = mean over bands of (1 - SSIM) / 2 over a
///   (2r+1)^2 box (r = ssim_radius; C1, C2 from the 1-99% range of the pre band); standardised
///   by its no-change median and sigma over the fit samples; only an increase counts.
/// - "texture": per band the log ratio of local gradient energy (mean of |central-difference
///   gradient|^2 over a (2r+1)^2 box, r = texture_radius) post vs pre, standardised like cva:
///   rubble gains texture, a flooded or burnt surface loses it, a uniform brightness change does
///   neither.
/// - "ttest": per band a Welch t-test between the pre and post samples of a pixel: every scene of
///   a side (pre + more_pre, post + more_post) over a (2r+1)^2 box, r = ttest_radius (as PWTT,
///   Ballinger 2024, with N pre and M post scenes). t becomes a normal z of the same two-sided
///   p-value (Wallace 1959: z = sqrt(df ln(1 + t^2/df)) (8 df + 1) / (8 df + 3)), centred on
///   its no-change median over the fit samples and divided by its no-change scale when that
///   exceeds 1 (neighbours in one scene are not independent repeats: the raw t is overconfident);
///   m^2 = mean over bands of z^2. Needs >= 2 samples per side. Extra layer `ttest_t` (the t of the
///   band with the largest |z|, post minus pre).
/// - "ensemble": the weighted mean of the member scores (ensemble_* weights > 0); its extra
///   layers are the members'.
std::unique_ptr<Detector> make_detector(const DetectConfig& config);

/// The extra layers make_detector(config) will produce (same names and order).
std::vector<DetectorLayer> detector_layers(const DetectConfig& config);

}  // namespace aftermath
