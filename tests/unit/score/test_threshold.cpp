#include <gtest/gtest.h>

#include "aftermath/core/error.hpp"
#include "aftermath/score/threshold.hpp"

namespace aftermath {
namespace {

TEST(ScoreHistogram, BinsOnlyValidPixels) {
  cv::Mat score = (cv::Mat_<float>(1, 6) << 0.0f, 0.5f, 1.0f, 0.9999f, 0.25f, 0.7f);
  cv::Mat valid = (cv::Mat_<std::uint8_t>(1, 6) << 255, 255, 255, 255, 255, 0);
  ScoreHistogram h;
  h.add(score, valid);
  EXPECT_EQ(h.total(), 5);
  EXPECT_EQ(h.counts[0], 1);
  EXPECT_EQ(h.counts[512], 1);
  EXPECT_EQ(h.counts[1023], 2);
  EXPECT_EQ(h.counts[256], 1);
  ScoreHistogram g;
  g.add(score, valid);
  g.merge(h);
  EXPECT_EQ(g.total(), 10);
  EXPECT_EQ(g.counts[1023], 4);
}

TEST(Otsu, BimodalFallsBetweenModes) {
  ScoreHistogram h;
  cv::RNG rng(11);
  cv::Mat a(200, 200, CV_32F), b(100, 100, CV_32F);
  rng.fill(a, cv::RNG::NORMAL, 0.1, 0.03);
  rng.fill(b, cv::RNG::NORMAL, 0.8, 0.05);
  cv::min(cv::max(a, 0.0), 1.0, a);
  cv::min(cv::max(b, 0.0), 1.0, b);
  h.add(a, cv::Mat(a.size(), CV_8U, cv::Scalar(255)));
  h.add(b, cv::Mat(b.size(), CV_8U, cv::Scalar(255)));
  const double t = otsu_threshold(h);
  EXPECT_GT(t, 0.25);
  EXPECT_LT(t, 0.65);
}

TEST(Otsu, TwoSpikesSplitInTheGap) {
  ScoreHistogram h;
  h.counts[100] = 50;
  h.counts[900] = 10;
  const double t = otsu_threshold(h);
  EXPECT_GT(t, 100.0 / 1024);
  EXPECT_LE(t, 900.0 / 1024);
  EXPECT_NEAR(t, 0.49, 0.02);  // middle of the gap
}

TEST(Otsu, EmptyOrSingleValuedIsHalf) {
  ScoreHistogram h;
  EXPECT_EQ(otsu_threshold(h), 0.5);
  h.counts[300] = 1000;
  EXPECT_EQ(otsu_threshold(h), 0.5);
}

TEST(Otsu, ThresholdSeparatesExactlyAtBinEdge) {
  // Adjacent bins: the threshold is the upper edge of the lower one, and the mask rule
  // score >= t puts the upper bin (and only it) in the changed class.
  ScoreHistogram h;
  h.counts[400] = 10;
  h.counts[401] = 10;
  const double t = otsu_threshold(h);
  EXPECT_DOUBLE_EQ(t, 401.0 / 1024);
  cv::Mat score = (cv::Mat_<float>(1, 2) << 400.5f / 1024, 401.0f / 1024);
  cv::Mat valid(1, 2, CV_8U, cv::Scalar(255));
  cv::Mat m = damage_mask(score, valid, t, 0);
  EXPECT_EQ(m.at<std::uint8_t>(0, 0), kMaskUnchanged);
  EXPECT_EQ(m.at<std::uint8_t>(0, 1), kMaskChanged);
}

TEST(ResolveThreshold, FixedOtsuAndUnknown) {
  ScoreHistogram h;
  h.counts[100] = 50;
  h.counts[900] = 10;
  ThresholdConfig c;
  c.method = "fixed";
  c.value = 0.37;
  EXPECT_EQ(resolve_threshold(c, h), 0.37);
  c.method = "otsu";
  EXPECT_EQ(resolve_threshold(c, h), otsu_threshold(h));
  c.method = "magic";
  try {
    (void)resolve_threshold(c, h);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::usage);
  }
}

TEST(DamageMask, NeverMarksInvalidPixels) {
  cv::Mat score(50, 50, CV_32F, cv::Scalar(0.9));
  cv::Mat valid(50, 50, CV_8U, cv::Scalar(255));
  valid(cv::Rect(10, 10, 20, 20)).setTo(0);
  for (int r : {0, 1, 3}) {
    cv::Mat m = damage_mask(score, valid, 0.5, r);
    ASSERT_EQ(m.type(), CV_8U);
    EXPECT_EQ(cv::countNonZero(m(cv::Rect(10, 10, 20, 20)) != kMaskInvalid), 0) << r;
    EXPECT_EQ(cv::countNonZero(m == kMaskInvalid), 400) << r;
    EXPECT_EQ(cv::countNonZero(m == kMaskChanged), 2500 - 400) << r;
  }
  // Threshold 0 still does not mark invalid pixels.
  cv::Mat m0 = damage_mask(cv::Mat(50, 50, CV_32F, cv::Scalar(0.0)), valid, 0.0, 1);
  EXPECT_EQ(cv::countNonZero(m0 == kMaskChanged), 2500 - 400);
  EXPECT_EQ(cv::countNonZero(m0 == kMaskInvalid), 400);
}

TEST(DamageMask, OpeningRemovesIsolatedPixels) {
  cv::Mat score(40, 40, CV_32F, cv::Scalar(0.1));
  cv::Mat valid(40, 40, CV_8U, cv::Scalar(255));
  score.at<float>(5, 5) = 0.9f;                       // isolated speck
  score(cv::Rect(20, 20, 10, 10)).setTo(0.9);         // a real blob
  cv::Mat no_open = damage_mask(score, valid, 0.5, 0);
  EXPECT_EQ(no_open.at<std::uint8_t>(5, 5), kMaskChanged);
  EXPECT_EQ(cv::countNonZero(no_open == kMaskChanged), 101);
  cv::Mat opened = damage_mask(score, valid, 0.5, 1);
  EXPECT_EQ(opened.at<std::uint8_t>(5, 5), kMaskUnchanged);
  // OpenCV's 3x3 ellipse is a cross: the opening keeps the 10x10 square but its four corners.
  EXPECT_EQ(cv::countNonZero(opened == kMaskChanged), 96);
  EXPECT_EQ(cv::countNonZero(opened(cv::Rect(21, 21, 8, 8)) == kMaskChanged), 64);
  EXPECT_EQ(cv::countNonZero(opened == kMaskInvalid), 0);
}

TEST(DamageMask, ThresholdIsInclusive) {
  cv::Mat score = (cv::Mat_<float>(1, 3) << 0.49f, 0.5f, 0.51f);
  cv::Mat m = damage_mask(score, cv::Mat(1, 3, CV_8U, cv::Scalar(255)), 0.5, 0);
  EXPECT_EQ(m.at<std::uint8_t>(0, 0), kMaskUnchanged);
  EXPECT_EQ(m.at<std::uint8_t>(0, 1), kMaskChanged);
  EXPECT_EQ(m.at<std::uint8_t>(0, 2), kMaskChanged);
}

}  // namespace
}  // namespace aftermath
