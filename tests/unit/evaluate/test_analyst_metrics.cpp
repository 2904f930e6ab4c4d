// Hand-counted cases for the evaluate module's metrics.
#include <gtest/gtest.h>

#include <cmath>

#include "aftermath/evaluate/metrics.hpp"

namespace aftermath {
namespace {

TEST(ConfusionMatrix, HandCounted) {
  // truth:     0 0 1 1 2 3 3 3 ; predicted: 0 1 1 1 3 3 3 2 ; (-1 pairs are skipped)
  const std::vector<int> t{0, 0, 1, 1, 2, 3, 3, 3, -1};
  const std::vector<int> p{0, 1, 1, 1, 3, 3, 3, 2, 0};
  const ConfusionMatrix m = confusion_matrix(t, p, 4);
  EXPECT_EQ(m.total(), 8);
  EXPECT_EQ(m.at(0, 0), 1);
  EXPECT_EQ(m.at(0, 1), 1);
  EXPECT_EQ(m.at(1, 1), 2);
  EXPECT_EQ(m.at(2, 3), 1);
  EXPECT_EQ(m.at(3, 3), 2);
  EXPECT_EQ(m.at(3, 2), 1);
  // class 1: tp 2, fp 1 (a 0 predicted 1), fn 0 -> P 2/3, R 1, F1 0.8, IoU 2/3
  const BinaryMetrics c1 = m.one_vs_rest(1);
  EXPECT_EQ(c1.tp, 2);
  EXPECT_EQ(c1.fp, 1);
  EXPECT_EQ(c1.fn, 0);
  EXPECT_EQ(c1.tn, 5);
  EXPECT_DOUBLE_EQ(c1.f1(), 0.8);
  EXPECT_DOUBLE_EQ(c1.iou(), 2.0 / 3);
  // class 3: tp 2, fp 1 (the 2 predicted 3), fn 1 -> P 2/3, R 2/3
  const BinaryMetrics c3 = m.one_vs_rest(3);
  EXPECT_DOUBLE_EQ(c3.precision(), 2.0 / 3);
  EXPECT_DOUBLE_EQ(c3.recall(), 2.0 / 3);
  // class 2: tp 0 -> F1 0
  EXPECT_DOUBLE_EQ(m.one_vs_rest(2).f1(), 0.0);
}

TEST(RocAuc, HandCountedWithTies) {
  // positives 0.9, 0.5, 0.3 ; negatives 0.5, 0.2. Pairs (pos > neg): 0.9>0.5, 0.9>0.2, 0.5>0.2,
  // 0.5=0.5 (1/2), 0.3>0.2 ; 0.3<0.5 -> 4.5 of 6.
  EXPECT_DOUBLE_EQ(roc_auc({0.9, 0.5, 0.3, 0.5, 0.2}, {true, true, true, false, false}), 4.5 / 6);
  EXPECT_DOUBLE_EQ(roc_auc({0.1, 0.2, 0.8, 0.9}, {false, false, true, true}), 1.0);
  EXPECT_DOUBLE_EQ(roc_auc({0.5, 0.5, 0.5, 0.5}, {false, true, false, true}), 0.5);
  EXPECT_TRUE(std::isnan(roc_auc({0.1, 0.2}, {true, true})));
}

TEST(Xview2, Definition) {
  // harmonic mean of (1, 1, 0.5, 0.5) = 4 / (1 + 1 + 2 + 2) = 2/3 (up to the 1e-6 guard)
  EXPECT_NEAR(xview2_harmonic_mean({1, 1, 0.5, 0.5}), 2.0 / 3, 1e-5);
  EXPECT_NEAR(xview2_score(0.8, {1, 1, 0.5, 0.5}), 0.3 * 0.8 + 0.7 * 2.0 / 3, 1e-5);
  EXPECT_NEAR(xview2_harmonic_mean({0.0, 1, 1, 1}), 4.0 / (1e6 + 3), 1e-9);
}

TEST(Sweep, PickThreshold) {
  const std::vector<double> s{0.1, 0.4, 0.6, 0.8};
  const std::vector<bool> t{false, true, false, true};
  const auto sw = threshold_sweep(s, t, {0.0, 0.5, 0.7, 0.9});
  ASSERT_EQ(sw.size(), 4u);
  EXPECT_EQ(sw[0].counts.tp, 2);
  EXPECT_EQ(sw[0].counts.fp, 2);
  EXPECT_EQ(sw[2].counts.tp, 1);
  EXPECT_EQ(sw[2].counts.fp, 0);
  EXPECT_EQ(pick_threshold(sw, "precision", 1.0), 2);  // only t=0.7 has precision 1
  EXPECT_EQ(pick_threshold(sw, "recall", 1.0), 0);     // recall 1 only at t=0
  EXPECT_EQ(pick_threshold(sw, "f1", 0), 0);           // F1: 0.667 (t=0), 0.5, 0.667 -> lowest threshold
  EXPECT_EQ(pick_threshold(sw, "precision", 1.1), -1);
}

}  // namespace
}  // namespace aftermath
