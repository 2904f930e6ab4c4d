// IR-MAD normalisation (invariant pixels + orthogonal regression), histogram matching and the
// radiometry.method dispatch, on synthetic scenes with known radiometric maps.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "aftermath/core/error.hpp"
#include "aftermath/radiometry/normalisation.hpp"
#include "synthetic.hpp"

namespace aftermath {
namespace {

cv::Mat all_valid(const cv::Mat& like) { return cv::Mat(like.size(), CV_8U, cv::Scalar(255)); }

TEST(IrmadNormalisation, RecoversGainAndOffsetDespiteDestroyedBuildings) {
  test::SyntheticOptions o;
  o.width = o.height = 384;
  o.buildings = 40;
  o.destroyed_fraction = 0.5;
  o.gain = 1.3;
  o.offset = 20.0;
  o.noise = 1.0;
  const test::SyntheticPair s = test::make_synthetic_pair(o);
  IrmadModel model;
  std::int64_t invariant = 0;
  const LinearNormalisation n =
      fit_irmad_linear(s.pre, s.post, all_valid(s.pre[0]), 0.95, &model, &invariant);
  ASSERT_EQ(n.gain.size(), 3u);
  for (std::size_t b = 0; b < 3; ++b) {
    // post = 1.3 pre + 20 + noise, so pre = post / 1.3 - 20 / 1.3.
    EXPECT_NEAR(n.gain[b], 1.0 / 1.3, 0.01 * (1.0 / 1.3)) << b;
    EXPECT_NEAR(n.offset[b], -20.0 / 1.3, 1.0) << b;
  }
  EXPECT_TRUE(model.converged);
  EXPECT_GT(invariant, 1000);
}

TEST(IrmadNormalisation, FlatOrEmptyInputGivesTheIdentity) {
  const cv::Mat flat(32, 32, CV_32F, cv::Scalar(7.0));
  const LinearNormalisation n = fit_irmad_linear(
      {flat}, {flat.clone()}, cv::Mat(32, 32, CV_8U, cv::Scalar(0)), 0.95, nullptr, nullptr);
  EXPECT_EQ(n.gain, std::vector<double>{1.0});
  EXPECT_EQ(n.offset, std::vector<double>{0.0});
}

TEST(HistogramMatch, InvertsAMonotoneNonLinearMap) {
  test::SyntheticOptions o;
  o.width = o.height = 256;
  o.destroyed_fraction = 0.0;
  o.noise = 0.0;
  const test::SyntheticPair s = test::make_synthetic_pair(o);
  std::vector<cv::Mat> post;
  for (const auto& b : s.pre) {
    cv::Mat q(b.size(), CV_32F);
    for (int r = 0; r < b.rows; ++r) {
      for (int c = 0; c < b.cols; ++c)
        q.at<float>(r, c) = 300.0f * std::pow(b.at<float>(r, c) / 255.0f, 0.6f) + 12.0f;
    }
    post.push_back(q);
  }
  const HistogramMatch h = fit_histogram_match(s.pre, post, all_valid(post[0]));
  std::vector<cv::Mat> mapped = post;
  for (auto& m : mapped) m = m.clone();
  mapped[0].at<float>(0, 0) = std::numeric_limits<float>::quiet_NaN();
  aftermath::apply(h, mapped);
  EXPECT_TRUE(std::isnan(mapped[0].at<float>(0, 0)));
  mapped[0].at<float>(0, 0) = s.pre[0].at<float>(0, 0);
  for (std::size_t b = 0; b < mapped.size(); ++b) {
    cv::Mat err;
    cv::absdiff(mapped[b], s.pre[b], err);
    EXPECT_LT(cv::mean(err)[0], 0.5) << b;  // DN, on a 0..255 scene
  }
}

// apply_to_row is what apply() does to each row (a caller normalises rows while they are in
// the cache): the same values, bit for bit, for every method; and changes_values says when
// apply() is a no-op.
TEST(Normalisation, RowByRowGivesTheValuesOfTheWholeBands) {
  test::SyntheticOptions o;
  o.width = o.height = 96;
  o.gain = 1.2;
  o.offset = 7.0;
  const test::SyntheticPair s = test::make_synthetic_pair(o);
  const cv::Mat valid = all_valid(s.pre[0]);
  RadiometryConfig cfg;
  for (const char* m : {"none", "robust-linear", "irmad", "histogram"}) {
    cfg.method = m;
    const Normalisation n = fit_normalisation(cfg, s.pre, s.post, valid);
    std::vector<cv::Mat> whole, rows;
    for (const auto& b : s.post) {
      whole.push_back(b.clone());
      rows.push_back(b.clone());
    }
    rows[0].at<float>(3, 4) = std::numeric_limits<float>::quiet_NaN();
    whole[0].at<float>(3, 4) = std::numeric_limits<float>::quiet_NaN();
    aftermath::apply(n, whole);
    for (std::size_t b = 0; b < rows.size(); ++b) {
      for (int r = 0; r < rows[b].rows; ++r)
        apply_to_row(n, b, rows[b].ptr<float>(r), rows[b].cols);
      cv::Mat same;  // NaN compares unequal: the one NaN of band 0 is left out
      cv::compare(rows[b], whole[b], same, cv::CMP_EQ);
      EXPECT_EQ(cv::countNonZero(same), rows[b].rows * rows[b].cols - (b == 0 ? 1 : 0))
          << m << " band " << b;
    }
    EXPECT_TRUE(std::isnan(rows[0].at<float>(3, 4))) << m;
    EXPECT_EQ(changes_values(n), std::string(m) != "none") << m;
  }
  Normalisation identity;
  identity.method = "robust-linear";
  identity.linear.gain = {1.0, 1.0};
  identity.linear.offset = {0.0, 0.0};
  EXPECT_FALSE(changes_values(identity));
  identity.linear.offset[1] = 0.5;
  EXPECT_TRUE(changes_values(identity));
  float row[2] = {1, 2};
  try {
    apply_to_row(identity, 2, row, 2);  // a band the fit does not have
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::internal);
  }
}

TEST(Normalisation, MethodDispatch) {
  test::SyntheticOptions o;
  o.width = o.height = 128;
  o.gain = 1.1;
  o.offset = 5.0;
  o.destroyed_fraction = 0.0;  // dispatch only; robustness to change is tested above
  const test::SyntheticPair s = test::make_synthetic_pair(o);
  const cv::Mat valid = all_valid(s.pre[0]);
  RadiometryConfig cfg;
  cfg.method = "none";
  Normalisation n = fit_normalisation(cfg, s.pre, s.post, valid);
  std::vector<cv::Mat> post{s.post[0].clone()};
  n.linear = {};
  aftermath::apply(n, post);
  EXPECT_EQ(cv::norm(post[0], s.post[0], cv::NORM_INF), 0.0);
  for (const char* m : {"robust-linear", "irmad", "histogram"}) {
    cfg.method = m;
    n = fit_normalisation(cfg, s.pre, s.post, valid);
    EXPECT_EQ(n.method, m);
    std::vector<cv::Mat> p;
    for (const auto& b : s.post) p.push_back(b.clone());
    aftermath::apply(n, p);
    cv::Mat err;
    cv::absdiff(p[0], s.pre[0], err);
    EXPECT_LT(cv::mean(err)[0], 1.0) << m;  // the post noise: 1 DN sigma, mean |noise| 0.8 DN / 1.1
  }
  cfg.method = "magic";
  try {
    (void)fit_normalisation(cfg, s.pre, s.post, valid);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::usage);
  }
}

}  // namespace
}  // namespace aftermath
