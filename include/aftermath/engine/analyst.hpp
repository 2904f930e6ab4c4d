#pragma once
/// @file analyst.hpp
/// The analyst's loop on an existing output: rescore (new thresholds, no image reads), evaluate
/// against labels, sweep thresholds / calibrate, and an HTML report. See docs/analyst.md.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "aftermath/config/config.hpp"
#include "aftermath/engine/job.hpp"
#include "aftermath/evaluate/metrics.hpp"

namespace aftermath {

// ---- rescore ---------------------------------------------------------------------------------

struct RescoreRequest {
  std::string input;          ///< an aftermath output (HDF5)
  std::string out;            ///< "" = replace `input` atomically (temp + rename)
  std::optional<JobConfig> config;  ///< the new thresholds; nullopt = the stored config
  std::vector<std::string> overrides;  ///< section.key=value applied on top
  std::string config_path;    ///< provenance; "" keeps the stored config_path
  int threads = 0;
  bool overwrite = false;     ///< `out` may exist
};

struct RescoreSummary {
  std::string output;
  double threshold = 0;
  bool threshold_reused = false;  ///< the stored threshold was kept (threshold section unchanged)
  std::int64_t valid_pixels = 0, changed_pixels = 0;
  std::int64_t features = 0, outside = 0, no_data = 0;
  std::array<std::int64_t, 4> class_counts{};
  std::int64_t sites = -1;  ///< damage sites; -1 = not computed (sites.enabled false)
  std::string scheme;      ///< damage.scheme
  std::array<std::int64_t, 5> grade_counts{};  ///< scored features per class of the scheme
  std::array<std::int64_t, 4> kind_counts{};   ///< features per kind
  std::vector<std::string> warnings;
  double seconds = 0;
};

/// Recomputes /damage_mask, the per-feature sums and classes from the stored /change_score with
/// the thresholds (threshold.*, damage.*) of the new config, through the same classify step and
/// tile pipeline as run_job. Sections that only change the scores (grid, input, align, detect,
/// tiling.tile_size) cannot be applied and are kept from the stored config (with a warning).
RescoreSummary rescore_job(const RescoreRequest& request, const ProgressFn& progress = {});

// ---- evaluate --------------------------------------------------------------------------------

struct EvaluateRequest {
  std::string output;       ///< an aftermath output
  std::string truth;        ///< xBD JSON, OGR vector (polygons/points), or a change-mask raster
  std::string truth_field;  ///< class attribute of a vector truth; "" = subtype, then damage
  std::string truth_layer;  ///< OGR layer of the truth
};

struct ClassScores {
  std::string name;
  BinaryMetrics counts;
  std::int64_t support = 0;  ///< truth count of the class
};

struct Evaluation {
  std::string truth_kind;  ///< xbd | polygons | points | raster
  std::string metric;      ///< the per-feature metric scored (damage.metric)
  // Feature level (vector truth).
  std::int64_t features = 0;          ///< output features on the grid (status != outside)
  std::int64_t truth_items = 0;       ///< truth polygons/points with a damage class
  std::int64_t truth_unmatched = 0;   ///< truth items in no output feature
  std::int64_t evaluated = 0;         ///< features scored with a truth class (confusion matrix)
  std::int64_t unscored_with_truth = 0;  ///< features with truth but no class (no-data)
  BinaryMetrics localisation;         ///< building detection, per feature (docs/analyst.md)
  ConfusionMatrix confusion{4};       ///< rows truth, columns predicted, classes 0..3
  std::array<ClassScores, 4> classes;
  BinaryMetrics damaged;              ///< truth >= minor vs predicted >= minor
  /// Per operating point (0 default, 1 high precision, 2 high recall; the damage_grade columns on
  /// the xBD scale): destroyed vs not, and severe = major or destroyed vs not.
  std::array<BinaryMetrics, 3> destroyed_at{}, severe_at{};
  bool operating_points = false;      ///< the output has the operating-point columns
  double roc_auc = 0;                 ///< per-feature metric vs truth >= minor (NaN if undefined)
  double damage_f1_harmonic = 0;
  double xview2 = 0;
  // Pixel level (raster truth).
  BinaryMetrics pixels;               ///< damage_mask changed vs truth nonzero, over valid pixels
  double pixel_roc_auc = 0;
  // Inputs of sweep/calibrate: per evaluated feature (scored, truth 0..3) metric and truth class;
  // for raster truth, score histograms (4096 bins over [0, 1]) of changed / unchanged truth pixels.
  std::vector<double> feature_metric;
  std::vector<int> feature_truth;
  std::vector<std::int64_t> pixel_pos_hist, pixel_neg_hist;
};

Evaluation evaluate_output(const EvaluateRequest& request);
std::string evaluation_json(const Evaluation& e);
std::string evaluation_csv(const Evaluation& e);
/// Stores the evaluation as the /evaluation group of the output (atomically, temp + rename).
void store_evaluation(const std::string& output, const Evaluation& e, const std::string& truth_path);

// ---- sweep / calibrate -----------------------------------------------------------------------

struct SweepCurves {
  std::string variable;  ///< "damage.minor" (per-feature metric) or "threshold.value" (pixel score)
  std::vector<SweepPoint> points;
  double auc = 0;
};
/// The binary damaged-vs-not sweep: per-feature metric (truth class >= `boundary`, 1..3) for a
/// vector truth, pixel score for a raster truth; thresholds 0, 0.01, ..., 1.
SweepCurves sweep(const Evaluation& e, int boundary = 1);
std::string sweep_csv(const SweepCurves& s);
/// PR and ROC curves as PNG images (OpenCV drawing).
void write_curve_pngs(const SweepCurves& s, const std::string& pr_png, const std::string& roc_png);
/// PNG bytes of the two plots.
std::vector<std::uint8_t> pr_png_bytes(const SweepCurves& s);
std::vector<std::uint8_t> roc_png_bytes(const SweepCurves& s);

struct Calibration {
  JobConfig config;  ///< the output's config with the chosen thresholds
  std::vector<std::string> notes;  ///< one line per threshold chosen
};
/// target: "f1" | "precision" (value = minimum precision) | "recall" (value = minimum recall).
/// Vector truth: damage.minor/major/destroyed, each from the sweep of truth >= that class (made
/// non-decreasing); raster truth: threshold.value (method fixed). Throws Error(usage) when no
/// threshold meets the target.
Calibration calibrate(const std::string& output, const Evaluation& e, const std::string& target, double value);

// ---- report ----------------------------------------------------------------------------------

struct ReportRequest {
  std::string output;
  std::string truth;  ///< optional
  std::string truth_field, truth_layer;
  std::string html;   ///< the page to write
  int max_side = 768; ///< quicklook size, px
};
/// Writes one self-contained HTML page (inline PNGs, SVG footprints, metrics, a threshold slider).
/// Returns warnings (e.g. inputs no longer present).
std::vector<std::string> write_report(const ReportRequest& request);

}  // namespace aftermath
