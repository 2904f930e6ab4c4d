#include <gtest/gtest.h>

#include "aftermath/core/error.hpp"
#include "aftermath/evaluate/metrics.hpp"

namespace aftermath {
namespace {

TEST(BinaryMetrics, Counts) {
  const std::vector<bool> predicted{true, true, false, false, true, false};
  const std::vector<bool> truth{true, false, true, false, true, false};
  const BinaryMetrics m = binary_metrics(predicted, truth);
  EXPECT_EQ(m.tp, 2);
  EXPECT_EQ(m.fp, 1);
  EXPECT_EQ(m.fn, 1);
  EXPECT_EQ(m.tn, 2);
  EXPECT_DOUBLE_EQ(m.precision(), 2.0 / 3);
  EXPECT_DOUBLE_EQ(m.recall(), 2.0 / 3);
  EXPECT_DOUBLE_EQ(m.f1(), 2.0 / 3);
  EXPECT_DOUBLE_EQ(m.iou(), 0.5);
}

TEST(BinaryMetrics, F1IsHarmonicMean) {
  BinaryMetrics m;
  m.tp = 3;
  m.fp = 1;
  m.fn = 5;
  const double p = m.precision(), r = m.recall();
  EXPECT_DOUBLE_EQ(p, 0.75);
  EXPECT_DOUBLE_EQ(r, 3.0 / 8);
  EXPECT_NEAR(m.f1(), 2 * p * r / (p + r), 1e-15);
}

TEST(BinaryMetrics, UndefinedIsZero) {
  const BinaryMetrics empty = binary_metrics({}, {});
  EXPECT_EQ(empty.precision(), 0.0);
  EXPECT_EQ(empty.recall(), 0.0);
  EXPECT_EQ(empty.f1(), 0.0);
  EXPECT_EQ(empty.iou(), 0.0);
  const BinaryMetrics negatives = binary_metrics({false, false}, {false, false});
  EXPECT_EQ(negatives.tn, 2);
  EXPECT_EQ(negatives.f1(), 0.0);
  EXPECT_EQ(negatives.iou(), 0.0);
  const BinaryMetrics all_wrong = binary_metrics({true, false}, {false, true});
  EXPECT_EQ(all_wrong.precision(), 0.0);
  EXPECT_EQ(all_wrong.recall(), 0.0);
  EXPECT_EQ(all_wrong.f1(), 0.0);
}

TEST(BinaryMetrics, Perfect) {
  const BinaryMetrics m = binary_metrics({true, false, true}, {true, false, true});
  EXPECT_EQ(m.f1(), 1.0);
  EXPECT_EQ(m.iou(), 1.0);
  EXPECT_EQ(m.precision(), 1.0);
  EXPECT_EQ(m.recall(), 1.0);
}

TEST(BinaryMetrics, LengthMismatchThrows) {
  EXPECT_THROW((void)binary_metrics({true}, {true, false}), Error);
}

}  // namespace
}  // namespace aftermath
