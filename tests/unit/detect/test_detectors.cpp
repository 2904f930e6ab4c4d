// Every detector against synthetic truth: change found, no change left alone, nodata never
// changed, tile-independent given its halo; plus ttest on speckled SAR-like stacks and irmad's
// convergence.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "aftermath/core/error.hpp"
#include "aftermath/detect/detector.hpp"
#include "aftermath/radiometry/irmad.hpp"
#include "synthetic.hpp"

namespace aftermath {
namespace {

const std::vector<std::string> kMethods{"cva",     "log-ratio", "irmad",   "ssim",
                                        "texture", "ttest",     "ensemble"};

DetectConfig config_for(const std::string& method) {
  DetectConfig c;
  c.method = method;
  return c;
}

BandPair as_pair(const test::SyntheticPair& s) {
  BandPair p;
  p.pre = s.pre;
  p.post = s.post;
  p.valid = cv::Mat(s.pre[0].size(), CV_8U, cv::Scalar(255));
  return p;
}

/// Probability that a random positive scores above a random negative (ties count half).
double auc(std::vector<float> pos, std::vector<float> neg) {
  std::sort(neg.begin(), neg.end());
  double wins = 0;
  for (float p : pos) {
    const auto lo = std::lower_bound(neg.begin(), neg.end(), p);
    const auto hi = std::upper_bound(neg.begin(), neg.end(), p);
    wins += static_cast<double>(lo - neg.begin()) + 0.5 * static_cast<double>(hi - lo);
  }
  return wins / (static_cast<double>(pos.size()) * static_cast<double>(neg.size()));
}

void expect_unit_range(const cv::Mat& s, const std::string& method) {
  ASSERT_EQ(s.type(), CV_32F) << method;
  for (int r = 0; r < s.rows; ++r) {
    for (int c = 0; c < s.cols; ++c) {
      const float v = s.at<float>(r, c);
      ASSERT_TRUE(std::isfinite(v) && v >= 0.0f && v <= 1.0f)
          << method << " at " << r << "," << c << ": " << v;
    }
  }
}

class EveryDetector : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryDetector, FindsDestroyedBuildings) {
  test::SyntheticOptions o;
  o.width = o.height = 384;
  o.buildings = 30;
  o.destroyed_fraction = 0.3;
  o.noise = 1.0;
  const test::SyntheticPair s = test::make_synthetic_pair(o);
  const BandPair p = as_pair(s);
  auto det = make_detector(config_for(GetParam()));
  det->fit({p});
  const cv::Mat score = det->score(p);
  expect_unit_range(score, GetParam());
  cv::Mat destroyed(score.size(), CV_8U, cv::Scalar(0)),
      building(score.size(), CV_8U, cv::Scalar(0));
  double destroyed_mean = 0;
  int nd = 0;
  for (const auto& b : s.buildings) {
    building(b.rect).setTo(255);
    if (!b.destroyed) continue;
    // The building's interior (the rim mixes rubble and ground at the box scale).
    const cv::Rect in(b.rect.x + 2, b.rect.y + 2, b.rect.width - 4, b.rect.height - 4);
    destroyed(in).setTo(255);
    destroyed_mean += cv::mean(score(in))[0];
    ++nd;
  }
  ASSERT_GT(nd, 0);
  destroyed_mean /= nd;
  std::vector<float> pos, neg;
  for (int r = 0; r < score.rows; ++r) {
    for (int c = 0; c < score.cols; ++c) {
      if (destroyed.at<std::uint8_t>(r, c)) pos.push_back(score.at<float>(r, c));
      // Unchanged: away (> radius + 2 px) from any building, so no box reaches a change.
      else if (!building.at<std::uint8_t>(r, c))
        neg.push_back(score.at<float>(r, c));
    }
  }
  const double a = auc(pos, neg);
  EXPECT_GE(a, 0.9) << GetParam();
  EXPECT_GE(destroyed_mean, 0.5) << GetParam();
  std::cout << GetParam() << ": AUC " << a << ", mean score in destroyed roofs " << destroyed_mean
            << "\n";
}

TEST_P(EveryDetector, LeavesNoChangeAlone) {
  test::SyntheticOptions o;
  o.width = o.height = 256;
  o.buildings = 20;
  o.destroyed_fraction = 0.0;
  o.noise = 1.0;
  const BandPair p = as_pair(test::make_synthetic_pair(o));
  auto det = make_detector(config_for(GetParam()));
  det->fit({p});
  const cv::Mat score = det->score(p);
  expect_unit_range(score, GetParam());
  // With s = 1.5, score 0.5 is m = 1.5 no-change sigmas: ~8% of Gaussian noise for 3 bands
  // (P(chi2_3 > 6.75)), ~7% one-sided (ssim). On additive noise the log scales (log-ratio,
  // texture) are heteroscedastic, so their standardised noise has heavier tails (12% and 16%
  // measured): the bound at 0.5 is 20%. Score 0.9 is m = 4.5 sigmas: rare for every detector.
  const double above_half = cv::countNonZero(score >= 0.5) / static_cast<double>(score.total());
  const double high = cv::countNonZero(score >= 0.9) / static_cast<double>(score.total());
  EXPECT_LE(above_half, 0.20) << GetParam();
  EXPECT_LE(high, 0.01) << GetParam();
  std::cout << GetParam() << ": no change, fraction >= 0.5 " << above_half << ", >= 0.9 " << high
            << "\n";
}

TEST_P(EveryDetector, NodataIsNeverChanged) {
  test::SyntheticOptions o;
  o.width = o.height = 192;
  o.buildings = 10;
  o.destroyed_fraction = 0.5;
  BandPair p = as_pair(test::make_synthetic_pair(o));
  // An invalid block whose post values are wild, and non-finite values at "valid" pixels.
  const cv::Rect hole(40, 60, 50, 40);
  p.valid(hole).setTo(0);
  for (auto& b : p.post) b(hole).setTo(1e6);
  p.post[0].at<float>(10, 10) = std::numeric_limits<float>::quiet_NaN();
  p.pre[1].at<float>(150, 20) = std::numeric_limits<float>::infinity();
  auto det = make_detector(config_for(GetParam()));
  det->fit({p});
  std::vector<cv::Mat> layers;
  const cv::Mat score = det->score_with_layers(p, layers);
  expect_unit_range(score, GetParam());
  EXPECT_EQ(cv::countNonZero(score(hole)), 0) << GetParam();
  EXPECT_EQ(score.at<float>(10, 10), 0.0f) << GetParam();
  EXPECT_EQ(score.at<float>(150, 20), 0.0f) << GetParam();
  ASSERT_EQ(layers.size(), det->extra_layers().size()) << GetParam();
  for (const auto& l : layers) {
    EXPECT_EQ(l.size(), score.size());
    // Extra layers carry no value where invalid.
    EXPECT_EQ(cv::countNonZero(l(hole) == l(hole)), 0) << GetParam();
  }
}

TEST_P(EveryDetector, TileScoresEqualWholeScoresGivenTheHalo) {
  test::SyntheticOptions o;
  o.width = o.height = 200;
  o.buildings = 12;
  BandPair all = as_pair(test::make_synthetic_pair(o));
  all.valid(cv::Rect(0, 0, 15, 200)).setTo(0);
  const DetectConfig cfg = config_for(GetParam());
  auto det = make_detector(cfg);
  EXPECT_EQ(det->radius(), detect_radius(cfg)) << GetParam();
  det->fit({all});
  const cv::Mat whole = det->score(all);
  const int r = det->radius();
  const cv::Rect core(50, 40, 90, 80), outer(50 - r, 40 - r, 90 + 2 * r, 80 + 2 * r);
  BandPair w;
  for (std::size_t b = 0; b < all.pre.size(); ++b) {
    w.pre.push_back(all.pre[b](outer).clone());
    w.post.push_back(all.post[b](outer).clone());
  }
  w.valid = all.valid(outer).clone();
  const cv::Mat tile = det->score(w);
  EXPECT_EQ(cv::norm(tile(cv::Rect(r, r, 90, 80)), whole(core), cv::NORM_INF), 0.0) << GetParam();
}

TEST_P(EveryDetector, LayersMatchTheConfigListing) {
  const DetectConfig cfg = config_for(GetParam());
  const auto listed = detector_layers(cfg);
  const auto made = make_detector(cfg)->extra_layers();
  ASSERT_EQ(listed.size(), made.size());
  for (std::size_t i = 0; i < listed.size(); ++i) EXPECT_EQ(listed[i].name, made[i].name);
}

INSTANTIATE_TEST_SUITE_P(Detect, EveryDetector, ::testing::ValuesIn(kMethods),
                         [](const auto& info) {
                           std::string n = info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

// ---- ttest on speckled SAR-like stacks ------------------------------------------------------

/// A SAR-like scene in dB: backscatter sigma0 (smooth ground, bright blocks) times 4-look gamma
/// speckle, independent per scene. Blocks listed in `changed` lose 6 dB (collapsed buildings).
std::vector<cv::Mat> sar_scene(const cv::Mat& sigma0, const std::vector<cv::Rect>& changed,
                               unsigned seed) {
  std::mt19937 rng(seed);
  std::gamma_distribution<float> speckle(4.0f, 0.25f);  // mean 1, 4 looks
  cv::Mat db(sigma0.size(), CV_32F);
  cv::Mat s = sigma0.clone();
  for (const auto& r : changed) s(r) *= 0.25f;  // -6 dB
  for (int y = 0; y < db.rows; ++y) {
    for (int x = 0; x < db.cols; ++x)
      db.at<float>(y, x) = 10.0f * std::log10(s.at<float>(y, x) * speckle(rng));
  }
  return {db};
}

TEST(Ttest, FindsChangedBlocksInSpeckledStacks) {
  const int size = 256;
  cv::Mat sigma0 = test::make_texture(size, size, 7);
  sigma0 = sigma0 / 255.0f * 0.1f + 0.02f;  // -17..-9 dB ground
  std::vector<cv::Rect> blocks, changed, unchanged;
  for (int by = 0; by < 4; ++by) {
    for (int bx = 0; bx < 4; ++bx) {
      const cv::Rect r(16 + bx * 60, 16 + by * 60, 28, 28);
      sigma0(r).setTo(0.5f);  // -3 dB buildings
      ((bx + by) % 2 == 0 ? changed : unchanged).push_back(r);
    }
  }
  BandPair stack;
  stack.pre = sar_scene(sigma0, {}, 1);
  stack.more_pre = {sar_scene(sigma0, {}, 2), sar_scene(sigma0, {}, 3)};
  stack.post = sar_scene(sigma0, changed, 4);
  stack.more_post = {sar_scene(sigma0, changed, 5)};
  stack.valid = cv::Mat(size, size, CV_8U, cv::Scalar(255));
  DetectConfig cfg = config_for("ttest");
  auto det = make_detector(cfg);
  det->fit({stack});
  std::vector<cv::Mat> layers;
  const cv::Mat score = det->score_with_layers(stack, layers);
  expect_unit_range(score, "ttest");
  ASSERT_EQ(layers.size(), 1u);
  const auto report = det->fit_report();
  ASSERT_EQ(report.size(), 2u);
  EXPECT_EQ(report[0].second[0], 3.0);
  EXPECT_EQ(report[1].second[0], 2.0);
  for (const auto& r : changed) {
    const cv::Rect in(r.x + 2, r.y + 2, r.width - 4, r.height - 4);
    EXPECT_GE(cv::mean(score(in))[0], 0.8) << "changed block at " << r.x << "," << r.y;
    EXPECT_LT(cv::mean(layers[0](in))[0], -3.0) << "t of a 6 dB loss is strongly negative";
  }
  for (const auto& r : unchanged) {
    EXPECT_LT(cv::mean(score(r))[0], 0.3) << "unchanged block at " << r.x << "," << r.y;
  }
  // Whole scene at score 0.8 (m = 3: |z| >= 3, two-sided p = 0.0027 for one band): pixels of
  // changed blocks vs the pixels farther than the box radius from any change.
  cv::Mat truth(size, size, CV_8U, cv::Scalar(0)), near(size, size, CV_8U, cv::Scalar(0));
  for (const auto& r : changed) {
    truth(r).setTo(255);
    near(cv::Rect(r.x - cfg.ttest_radius, r.y - cfg.ttest_radius, r.width + 2 * cfg.ttest_radius,
                  r.height + 2 * cfg.ttest_radius))
        .setTo(255);
  }
  const cv::Mat found = score >= 0.8;
  const double recall =
      cv::countNonZero(found & truth) / static_cast<double>(cv::countNonZero(truth));
  const double false_alarm =
      cv::countNonZero(found & ~near) / static_cast<double>(cv::countNonZero(~near));
  EXPECT_GE(recall, 0.9);
  EXPECT_LE(false_alarm, 0.01);
  std::cout << "ttest 3 pre + 2 post: recall " << recall << ", false alarm rate " << false_alarm
            << "\n";
}

TEST(Ttest, OneSampleASideIsAClearUsageError) {
  DetectConfig cfg = config_for("ttest");
  cfg.ttest_radius = 0;
  test::SyntheticOptions o;
  o.width = o.height = 64;
  auto det = make_detector(cfg);
  try {
    det->fit({as_pair(test::make_synthetic_pair(o))});
    FAIL() << "expected a usage error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::usage);
    EXPECT_NE(std::string(e.what()).find("ttest_radius"), std::string::npos) << e.what();
  }
}

// ---- irmad ----------------------------------------------------------------------------------

TEST(Irmad, ConvergesAndReportsIterationsAndCorrelations) {
  test::SyntheticOptions o;
  o.width = o.height = 256;
  o.buildings = 25;
  o.destroyed_fraction = 0.4;
  o.gain = 1.2;
  o.offset = 15.0;
  o.noise = 2.0;
  const BandPair p = as_pair(test::make_synthetic_pair(o));
  auto det = make_detector(config_for("irmad"));
  det->fit({p});
  const auto report = det->fit_report();
  auto value = [&](const std::string& key) {
    for (const auto& [k, v] : report) {
      if (k == key) return v;
    }
    ADD_FAILURE() << "no " << key;
    return std::vector<double>{};
  };
  const auto iterations = value("irmad_iterations");
  const auto rho = value("irmad_canonical_correlations");
  const auto change = value("irmad_correlation_change");
  ASSERT_EQ(iterations.size(), 1u);
  EXPECT_EQ(value("irmad_converged"), std::vector<double>{1.0});
  EXPECT_GT(iterations[0], 1.0);
  EXPECT_LT(iterations[0], 100.0);
  ASSERT_EQ(rho.size(), 3u);
  EXPECT_TRUE(std::is_sorted(rho.begin(), rho.end()));
  for (double r : rho) EXPECT_TRUE(r >= 0.0 && r <= 1.0) << r;
  EXPECT_GT(rho.back(), 0.95);  // a gain and offset do not decorrelate the scenes
  ASSERT_EQ(change.size(), static_cast<std::size_t>(iterations[0]));
  EXPECT_TRUE(std::isnan(change.front()));
  EXPECT_LT(change.back(), DetectConfig{}.irmad_tolerance);
  std::cout << "irmad: " << iterations[0] << " iterations, correlations " << rho[0] << " " << rho[1]
            << " " << rho[2] << "\n";
}

TEST(Irmad, ChiSquareSurvivalMatchesTables) {
  // Upper 5% and 1% points of chi-square with 1..5 degrees of freedom.
  const double p05[] = {3.841459, 5.991465, 7.814728, 9.487729, 11.070498};
  const double p01[] = {6.634897, 9.210340, 11.344867, 13.276704, 15.086272};
  for (int k = 1; k <= 5; ++k) {
    EXPECT_NEAR(chi_square_sf(p05[k - 1], k), 0.05, 1e-6) << k;
    EXPECT_NEAR(chi_square_sf(p01[k - 1], k), 0.01, 1e-6) << k;
  }
  EXPECT_EQ(chi_square_sf(0.0, 3), 1.0);
  EXPECT_EQ(chi_square_sf(1e6, 3), 0.0);
}

TEST(Irmad, NoChangeProbabilityLayerIsSmallOnlyWhereChanged) {
  test::SyntheticOptions o;
  o.width = o.height = 256;
  o.buildings = 25;
  o.destroyed_fraction = 0.4;
  const test::SyntheticPair s = test::make_synthetic_pair(o);
  const BandPair p = as_pair(s);
  auto det = make_detector(config_for("irmad"));
  det->fit({p});
  std::vector<cv::Mat> layers;
  (void)det->score_with_layers(p, layers);
  ASSERT_EQ(layers.size(), 1u);
  for (const auto& b : s.buildings) {
    const double m = cv::mean(layers[0](b.rect))[0];
    if (b.destroyed) {
      EXPECT_LT(m, 0.05);
    }
  }
}

TEST(Ensemble, IsTheWeightedMeanOfItsMembers) {
  test::SyntheticOptions o;
  o.width = o.height = 128;
  o.buildings = 8;
  const BandPair p = as_pair(test::make_synthetic_pair(o));
  DetectConfig cfg = config_for("ensemble");
  cfg.ensemble_cva = 3;
  cfg.ensemble_irmad = 0;
  cfg.ensemble_ssim = 1;
  auto ens = make_detector(cfg);
  auto cva = make_detector(config_for("cva"));
  auto ssim = make_detector(config_for("ssim"));
  ens->fit({p});
  cva->fit({p});
  ssim->fit({p});
  const cv::Mat expected = cva->score(p) * 0.75 + ssim->score(p) * 0.25;
  EXPECT_LT(cv::norm(ens->score(p), expected, cv::NORM_INF), 1e-6);
  EXPECT_EQ(ens->radius(), std::max(cva->radius(), ssim->radius()));
}

}  // namespace
}  // namespace aftermath

namespace aftermath {
namespace {

TEST(EveryDetectorEmpty, AllNodataSamplesScoreZeroEverywhere) {
  for (const auto& method : kMethods) {
    BandPair p;
    for (int b = 0; b < 3; ++b) {
      p.pre.push_back(cv::Mat(40, 40, CV_32F, cv::Scalar(10.0 + b)));
      p.post.push_back(cv::Mat(40, 40, CV_32F, cv::Scalar(90.0 - b)));
    }
    p.valid = cv::Mat(40, 40, CV_8U, cv::Scalar(0));
    auto det = make_detector(config_for(method));
    ASSERT_NO_THROW(det->fit({p})) << method;
    EXPECT_EQ(cv::countNonZero(det->score(p)), 0) << method;
  }
}

}  // namespace
}  // namespace aftermath
