#include "aftermath/evaluate/metrics.hpp"

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
  for (std::size_t i = 0; i < truth.size(); ++i) {
    const bool p = predicted[i], t = truth[i];
    if (p && t) ++m.tp;
    else if (p) ++m.fp;
    else if (t) ++m.fn;
    else ++m.tn;
  }
  return m;
}

}  // namespace aftermath
