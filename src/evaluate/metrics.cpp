#include "aftermath/evaluate/metrics.hpp"

#include <algorithm>
#include <limits>
#include <numeric>

#include "aftermath/core/error.hpp"

namespace aftermath {

namespace {
double ratio(std::int64_t num, std::int64_t den) {
  return den > 0 ? static_cast<double>(num) / static_cast<double>(den) : 0.0;
}
}  // namespace

double BinaryMetrics::precision() const { return ratio(tp, tp + fp); }
double BinaryMetrics::recall() const { return ratio(tp, tp + fn); }
double BinaryMetrics::f1() const { return ratio(2 * tp, 2 * tp + fp + fn); }
double BinaryMetrics::iou() const { return ratio(tp, tp + fp + fn); }

BinaryMetrics binary_metrics(const std::vector<bool>& predicted, const std::vector<bool>& truth) {
  if (predicted.size() != truth.size()) {
    throw Error(ErrorKind::internal, "binary_metrics: predicted and truth differ in length");
  }
  BinaryMetrics m;
  for (std::size_t i = 0; i < truth.size(); ++i) m.add(predicted[i], truth[i]);
  return m;
}

std::int64_t ConfusionMatrix::total() const { return std::accumulate(counts.begin(), counts.end(), std::int64_t{0}); }

BinaryMetrics ConfusionMatrix::one_vs_rest(int c) const {
  BinaryMetrics m;
  std::int64_t row = 0, col = 0;
  for (int k = 0; k < classes; ++k) {
    row += at(c, k);
    col += at(k, c);
  }
  m.tp = at(c, c);
  m.fp = col - m.tp;
  m.fn = row - m.tp;
  m.tn = total() - m.tp - m.fp - m.fn;
  return m;
}

ConfusionMatrix confusion_matrix(const std::vector<int>& truth, const std::vector<int>& predicted, int classes) {
  if (truth.size() != predicted.size()) throw Error(ErrorKind::internal, "confusion_matrix: lengths differ");
  ConfusionMatrix m(classes);
  for (std::size_t i = 0; i < truth.size(); ++i) {
    const int t = truth[i], p = predicted[i];
    if (t < 0 || t >= classes || p < 0 || p >= classes) continue;
    ++m.counts[static_cast<std::size_t>(t * classes + p)];
  }
  return m;
}

double roc_auc_from_histograms(const std::vector<std::int64_t>& pos, const std::vector<std::int64_t>& neg) {
  if (pos.size() != neg.size()) throw Error(ErrorKind::internal, "roc_auc: histogram sizes differ");
  const double P = static_cast<double>(std::accumulate(pos.begin(), pos.end(), std::int64_t{0}));
  const double N = static_cast<double>(std::accumulate(neg.begin(), neg.end(), std::int64_t{0}));
  if (P <= 0 || N <= 0) return std::numeric_limits<double>::quiet_NaN();
  // Walk from the highest score down: each bin moves the curve by (fp, tp) in one straight segment.
  double area = 0, tp = 0, fp = 0;
  for (std::size_t k = pos.size(); k-- > 0;) {
    const double dtp = static_cast<double>(pos[k]), dfp = static_cast<double>(neg[k]);
    area += dfp * (tp + dtp / 2);
    tp += dtp;
    fp += dfp;
  }
  return area / (P * N);
}

double roc_auc(const std::vector<double>& scores, const std::vector<bool>& truth) {
  if (scores.size() != truth.size()) throw Error(ErrorKind::internal, "roc_auc: lengths differ");
  std::vector<std::size_t> order(scores.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return scores[a] < scores[b]; });
  std::vector<std::int64_t> pos, neg;
  for (std::size_t i = 0; i < order.size(); ++i) {
    if (i == 0 || scores[order[i]] != scores[order[i - 1]]) {
      pos.push_back(0);
      neg.push_back(0);
    }
    ++(truth[order[i]] ? pos.back() : neg.back());
  }
  return roc_auc_from_histograms(pos, neg);
}

double SweepPoint::fpr() const { return counts.fp + counts.tn > 0 ? double(counts.fp) / double(counts.fp + counts.tn) : 0.0; }

std::vector<SweepPoint> threshold_sweep(const std::vector<double>& scores, const std::vector<bool>& truth,
                                        const std::vector<double>& thresholds) {
  if (scores.size() != truth.size()) throw Error(ErrorKind::internal, "threshold_sweep: lengths differ");
  std::vector<SweepPoint> out;
  out.reserve(thresholds.size());
  for (const double t : thresholds) {
    SweepPoint p;
    p.threshold = t;
    for (std::size_t i = 0; i < scores.size(); ++i) p.counts.add(scores[i] >= t, truth[i]);
    out.push_back(p);
  }
  return out;
}

double xview2_harmonic_mean(const std::vector<double>& f1s) {
  if (f1s.empty()) return 0.0;
  double s = 0;
  for (const double f : f1s) s += 1.0 / (f + 1e-6);
  return static_cast<double>(f1s.size()) / s;
}

double xview2_score(double localisation_f1, const std::array<double, 4>& damage_f1) {
  return 0.3 * localisation_f1 + 0.7 * xview2_harmonic_mean({damage_f1.begin(), damage_f1.end()});
}

int pick_threshold(const std::vector<SweepPoint>& sweep, const std::string& target, double value) {
  int best = -1;
  for (std::size_t i = 0; i < sweep.size(); ++i) {
    const auto& c = sweep[i].counts;
    const auto better = [&](const BinaryMetrics& b) {
      if (target == "f1") return c.f1() > b.f1();
      if (target == "precision") return c.recall() > b.recall() || (c.recall() == b.recall() && c.precision() > b.precision());
      return c.precision() > b.precision() || (c.precision() == b.precision() && c.recall() >= b.recall());
    };
    if (target == "precision" && !(c.tp + c.fp > 0 && c.precision() >= value)) continue;
    if (target == "recall" && !(c.tp + c.fn > 0 && c.recall() >= value)) continue;
    if (target != "f1" && target != "precision" && target != "recall") {
      throw Error(ErrorKind::usage, "unknown calibration target '" + target + "' (f1, precision, recall)");
    }
    if (best < 0 || better(sweep[static_cast<std::size_t>(best)].counts)) best = static_cast<int>(i);
  }
  return best;
}

}  // namespace aftermath
