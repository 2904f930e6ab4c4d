#include <gtest/gtest.h>

#include <cmath>
#include <utility>
#include <vector>

#include "aftermath/core/error.hpp"
#include "aftermath/detect/detector.hpp"
#include "aftermath/radiometry/normalisation.hpp"
#include "synthetic.hpp"
#include "threads.hpp"

namespace aftermath {
namespace {

struct Scene {
  test::SyntheticPair pair;
  BandPair bands;
};

Scene make_scene(double gain, double offset) {
  test::SyntheticOptions o;
  o.width = 512;
  o.height = 512;
  o.buildings = 40;
  o.destroyed_fraction = 0.3;
  o.noise = 1.0;
  o.gain = gain;
  o.offset = offset;
  Scene s;
  s.pair = test::make_synthetic_pair(o);
  s.bands.pre = s.pair.pre;
  s.bands.post = s.pair.post;
  s.bands.valid = cv::Mat(s.pair.pre[0].size(), CV_8U, cv::Scalar(255));
  return s;
}

/// The rows above `row` and the rows from `row` on, as two samples.
std::pair<BandPair, BandPair> split_at_row(const BandPair& p, int row) {
  BandPair top, bottom;
  for (std::size_t b = 0; b < p.pre.size(); ++b) {
    top.pre.push_back(p.pre[b].rowRange(0, row));
    top.post.push_back(p.post[b].rowRange(0, row));
    bottom.pre.push_back(p.pre[b].rowRange(row, p.pre[b].rows));
    bottom.post.push_back(p.post[b].rowRange(row, p.post[b].rows));
  }
  top.valid = p.valid.rowRange(0, row);
  bottom.valid = p.valid.rowRange(row, p.valid.rows);
  return {top, bottom};
}

/// Mean score inside destroyed and intact buildings, and the fraction >= 0.5 outside buildings.
struct Summary {
  double destroyed = 0, intact = 0, background_high = 0;
};

Summary summarise(const test::SyntheticPair& pair, const cv::Mat& score) {
  Summary s;
  int nd = 0, ni = 0;
  cv::Mat building(score.size(), CV_8U, cv::Scalar(0));
  for (const auto& b : pair.buildings) {
    const double m = cv::mean(score(b.rect))[0];
    if (b.destroyed) {
      s.destroyed += m;
      ++nd;
    } else {
      s.intact += m;
      ++ni;
    }
    building(b.rect).setTo(255);
  }
  s.destroyed /= std::max(nd, 1);
  s.intact /= std::max(ni, 1);
  cv::Mat background = building == 0;
  cv::Mat high = (score >= 0.5) & background;
  s.background_high = double(cv::countNonZero(high)) / std::max(1, cv::countNonZero(background));
  return s;
}

// These tests pin s = 3 sigmas (score 0.5) and no box averaging, the scale their bounds were
// written for; the defaults are exercised end to end by tests/unit/score/test_pipeline_acceptance.
DetectConfig sigma3() {
  DetectConfig c;
  c.cva_half_score_sigma = 3.0;
  c.cva_radius = 0;
  return c;
}

TEST(Cva, DestroyedBuildingsScoreHigh) {
  Scene s = make_scene(1.0, 0.0);
  auto det = make_detector(sigma3());
  EXPECT_EQ(det->name(), "cva");
  EXPECT_EQ(det->radius(), 0);
  det->fit({s.bands});
  const cv::Mat score = det->score(s.bands);
  ASSERT_EQ(score.type(), CV_32F);
  ASSERT_EQ(score.size(), s.bands.valid.size());
  const Summary m = summarise(s.pair, score);
  EXPECT_GT(m.destroyed, 0.8);
  EXPECT_LT(m.intact, 0.1);
  EXPECT_LT(m.background_high, 0.01);
  double lo, hi;
  cv::minMaxLoc(score, &lo, &hi);
  EXPECT_GE(lo, 0.0);
  EXPECT_LE(hi, 1.0);
}

TEST(Cva, AfterNormalisationOfGainAndOffset) {
  Scene s = make_scene(1.3, 10.0);
  const LinearNormalisation n = fit_robust_linear(s.bands.pre, s.bands.post, s.bands.valid);
  aftermath::apply(n, s.bands.post);
  auto det = make_detector(sigma3());
  det->fit({s.bands});
  const Summary m = summarise(s.pair, det->score(s.bands));
  EXPECT_GT(m.destroyed, 0.8);
  EXPECT_LT(m.intact, 0.1);
  EXPECT_GT(m.destroyed, 8 * m.intact);
  EXPECT_LT(m.background_high, 0.01);
}

TEST(Cva, GlobalOffsetIsNotChange) {
  // Without normalisation, a pure offset is absorbed by the median of d.
  Scene s = make_scene(1.0, 25.0);
  auto det = make_detector(sigma3());
  det->fit({s.bands});
  const Summary m = summarise(s.pair, det->score(s.bands));
  EXPECT_LT(m.intact, 0.1);
  EXPECT_LT(m.background_high, 0.01);
  EXPECT_GT(m.destroyed, 0.8);
}

TEST(Cva, TiledScoringEqualsWhole) {
  Scene s = make_scene(1.0, 0.0);
  auto det = make_detector(sigma3());
  det->fit({s.bands});
  const cv::Mat whole = det->score(s.bands);
  const cv::Rect r(100, 37, 130, 201);
  BandPair w;
  for (std::size_t b = 0; b < s.bands.pre.size(); ++b) {
    w.pre.push_back(s.bands.pre[b](r));
    w.post.push_back(s.bands.post[b](r));
  }
  w.valid = s.bands.valid(r);
  EXPECT_EQ(cv::norm(det->score(w), whole(r), cv::NORM_INF), 0.0);
}

TEST(Cva, SeveralSamplesFitLikeTheirUnion) {
  Scene s = make_scene(1.0, 0.0);
  auto whole = make_detector(sigma3());
  whole->fit({s.bands});
  auto split = make_detector(sigma3());
  const auto [top, bottom] = split_at_row(s.bands, 200);
  split->fit({top, bottom});
  EXPECT_EQ(cv::norm(whole->score(s.bands), split->score(s.bands), cv::NORM_INF), 0.0);
}

// The fit's bands and samples side by side (bodies on threads of their own, in reverse order)
// give the detector the serial fit gives: cva with and without box averaging, log-ratio, and
// an ensemble passing the ForEach on.
TEST(Cva, FitOnThreadsEqualsTheSerialFit) {
  Scene s = make_scene(1.2, 30.0);
  const auto [top, bottom] = split_at_row(s.bands, 200);
  for (const char* method : {"cva", "log-ratio", "ensemble"}) {
    for (const int radius : {0, 1}) {
      DetectConfig c = sigma3();
      c.method = method;
      c.cva_radius = radius;
      c.log_ratio_radius = radius;
      c.ensemble_cva = 1.0;
      c.ensemble_log_ratio = 1.0;
      auto serial = make_detector(c);
      serial->fit({top, bottom});
      auto parallel = make_detector(c);
      parallel->fit({top, bottom}, test::for_each_on_threads);
      EXPECT_EQ(cv::norm(serial->score(s.bands), parallel->score(s.bands), cv::NORM_INF), 0.0)
          << method << " radius " << radius;
    }
  }
}

TEST(Cva, InvalidPixelsScoreZero) {
  Scene s = make_scene(1.0, 0.0);
  s.bands.valid(cv::Rect(0, 0, 512, 256)).setTo(0);
  // Garbage under the invalid half must be ignored, in fit and in score.
  for (auto& b : s.bands.post) b(cv::Rect(0, 0, 512, 256)).setTo(std::nanf(""));
  auto det = make_detector(sigma3());
  det->fit({s.bands});
  const cv::Mat score = det->score(s.bands);
  EXPECT_EQ(cv::countNonZero(score(cv::Rect(0, 0, 512, 256))), 0);
  EXPECT_EQ(cv::countNonZero(score != score), 0);
  EXPECT_GT(cv::countNonZero(score(cv::Rect(0, 256, 512, 256)) > 0.5), 100);
}

TEST(Cva, ConstantScenesNeverNaN) {
  BandPair p;
  for (int b = 0; b < 3; ++b) {
    p.pre.push_back(cv::Mat(64, 64, CV_32F, cv::Scalar(100.0)));
    p.post.push_back(cv::Mat(64, 64, CV_32F, cv::Scalar(100.0)));
  }
  p.valid = cv::Mat(64, 64, CV_8U, cv::Scalar(255));
  auto det = make_detector(sigma3());
  det->fit({p});
  cv::Mat score = det->score(p);
  EXPECT_EQ(cv::countNonZero(score != score), 0);
  EXPECT_EQ(cv::countNonZero(score), 0);
  // A changed pixel in a constant scene scores (without NaN/inf) near 1.
  p.post[0].at<float>(5, 5) = 120.0f;
  score = det->score(p);
  EXPECT_EQ(cv::countNonZero(score != score), 0);
  EXPECT_GT(score.at<float>(5, 5), 0.99f);
  EXPECT_LE(score.at<float>(5, 5), 1.0f);
  // All-zero scene and no valid pixel at all.
  BandPair z = p;
  z.pre = {cv::Mat(8, 8, CV_32F, cv::Scalar(0.0))};
  z.post = {cv::Mat(8, 8, CV_32F, cv::Scalar(0.0))};
  z.valid = cv::Mat(8, 8, CV_8U, cv::Scalar(0));
  auto det2 = make_detector(sigma3());
  det2->fit({z});
  EXPECT_EQ(cv::countNonZero(det2->score(z)), 0);
}

TEST(Cva, HalfScoreSigma) {
  // Noise-free difference field with known scale: d in {-1, +1} (|d - median| = 1 everywhere).
  BandPair p;
  cv::Mat pre(1, 100, CV_32F, cv::Scalar(50.0)), post(1, 100, CV_32F);
  for (int c = 0; c < 100; ++c) post.at<float>(0, c) = (c % 2 == 0) ? 49.0f : 51.0f;
  p.pre = {pre};
  p.post = {post};
  p.valid = cv::Mat(1, 100, CV_8U, cv::Scalar(255));
  DetectConfig cfg;
  cfg.cva_half_score_sigma = 2.0;
  auto det = make_detector(cfg);
  det->fit({p});
  BandPair q = p;
  // sigma = 25th percentile of |d - median| / 0.31864 = 1 / 0.31864.
  q.post = {cv::Mat(1, 1, CV_32F, cv::Scalar(50.0 + 2.0 / 0.31864))};
  q.pre = {cv::Mat(1, 1, CV_32F, cv::Scalar(50.0))};
  q.valid = cv::Mat(1, 1, CV_8U, cv::Scalar(255));
  EXPECT_NEAR(det->score(q).at<float>(0, 0), 0.5, 1e-5);
}

TEST(Cva, UnknownMethodIsUsageError) {
  DetectConfig cfg;
  cfg.method = "nope";
  try {
    (void)make_detector(cfg);
    FAIL() << "expected an exception";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::usage);
    EXPECT_NE(std::string(e.what()).find("unknown detector"), std::string::npos);
  }
}

TEST(Cva, ScoreBeforeFitThrows) {
  auto det = make_detector(sigma3());
  BandPair p;
  p.pre = {cv::Mat(2, 2, CV_32F, cv::Scalar(0))};
  p.post = {cv::Mat(2, 2, CV_32F, cv::Scalar(0))};
  p.valid = cv::Mat(2, 2, CV_8U, cv::Scalar(255));
  EXPECT_THROW((void)det->score(p), Error);
}

}  // namespace
}  // namespace aftermath

