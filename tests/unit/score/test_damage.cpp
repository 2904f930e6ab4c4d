// Issue 5: per-feature statistics that do not depend on tiling (quantiles, misregistration, line
// samples), the xBD and UNOSAT schemes with three operating points, and damage sites.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <opencv2/imgproc.hpp>

#include "aftermath/core/error.hpp"
#include "aftermath/score/footprint_accumulator.hpp"
#include "aftermath/score/sites.hpp"
#include "aftermath/score/threshold.hpp"

namespace aftermath {
namespace {

Footprint rect(std::int64_t id, double x0, double y0, double x1, double y1) {
  Footprint f;
  f.id = id;
  f.rings = {{{x0, y0}, {x1, y0}, {x1, y1}, {x0, y1}}};
  finalize_geometry(f);
  return f;
}

struct Scene {
  cv::Mat codes, valid, mask, misregistration;
};

Scene random_scene(int w, int h, unsigned seed) {
  Scene s;
  cv::RNG rng(seed);
  cv::Mat score(h, w, CV_32F);
  rng.fill(score, cv::RNG::UNIFORM, 0.0, 1.0);
  cv::Mat u(h, w, CV_32F);
  rng.fill(u, cv::RNG::UNIFORM, 0.0, 1.0);
  s.valid = u < 0.9f;
  s.codes = encode_scores(score, s.valid);
  s.mask = damage_mask_from_codes(s.codes, 0.6, 0);
  s.misregistration.create(h, w, CV_32F);
  rng.fill(s.misregistration, cv::RNG::UNIFORM, 0.0, 2.0);
  return s;
}

/// Everything the accumulator gives for `features` on a tile grid of `tile_size`.
std::vector<FeatureResult> results_on_tiles(const std::vector<Footprint>& fs, const Scene& s,
                                            int tile_size, const DamageConfig& cfg = {}) {
  const TileGrid grid(s.codes.cols, s.codes.rows, tile_size, 0);
  const FootprintIndex index(fs, grid);
  FootprintAccumulator acc(fs.size(), index);
  for (int i = 0; i < grid.count(); ++i) {
    const Tile t = grid.tile(i);
    const cv::Rect r = t.core.rect();
    acc.add(accumulate_tile(fs, index.in_tile(i), t,
                            TileLayers{s.codes(r), s.valid(r), s.mask(r), s.misregistration(r)}));
  }
  return acc.finalize(fs, cfg);
}

/// Even-odd crossing test, in double precision.
bool inside_ring(const std::vector<cv::Point2d>& ring, cv::Point2d p) {
  bool in = false;
  for (std::size_t i = 0, j = ring.size() - 1; i < ring.size(); j = i++) {
    const cv::Point2d a = ring[i], b = ring[j];
    if ((a.y <= p.y) != (b.y <= p.y) && p.x < a.x + (p.y - a.y) * (b.x - a.x) / (b.y - a.y))
      in = !in;
  }
  return in;
}

void expect_same(const FeatureResult& a, const FeatureResult& b) {
  EXPECT_EQ(a.sums.inside, b.sums.inside);
  EXPECT_EQ(a.sums.valid, b.sums.valid);
  EXPECT_EQ(a.sums.changed, b.sums.changed);
  EXPECT_EQ(a.sums.score_sum, b.sums.score_sum);
  EXPECT_EQ(a.sums.misregistration_sum, b.sums.misregistration_sum);
  EXPECT_EQ(a.sums.line_samples, b.sums.line_samples);
  EXPECT_EQ(a.sums.line_changed, b.sums.line_changed);
  EXPECT_EQ(a.quantiles.median, b.quantiles.median);
  EXPECT_EQ(a.quantiles.p90, b.quantiles.p90);
  EXPECT_EQ(a.coverage, b.coverage);
  EXPECT_EQ(a.misregistration, b.misregistration);
  EXPECT_EQ(a.grade, b.grade);
  EXPECT_EQ(a.status, b.status);
}

TEST(FeatureStatistics, BuildingSplitAcrossFourTilesEqualsTheSameBuildingInOneTile) {
  const Scene s = random_scene(256, 256, 11);
  // The same building (a rotated quadrilateral with a hole), once centred on the corner where
  // four 128-px tiles meet, once inside one tile of a 256-px tiling.
  Footprint b;
  b.rings = {{{100.3, 110.2}, {150.6, 100.4}, {160.1, 150.9}, {105.5, 158.7}},
             {{120.2, 120.2}, {135.0, 121.0}, {134.0, 135.5}, {121.0, 134.0}}};
  finalize_geometry(b);
  const std::vector<Footprint> fs{b};
  const auto split = results_on_tiles(fs, s, 128);
  const auto whole = results_on_tiles(fs, s, 256);
  ASSERT_EQ(split.size(), 1u);
  expect_same(split[0], whole[0]);
  // Check the quantiles and the mean misregistration by a direct computation over the pixels.
  cv::Mat inside = cv::Mat::zeros(256, 256, CV_8U);
  std::vector<std::uint16_t> codes;
  double mis = 0;
  std::int64_t n = 0;
  for (int r = 0; r < 256; ++r) {
    for (int c = 0; c < 256; ++c) {
      const cv::Point2d p(c + 0.5, r + 0.5);
      const bool in = inside_ring(b.rings[0], p) && !inside_ring(b.rings[1], p);
      if (!in || !s.valid.at<std::uint8_t>(r, c)) continue;
      codes.push_back(s.codes.at<std::uint16_t>(r, c));
      mis += s.misregistration.at<float>(r, c);
      ++n;
    }
  }
  ASSERT_EQ(static_cast<std::int64_t>(codes.size()), whole[0].sums.valid);
  std::sort(codes.begin(), codes.end());
  EXPECT_EQ(whole[0].quantiles.median, codes[(codes.size() + 1) / 2 - 1]);
  EXPECT_EQ(whole[0].quantiles.p90,
            codes[static_cast<std::size_t>(std::ceil(0.9 * codes.size())) - 1]);
  EXPECT_NEAR(whole[0].misregistration, mis / n, 1e-4);
  EXPECT_NEAR(whole[0].median_score, codes[(codes.size() + 1) / 2 - 1] / 65536.0, 1e-12);
}

TEST(FeatureStatistics, HalfOutsideHasCoverageOneHalf) {
  const Scene s = random_scene(128, 128, 3);
  const std::vector<Footprint> fs{rect(0, 108.0, 40.0, 148.0, 60.0),
                                  rect(1, -20.25, 10.0, 19.75, 30.0)};
  const auto res = results_on_tiles(fs, s, 64);
  EXPECT_NEAR(res[0].coverage, 0.5, 1e-12);
  EXPECT_NEAR(res[1].coverage, 0.5,
              20.0 / 800.0);  // within one pixel column of the 40 x 20 feature
  EXPECT_EQ(res[0].status, FeatureStatus::scored);
}

TEST(FeatureStatistics, RoadAcrossTheSceneGetsPerSegmentClasses) {
  // A horizontal road through a 300-px scene in three segments; the damage mask covers the
  // middle third of the road only.
  Scene s;
  s.codes = cv::Mat(64, 300, CV_16U, cv::Scalar(1000));
  s.codes(cv::Rect(100, 0, 100, 64)).setTo(60000);
  s.valid = cv::Mat(64, 300, CV_8U, cv::Scalar(255));
  s.mask = damage_mask_from_codes(s.codes, 0.5, 0);
  s.misregistration = cv::Mat(64, 300, CV_32F, cv::Scalar(0.25));
  std::vector<Footprint> fs;
  for (int k = 0; k < 3; ++k) {
    Footprint f = rect(k, -10.0 + 110.0 * k, 28.0, 100.0 + 110.0 * k,
                       36.0);  // corridors (overlap at the ends)
    f.centerline = {{{-10.0 + 110.0 * k, 32.0}, {100.0 + 110.0 * k, 32.0}}};
    f.source_geometry = SourceGeometry::line;
    f.kind = FeatureKind::road;
    f.segment = k;
    finalize_geometry(f);
    fs.push_back(f);
  }
  const auto on_tiles = results_on_tiles(fs, s, 64);
  const auto whole = results_on_tiles(fs, s, 512);
  for (int k = 0; k < 3; ++k)
    expect_same(on_tiles[static_cast<std::size_t>(k)], whole[static_cast<std::size_t>(k)]);
  // Segment 0: centerline -10..100 on the grid from 0: 100 px = 200 samples; 0 changed.
  EXPECT_EQ(whole[0].sums.line_samples, 200);
  EXPECT_EQ(whole[0].sums.line_changed, 0);
  EXPECT_EQ(whole[0].damage, DamageClass::no_damage);
  // Segment 1: 100..210: 100 of 110 px changed.
  EXPECT_EQ(whole[1].sums.line_samples, 220);
  EXPECT_EQ(whole[1].sums.line_changed, 200);
  EXPECT_NEAR(whole[1].length_changed_fraction, 200.0 / 220.0, 1e-12);
  EXPECT_EQ(whole[1].damage, DamageClass::destroyed);
  // Segment 2: 210..320, 90 px on the grid, none changed; its coverage is 90/110 of the corridor.
  EXPECT_EQ(whole[2].sums.line_samples, 180);
  EXPECT_EQ(whole[2].damage, DamageClass::no_damage);
  EXPECT_NEAR(whole[2].coverage, 90.0 / 110.0, 1e-12);
  EXPECT_NEAR(whole[1].misregistration, 0.25, 1e-12);
}

TEST(DamageSchemes, UnosatGradesAndOperatingPoints) {
  Footprint f = rect(0, 0, 0, 10, 10);
  FeatureSums sums;
  sums.inside = 100;
  sums.valid = 100;
  DamageConfig cfg;
  cfg.scheme = "unosat";
  cfg.possibly = 0.1, cfg.moderately = 0.2, cfg.severely = 0.3, cfg.destroyed = 0.4;
  cfg.high_precision_shift = 0.05, cfg.high_recall_shift = 0.05;
  const std::pair<std::int64_t, std::array<std::uint8_t, 3>> cases[] = {
      {0, {0, 0, 0}},  {8, {0, 0, 1}},  {12, {1, 0, 1}}, {22, {2, 1, 2}},
      {33, {3, 2, 3}}, {42, {4, 3, 4}}, {100, {4, 4, 4}}};
  for (const auto& [changed, grades] : cases) {
    sums.changed = changed;
    const FeatureResult r = classify_feature(f, sums, cfg);
    EXPECT_EQ(r.grade, grades) << changed;
    EXPECT_EQ(r.damage, to_xbd_class(DamageScheme::unosat, grades[0])) << changed;
  }
  cfg.scheme = "xbd";
  sums.changed = 30;
  const FeatureResult x = classify_feature(f, sums, cfg);
  EXPECT_EQ(x.grade[0], 2);
  EXPECT_EQ(x.damage, DamageClass::major);
  // Not scored: no grade at any operating point.
  sums.inside = 0;
  EXPECT_EQ(classify_feature(f, sums, cfg).grade,
            (std::array<std::uint8_t, 3>{kNoGrade, kNoGrade, kNoGrade}));
}

TEST(DamageSchemes, MedianAndP90Metrics) {
  const Scene s = random_scene(64, 64, 5);
  const std::vector<Footprint> fs{rect(0, 4, 4, 60, 60)};
  DamageConfig cfg;
  cfg.metric = "p90_score";
  const auto r = results_on_tiles(fs, s, 32, cfg);
  EXPECT_GT(r[0].p90_score, r[0].median_score);
  EXPECT_EQ(r[0].damage, DamageClass::destroyed);  // p90 of uniform scores ~0.9
  cfg.metric = "median_score";
  cfg.minor = 0.4, cfg.major = 0.45, cfg.destroyed = 0.9;
  EXPECT_EQ(results_on_tiles(fs, s, 32, cfg)[0].damage, DamageClass::major);  // median ~0.5
}

/// The sites of a mask as OpenCV's 4-connected components see them (pixel counts, ascending).
std::vector<std::int64_t> component_sizes(const cv::Mat& mask) {
  cv::Mat labels, stats, centroids;
  const int n = cv::connectedComponentsWithStats(mask == kMaskChanged, labels, stats, centroids, 4);
  std::vector<std::int64_t> out;
  for (int i = 1; i < n; ++i) out.push_back(stats.at<int>(i, cv::CC_STAT_AREA));
  std::sort(out.begin(), out.end());
  return out;
}

TEST(DamageSites, ComponentsJoinedAcrossTilesInAnyOrderEqualConnectedComponents) {
  cv::Mat score(300, 300, CV_32F);
  cv::RNG(9).fill(score, cv::RNG::UNIFORM, 0.0, 1.0);
  cv::GaussianBlur(score, score, cv::Size(0, 0), 4.0);
  cv::normalize(score, score, 0, 1, cv::NORM_MINMAX);
  const cv::Mat valid(300, 300, CV_8U, cv::Scalar(255));
  const cv::Mat codes = encode_scores(score, valid);
  const cv::Mat mask = damage_mask_from_codes(codes, 0.6, 0);
  const auto expected = component_sizes(mask);
  ASSERT_GT(expected.size(), 5u);
  std::vector<std::vector<DamageSite>> runs_by_tiling;
  for (const int ts : {300, 64, 37}) {
    const TileGrid grid(300, 300, ts, 0);
    SiteAccumulator acc;
    for (int i = grid.count() - 1; i >= 0;
         --i) {  // reverse order: the result does not depend on it
      const Tile t = grid.tile(i);
      acc.add(mask_runs(t.core, mask(t.core.rect()), codes(t.core.rect())));
    }
    const auto sites = acc.finalize(1, 0);
    std::vector<std::int64_t> sizes;
    for (const auto& site : sites) sizes.push_back(site.pixels);
    std::sort(sizes.begin(), sizes.end());
    EXPECT_EQ(sizes, expected) << "tile size " << ts;
    runs_by_tiling.push_back(sites);
  }
  for (std::size_t k = 1; k < runs_by_tiling.size(); ++k) {
    ASSERT_EQ(runs_by_tiling[k].size(), runs_by_tiling[0].size());
    for (std::size_t i = 0; i < runs_by_tiling[0].size(); ++i) {
      const auto& a = runs_by_tiling[0][i];
      const auto& b = runs_by_tiling[k][i];
      EXPECT_EQ(a.id, b.id);
      EXPECT_EQ(a.bbox, b.bbox);
      EXPECT_EQ(a.mean_score, b.mean_score);
      EXPECT_EQ(a.max_score, b.max_score);
      EXPECT_EQ(a.runs, b.runs);
    }
  }
  // Minimum size and a state merged from two halves.
  const auto big = runs_by_tiling[0];
  const std::int64_t cut = expected[expected.size() / 2];
  const TileGrid grid(300, 300, 64, 0);
  SiteAccumulator first, second, merged;
  for (int i = 0; i < grid.count(); ++i) {
    const Tile t = grid.tile(i);
    (i % 2 ? first : second).add(mask_runs(t.core, mask(t.core.rect()), codes(t.core.rect())));
  }
  merged.merge_serialized(second.serialize());
  merged.merge_serialized(first.serialize());
  const auto kept = merged.finalize(cut, 0);
  EXPECT_EQ(kept.size(),
            static_cast<std::size_t>(std::count_if(expected.begin(), expected.end(),
                                                   [&](std::int64_t n) { return n >= cut; })));
  for (const auto& s : kept) EXPECT_GE(s.pixels, cut);
}

TEST(DamageSites, SmallComponentsDroppedInsideTilesChangeNoSite) {
  // A noisy mask: most components are a few pixels. Dropping the small ones that lie wholly
  // inside a tile (in the parallel stage) keeps far fewer runs and gives the same sites.
  cv::Mat score(300, 300, CV_32F);
  cv::RNG(4).fill(score, cv::RNG::UNIFORM, 0.0, 1.0);
  const cv::Mat valid(300, 300, CV_8U, cv::Scalar(255));
  const cv::Mat codes = encode_scores(score, valid);
  const cv::Mat mask = damage_mask_from_codes(codes, 0.55, 0);
  for (const std::int64_t min_pixels : {2, 5, 20}) {
    SiteAccumulator whole, dropped;
    whole.add(mask_runs(Window{0, 0, 300, 300}, mask, codes));
    const TileGrid grid(300, 300, 64, 0);
    for (int i = 0; i < grid.count(); ++i) {
      const Tile t = grid.tile(i);
      auto runs = mask_runs(t.core, mask(t.core.rect()), codes(t.core.rect()));
      drop_small_inner_components(runs, t.core, min_pixels);
      dropped.add(std::move(runs));
    }
    EXPECT_LT(dropped.run_count(), whole.run_count()) << min_pixels;
    const auto a = whole.finalize(min_pixels, 0), b = dropped.finalize(min_pixels, 0);
    ASSERT_EQ(a.size(), b.size()) << min_pixels;
    for (std::size_t k = 0; k < a.size(); ++k) {
      EXPECT_EQ(a[k].runs, b[k].runs) << min_pixels << " site " << k;
      EXPECT_EQ(a[k].mean_score, b[k].mean_score);
    }
  }
}

TEST(DamageSites, StatisticsAndBuiltUpFraction) {
  cv::Mat codes(20, 20, CV_16U, cv::Scalar(100)), mask(20, 20, CV_8U, cv::Scalar(kMaskUnchanged));
  cv::Mat built(20, 20, CV_8U, cv::Scalar(0));
  // An L-shaped site of 5 + 4 pixels with known scores; half of its pixels built-up.
  mask(cv::Rect(2, 2, 5, 1)).setTo(kMaskChanged);
  mask(cv::Rect(2, 3, 1, 4)).setTo(kMaskChanged);
  codes(cv::Rect(2, 2, 5, 1)).setTo(40000);
  codes(cv::Rect(2, 3, 1, 4)).setTo(50000);
  built(cv::Rect(0, 0, 20, 3)).setTo(1);
  mask.at<std::uint8_t>(15, 15) = kMaskChanged;  // a lone pixel
  SiteAccumulator acc;
  acc.add(mask_runs(Window{0, 0, 20, 20}, mask, codes, built));
  auto sites = acc.finalize(1, 0);
  ASSERT_EQ(sites.size(), 2u);
  EXPECT_EQ(sites[0].pixels, 9);
  EXPECT_NEAR(sites[0].mean_score, (5 * 40000 + 4 * 50000) / 9.0 / 65536.0, 1e-12);
  EXPECT_NEAR(sites[0].max_score, 50000 / 65536.0, 1e-12);
  EXPECT_NEAR(sites[0].built_up_fraction, 5.0 / 9.0, 1e-12);
  EXPECT_EQ(sites[0].bbox, cv::Rect(2, 2, 5, 5));
  EXPECT_EQ(sites[1].pixels, 1);
  EXPECT_EQ(acc.finalize(2, 0).size(), 1u);
  EXPECT_EQ(acc.finalize(1, 0.6).size(), 0u);  // 5/9 built-up is below 0.6; the lone pixel has none
  EXPECT_EQ(acc.finalize(1, 0.5).size(), 1u);
}

}  // namespace
}  // namespace aftermath
