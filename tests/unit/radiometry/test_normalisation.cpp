#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "aftermath/radiometry/normalisation.hpp"
#include "synthetic.hpp"
#include "threads.hpp"

namespace aftermath {
namespace {

cv::Mat all_valid(cv::Size s) { return cv::Mat(s, CV_8U, cv::Scalar(255)); }

/// 30% of the buildings destroyed and post = 1.3 pre + 10 (the synthetic defaults otherwise).
test::SyntheticPair changed_pair() {
  test::SyntheticOptions o;
  o.gain = 1.3;
  o.offset = 10.0;
  return test::make_synthetic_pair(o);
}

TEST(RobustLinear, MapsGainAndOffsetBack) {
  test::SyntheticOptions o;
  o.width = 384;
  o.height = 384;
  o.buildings = 30;
  o.destroyed_fraction = 0.0;
  o.noise = 1.0;
  o.gain = 1.3;
  o.offset = 10.0;
  auto pair = test::make_synthetic_pair(o);
  const cv::Mat valid = all_valid(pair.pre[0].size());
  const LinearNormalisation n = fit_robust_linear(pair.pre, pair.post, valid);
  ASSERT_EQ(n.gain.size(), 3u);
  ASSERT_EQ(n.offset.size(), 3u);
  for (std::size_t b = 0; b < 3; ++b) {
    // The fitted map inverts post = 1.3 pre + 10: gain ~ 1/1.3 within 1%. The offset of a
    // median match moves with any gain error times the level (~150 DN here), so it is checked
    // on the noise-free pair below; here the mapped values must match within 1% of the level.
    EXPECT_NEAR(n.gain[b] * 1.3, 1.0, 0.01) << "band " << b;
    EXPECT_NEAR(n.offset[b], -10.0 / 1.3, 0.01 * 110.0) << "band " << b;
    EXPECT_NEAR(1.0 / n.gain[b], 1.3, 0.013);
  }
  aftermath::apply(n, pair.post);
  for (std::size_t b = 0; b < 3; ++b) {
    cv::Mat diff = pair.post[b] - pair.pre[b];
    cv::Scalar mean, sd;
    cv::meanStdDev(diff, mean, sd);
    EXPECT_NEAR(mean[0], 0.0, 0.3);
    EXPECT_LT(sd[0], 1.2);  // the noise, 1 / 1.3, plus a little fit error
  }
}

TEST(RobustLinear, ChangedContentDoesNotBiasTheFit) {
  // 30% of the buildings destroyed: a plain median/MAD match is off by ~2% in gain (bright roofs
  // then differ by ~3 DN); the refinement on unchanged pixels removes that.
  const auto pair = changed_pair();
  const LinearNormalisation n = fit_robust_linear(pair.pre, pair.post, all_valid(pair.pre[0].size()));
  for (std::size_t b = 0; b < 3; ++b) {
    EXPECT_NEAR(n.gain[b] * 1.3, 1.0, 0.005) << "band " << b;
    const double roof = 200.0 + 10.0 * double(b);
    EXPECT_NEAR(n.gain[b] * (1.3 * roof + 10.0) + n.offset[b], roof, 0.5) << "band " << b;
    const double ground = 110.0;
    EXPECT_NEAR(n.gain[b] * (1.3 * ground + 10.0) + n.offset[b], ground, 0.5) << "band " << b;
  }
}

// The per-band statistics and the per-pixel passes in pieces (bodies on threads of their own, in
// reverse order) give the serial fit's values exactly: on windows of a larger image (rows not
// contiguous, pieces crossing rows), with invalid and non-finite pixels and changed content.
TEST(RobustLinear, FitOnThreadsEqualsTheSerialFit) {
  auto pair = changed_pair();
  const cv::Rect roi(3, 5, 301, 407);  // 122 507 px: eight pieces, most starting mid-row
  std::vector<cv::Mat> pre, post;
  for (std::size_t b = 0; b < pair.pre.size(); ++b) {
    pre.push_back(pair.pre[b](roi));
    post.push_back(pair.post[b](roi));
  }
  cv::Mat valid = all_valid(pair.pre[0].size())(roi);
  valid(cv::Rect(0, 0, 40, 40)).setTo(0);
  post[1].at<float>(100, 100) = std::nanf("");
  const LinearNormalisation serial = fit_robust_linear(pre, post, valid);
  const LinearNormalisation parallel =
      fit_robust_linear(pre, post, valid, test::for_each_on_threads);
  ASSERT_EQ(serial.gain.size(), 3u);
  EXPECT_EQ(parallel.gain, serial.gain);
  EXPECT_EQ(parallel.offset, serial.offset);
  EXPECT_NEAR(serial.gain[0] * 1.3, 1.0, 0.005);
}

TEST(RobustLinear, ExactWithoutNoise) {
  test::SyntheticOptions o;
  o.width = 256;
  o.height = 256;
  o.noise = 0.0;
  o.destroyed_fraction = 0.0;
  o.gain = 0.8;
  o.offset = -5.0;
  auto pair = test::make_synthetic_pair(o);
  const LinearNormalisation n = fit_robust_linear(pair.pre, pair.post, all_valid(pair.pre[0].size()));
  for (std::size_t b = 0; b < pair.pre.size(); ++b) {
    EXPECT_NEAR(n.gain[b], 1.0 / 0.8, 1e-4);
    EXPECT_NEAR(n.offset[b], 5.0 / 0.8, 1e-2);
  }
}

TEST(RobustLinear, OnlyValidPixelsCount) {
  cv::Mat pre(64, 64, CV_32F), post(64, 64, CV_32F);
  cv::RNG rng(3);
  rng.fill(pre, cv::RNG::UNIFORM, 0.0, 100.0);
  post = pre * 2.0 + 1.0;
  cv::Mat valid = all_valid(pre.size());
  // Garbage in invalid pixels must not move the fit.
  post(cv::Rect(0, 0, 64, 20)).setTo(1e6);
  valid(cv::Rect(0, 0, 64, 20)).setTo(0);
  const LinearNormalisation n = fit_robust_linear({pre}, {post}, valid);
  EXPECT_NEAR(n.gain[0], 0.5, 1e-5);
  EXPECT_NEAR(n.offset[0], -0.5, 1e-3);
}

TEST(RobustLinear, ConstantBandGivesMedianOffsetNoNaN) {
  cv::Mat pre(32, 32, CV_32F), post(32, 32, CV_32F, cv::Scalar(42.0));
  cv::RNG rng(5);
  rng.fill(pre, cv::RNG::UNIFORM, 0.0, 100.0);
  cv::Mat pre_const(32, 32, CV_32F, cv::Scalar(40.0));
  const LinearNormalisation n = fit_robust_linear({pre, pre_const}, {post, post.clone()}, all_valid(pre.size()));
  for (std::size_t b = 0; b < 2; ++b) {
    EXPECT_TRUE(std::isfinite(n.gain[b]));
    EXPECT_TRUE(std::isfinite(n.offset[b]));
    EXPECT_DOUBLE_EQ(n.gain[b], 1.0);
  }
  EXPECT_DOUBLE_EQ(n.offset[1], -2.0);
  std::vector<cv::Mat> bands{post.clone(), post.clone()};
  aftermath::apply(n, bands);
  EXPECT_EQ(cv::countNonZero(bands[0] != bands[0]), 0);  // no NaN
  EXPECT_FLOAT_EQ(bands[1].at<float>(7, 7), 40.0f);
}

TEST(RobustLinear, NoValidPixelIsIdentity) {
  cv::Mat pre(16, 16, CV_32F, cv::Scalar(10.0)), post(16, 16, CV_32F, cv::Scalar(99.0));
  const cv::Mat valid(16, 16, CV_8U, cv::Scalar(0));
  const LinearNormalisation n = fit_robust_linear({pre, pre}, {post, post}, valid);
  ASSERT_EQ(n.gain.size(), 2u);
  for (std::size_t b = 0; b < 2; ++b) {
    EXPECT_EQ(n.gain[b], 1.0);
    EXPECT_EQ(n.offset[b], 0.0);
  }
  std::vector<cv::Mat> bands{post.clone()};
  aftermath::apply(LinearNormalisation{{1.0}, {0.0}}, bands);
  EXPECT_EQ(cv::norm(bands[0], post, cv::NORM_INF), 0.0);
}

TEST(RobustLinear, ExactMedianEvenCount) {
  // pre = {1, 2, 3, 4} (median 2.5, MAD 1), post = {0, 0, 2, 2} (median 1, MAD 1): gain 1, offset 1.5.
  cv::Mat pre = (cv::Mat_<float>(1, 4) << 1, 2, 3, 4);
  cv::Mat post = (cv::Mat_<float>(1, 4) << 0, 0, 2, 2);
  const LinearNormalisation n = fit_robust_linear({pre}, {post}, all_valid(pre.size()));
  EXPECT_DOUBLE_EQ(n.gain[0], 1.0);
  EXPECT_DOUBLE_EQ(n.offset[0], 1.5);
}

TEST(RobustLinear, ApplyInPlace) {
  cv::Mat post = (cv::Mat_<float>(1, 3) << 0, 1, 2);
  std::vector<cv::Mat> bands{post};
  aftermath::apply(LinearNormalisation{{2.0}, {3.0}}, bands);
  EXPECT_FLOAT_EQ(post.at<float>(0, 0), 3.0f);  // shares data: modified in place
  EXPECT_FLOAT_EQ(post.at<float>(0, 2), 7.0f);
}

}  // namespace
}  // namespace aftermath