namespace aftermath {
namespace {

TEST(Cva, BoxAveragedScoringIsTileIndependentGivenItsHalo) {
  test::SyntheticOptions o;
  o.width = o.height = 256;
  o.buildings = 20;
  const test::SyntheticPair pair = test::make_synthetic_pair(o);
  BandPair all{pair.pre, pair.post, cv::Mat(256, 256, CV_8U, cv::Scalar(255)), {}, {}};
  all.valid(cv::Rect(0, 0, 20, 256)).setTo(0);
  DetectConfig cfg;
  cfg.cva_radius = 2;
  auto det = make_detector(cfg);
  EXPECT_EQ(det->radius(), 2);
  det->fit({all});
  const cv::Mat whole = det->score(all);
  const cv::Rect core(60, 40, 100, 90), outer(58, 38, 104, 94);
  BandPair w;
  for (std::size_t b = 0; b < all.pre.size(); ++b) {
    w.pre.push_back(all.pre[b](outer).clone());
    w.post.push_back(all.post[b](outer).clone());
  }
  w.valid = all.valid(outer).clone();
  const cv::Mat tile = det->score(w);
  EXPECT_EQ(cv::norm(tile(cv::Rect(2, 2, 100, 90)), whole(core), cv::NORM_INF), 0.0);
}

}  // namespace
}  // namespace aftermath
