#pragma once
/// @file metrics.hpp
/// Metrics against labels.
#include <cstdint>
#include <vector>

namespace aftermath {

struct BinaryMetrics {
  std::int64_t tp = 0, fp = 0, fn = 0, tn = 0;
  double precision() const;  ///< tp / (tp + fp); 0 when undefined
  double recall() const;     ///< tp / (tp + fn); 0 when undefined
  double f1() const;         ///< harmonic mean; 0 when undefined
  double iou() const;        ///< tp / (tp + fp + fn); 0 when undefined
};

/// Counts of predicted vs true positives; the vectors have equal length.
BinaryMetrics binary_metrics(const std::vector<bool>& predicted, const std::vector<bool>& truth);

}  // namespace aftermath
