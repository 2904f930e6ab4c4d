#pragma once
/// @file metrics.hpp
/// Metrics against labels.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace aftermath {

struct BinaryMetrics {
  std::int64_t tp = 0, fp = 0, fn = 0, tn = 0;
  /// Counts one item: predicted positive or not, truly positive or not.
  void add(bool predicted, bool truth) { ++(predicted ? (truth ? tp : fp) : (truth ? fn : tn)); }
  double precision() const;  ///< tp / (tp + fp); 0 when undefined
  double recall() const;     ///< tp / (tp + fn); 0 when undefined
  double f1() const;         ///< harmonic mean; 0 when undefined
  double iou() const;        ///< tp / (tp + fp + fn); 0 when undefined
};

/// Counts of predicted vs true positives; the vectors have equal length.
BinaryMetrics binary_metrics(const std::vector<bool>& predicted, const std::vector<bool>& truth);

}  // namespace aftermath


namespace aftermath {

/// Square confusion matrix over classes 0..n-1: rows = truth, columns = predicted.
struct ConfusionMatrix {
  int classes = 0;
  std::vector<std::int64_t> counts;  ///< row-major, classes x classes
  explicit ConfusionMatrix(int n = 0) : classes(n), counts(static_cast<std::size_t>(n) * n, 0) {}
  std::int64_t at(int truth, int predicted) const { return counts[static_cast<std::size_t>(truth * classes + predicted)]; }
  std::int64_t total() const;
  /// Class c against the rest: tp = [c][c], fp = column c minus tp, fn = row c minus tp, tn = the rest.
  BinaryMetrics one_vs_rest(int c) const;
};

/// Counts pairs (truth[i], predicted[i]); pairs with either value outside [0, classes) are skipped.
ConfusionMatrix confusion_matrix(const std::vector<int>& truth, const std::vector<int>& predicted, int classes);

/// Area under the ROC curve of `scores` (higher = more likely positive) against binary `truth`:
/// the trapezoid rule over the curve's vertices, one vertex per distinct score, so tied scores
/// contribute a diagonal segment (= the Mann-Whitney statistic with ties counted 1/2).
/// NaN when truth has no positive or no negative.
double roc_auc(const std::vector<double>& scores, const std::vector<bool>& truth);

/// The same from histograms of scores (bin b holds the scores of that bin; bins ascending in
/// score), positives and negatives separately; a bin acts as one tied score.
double roc_auc_from_histograms(const std::vector<std::int64_t>& positives, const std::vector<std::int64_t>& negatives);

/// One point of a threshold sweep: predicted positive = score >= threshold.
struct SweepPoint {
  double threshold = 0;
  BinaryMetrics counts;
  double fpr() const;  ///< fp / (fp + tn); 0 when undefined
};
std::vector<SweepPoint> threshold_sweep(const std::vector<double>& scores, const std::vector<bool>& truth,
                                        const std::vector<double>& thresholds);

/// xView2's harmonic mean of per-class F1s: n / sum(1 / (f1_i + 1e-6)).
double xview2_harmonic_mean(const std::vector<double>& f1s);
/// xView2 score: 0.3 x localisation F1 + 0.7 x xview2_harmonic_mean(the four damage-class F1s).
double xview2_score(double localisation_f1, const std::array<double, 4>& damage_f1);

/// Which sweep point meets a target: "f1" (best F1; ties -> the lowest threshold), "precision"
/// (precision >= value with the highest recall; ties -> the highest precision, then the lowest
/// threshold) or "recall" (recall >= value with the highest precision; ties -> the highest recall,
/// then the highest threshold). Returns the index, or -1 when no point meets it.
int pick_threshold(const std::vector<SweepPoint>& sweep, const std::string& target, double value);

}  // namespace aftermath
