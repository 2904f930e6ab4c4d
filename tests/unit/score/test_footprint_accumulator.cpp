#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "aftermath/core/error.hpp"
#include "aftermath/score/footprint_accumulator.hpp"
#include "aftermath/score/threshold.hpp"

namespace aftermath {
namespace {

Footprint polygon(std::int64_t id, std::vector<std::vector<cv::Point2d>> rings) {
  Footprint f;
  f.id = id;
  f.rings = std::move(rings);
  finalize_geometry(f);
  return f;
}

Footprint rect(std::int64_t id, double x0, double y0, double x1, double y1) {
  return polygon(id, {{{x0, y0}, {x1, y0}, {x1, y1}, {x0, y1}}});
}

struct Layers {
  cv::Mat score, valid, mask;
};

Layers random_layers(int w, int h, unsigned seed) {
  Layers l;
  cv::RNG rng(seed);
  l.score = cv::Mat(h, w, CV_32F);
  rng.fill(l.score, cv::RNG::UNIFORM, 0.0, 1.0);
  cv::Mat u(h, w, CV_32F);
  rng.fill(u, cv::RNG::UNIFORM, 0.0, 1.0);
  l.valid = cv::Mat(h, w, CV_8U);
  for (int r = 0; r < h; ++r)
    for (int c = 0; c < w; ++c) l.valid.at<std::uint8_t>(r, c) = u.at<float>(r, c) < 0.85f ? 255 : 0;
  l.mask = damage_mask(l.score, l.valid, 0.6, 0);
  return l;
}

/// Runs index + accumulate over a tile grid on full-grid layers (cropped to each core).
std::vector<FeatureSums> accumulate(const std::vector<Footprint>& fs, const Layers& l, int tile_size) {
  const TileGrid grid(l.score.cols, l.score.rows, tile_size, 0);
  const FootprintIndex index(fs, grid);
  FootprintAccumulator acc(fs.size());
  for (int i = 0; i < grid.count(); ++i) {
    const Tile t = grid.tile(i);
    const cv::Rect r = t.core.rect();
    acc.add(accumulate_tile(fs, index.in_tile(i), t, l.score(r), l.valid(r), l.mask(r)));
  }
  return acc.sums();
}

/// Reference: is the centre of pixel (c, r) inside the feature? (Even-odd, the same half-open
/// crossing rule.)
bool centre_inside(const Footprint& f, int c, int r) {
  const double x = c + 0.5, y = r + 0.5;
  int crossings = 0;
  for (const auto& ring : f.rings) {
    for (std::size_t k = 0, n = ring.size(); k < n; ++k) {
      const auto& p = ring[k];
      const auto& e = ring[(k + 1) % n];
      if ((p.y <= y) != (e.y <= y)) {
        const double xc = p.x + (y - p.y) * (e.x - p.x) / (e.y - p.y);
        if (xc <= x) ++crossings;
      }
    }
  }
  return crossings % 2 == 1;
}

/// Reference: pixel-centre point-in-polygon test of every pixel.
FeatureSums brute_force(const Footprint& f, const Layers& l) {
  FeatureSums s;
  std::int64_t q = 0;
  for (int r = 0; r < l.score.rows; ++r) {
    for (int c = 0; c < l.score.cols; ++c) {
      if (!centre_inside(f, c, r)) continue;
      ++s.inside;
      if (l.valid.at<std::uint8_t>(r, c) != 0) {
        ++s.valid;
        q += std::llround(double(l.score.at<float>(r, c)) * 16777216.0);
        if (l.mask.at<std::uint8_t>(r, c) == kMaskChanged) ++s.changed;
      }
    }
  }
  s.score_sum = double(q) / 16777216.0;
  return s;
}

void expect_same(const FeatureSums& a, const FeatureSums& b, const std::string& what) {
  EXPECT_EQ(a.inside, b.inside) << what;
  EXPECT_EQ(a.valid, b.valid) << what;
  EXPECT_EQ(a.changed, b.changed) << what;
  EXPECT_EQ(a.score_sum, b.score_sum) << what;  // exact, not near
}

std::vector<Footprint> tricky_features() {
  std::vector<Footprint> fs;
  // 0: a diamond centred on the four-tile corner (256, 256), with fractional vertices.
  fs.push_back(polygon(0, {{{256.3, 200.7}, {311.1, 256.0}, {256.0, 309.9}, {201.4, 256.2}}}));
  // 1: a square with a square hole, straddling the vertical tile edge.
  fs.push_back(polygon(1, {{{230, 40}, {290, 40}, {290, 100}, {230, 100}},
                           {{245.5, 55.5}, {270.25, 55.5}, {270.25, 80.75}, {245.5, 80.75}}}));
  // 2: a concave "U", straddling the horizontal tile edge, explicitly closed ring.
  fs.push_back(polygon(2, {{{40, 240}, {90, 240}, {90, 290}, {75, 290}, {75, 255}, {55, 255}, {55, 290},
                            {40, 290}, {40, 240}}}));
  // 3: a thin sliver across a tile edge (two pixel columns: 255 and 256).
  fs.push_back(rect(3, 255.2, 300.0, 256.9, 400.0));
  // 4: a triangle entirely inside one tile.
  fs.push_back(polygon(4, {{{400.2, 400.9}, {480.7, 420.3}, {430.1, 470.8}}}));
  // 5: a feature partly outside the grid.
  fs.push_back(rect(5, -20.0, 480.0, 30.0, 530.0));
  return fs;
}

TEST(FootprintIndex, BboxAgainstTileCores) {
  const TileGrid grid(512, 512, 256, 8);
  std::vector<Footprint> fs;
  fs.push_back(rect(0, 250, 250, 262, 262));  // all four
  fs.push_back(rect(1, 10, 10, 20, 20));      // tile 0
  fs.push_back(rect(2, 256, 10, 270, 20));    // touches tile 0's edge only: tile 1
  fs.push_back(rect(3, -50, -50, -30, -30));  // outside
  fs.push_back(rect(4, 300, 300, 600, 600));  // tile 3, beyond the grid
  const FootprintIndex index(fs, grid);
  EXPECT_EQ(index.in_tile(0), (std::vector<std::int64_t>{0, 1}));
  EXPECT_EQ(index.in_tile(1), (std::vector<std::int64_t>{0, 2}));
  EXPECT_EQ(index.in_tile(2), (std::vector<std::int64_t>{0}));
  EXPECT_EQ(index.in_tile(3), (std::vector<std::int64_t>{0, 4}));
}

// The median and p90 (nearest rank: the ceil(p n)-th smallest code) against a full sort, on
// codes crowded into one 256-code bin, spread over many, and the smallest counts.
TEST(ScoreQuantiles, NearestRanksAsAFullSortGivesThem) {
  std::mt19937 rng(7);
  for (const int n : {1, 2, 3, 10, 128, 129, 257, 5000}) {
    for (const int spread : {1, 40, 65536}) {
      std::vector<std::uint16_t> codes(static_cast<std::size_t>(n));
      std::uniform_int_distribution<int> pick(0, spread - 1);
      for (auto& c : codes) c = static_cast<std::uint16_t>(30000 + pick(rng) % (65536 - 30000));
      std::vector<std::uint16_t> sorted = codes;
      std::sort(sorted.begin(), sorted.end());
      const auto nth = [&](double p) {
        return sorted[static_cast<std::size_t>(std::max(0.0, std::ceil(p * n) - 1.0))];
      };
      const ScoreQuantiles q = score_quantiles(codes);
      EXPECT_EQ(q.median, nth(0.5)) << n << " codes, spread " << spread;
      EXPECT_EQ(q.p90, nth(0.9)) << n << " codes, spread " << spread;
    }
  }
  EXPECT_EQ(score_quantiles({}).median, 0);
  EXPECT_EQ(score_quantiles({}).p90, 0);
}

TEST(AccumulateTile, HalfOpenPixelCentreRule) {
  const Layers l = random_layers(64, 64, 1);
  // Columns with 10.5 <= c + 0.5 < 20.5 (c = 10..19), rows with 5 <= r + 0.5 < 8 (r = 5..7).
  const auto sums = accumulate({rect(0, 10.5, 5.0, 20.5, 8.0)}, l, 64);
  EXPECT_EQ(sums[0].inside, 30);
  // An integer-cornered rectangle covers exactly its pixels.
  EXPECT_EQ(accumulate({rect(0, 3, 4, 13, 9)}, l, 64)[0].inside, 50);
  // Degenerate rings fill nothing.
  EXPECT_EQ(accumulate({rect(0, 3, 4, 3, 9)}, l, 64)[0].inside, 0);
}

TEST(AccumulateTile, MatchesBruteForcePointInPolygon) {
  const Layers l = random_layers(512, 512, 2);
  const auto fs = tricky_features();
  const auto sums = accumulate(fs, l, 512);
  for (std::size_t i = 0; i < fs.size(); ++i) {
    expect_same(sums[i], brute_force(fs[i], l), "feature " + std::to_string(i));
    EXPECT_GT(sums[i].inside, 0) << i;
  }
}

// The run's path: stored uint16 codes, a misregistration layer (with its -1 no-value, NaN and
// negative values) and the valid pixels' codes kept, against a pixel-by-pixel reference; cut
// into tiles or not, and through the quantiles of the codes.
TEST(AccumulateTile, StoredCodesAndMisregistrationMatchBruteForce) {
  const Layers l = random_layers(512, 512, 4);
  const cv::Mat codes = encode_scores(l.score, l.valid);
  Layers decoded = l;
  decoded.score = decode_scores(codes, 0.0f);
  cv::Mat misreg(512, 512, CV_32F);
  cv::RNG rng(5);
  rng.fill(misreg, cv::RNG::UNIFORM, 0.0, 3.0);
  for (int r = 0; r < 512; r += 3) misreg.at<float>(r, (r * 7) % 512) = -1.0f;
  for (int r = 1; r < 512; r += 5) misreg.at<float>(r, (r * 11) % 512) = std::nanf("");
  const auto fs = tricky_features();
  for (const int ts : {512, 100, 37}) {
    const TileGrid grid(512, 512, ts, 0);
    const FootprintIndex index(fs, grid);
    // The same through the float path, on the scores the codes stand for.
    FootprintAccumulator acc(fs.size(), index), from_scores(fs.size(), index);
    for (int i = 0; i < grid.count(); ++i) {
      const Tile t = grid.tile(i);
      const cv::Rect r = t.core.rect();
      auto parts = accumulate_tile(fs, index.in_tile(i), t,
                                   TileLayers{codes(r), l.valid(r), l.mask(r), misreg(r), true});
      settle_single_tile_partials(parts, index);
      acc.add(parts);
      auto float_parts =
          accumulate_tile(fs, index.in_tile(i), t,
                          TileLayers{decoded.score(r), l.valid(r), l.mask(r), misreg(r), true});
      settle_single_tile_partials(float_parts, index);
      from_scores.add(float_parts);
    }
    const auto sums = acc.sums();
    const auto results = acc.finalize(fs, DamageConfig{});
    const auto float_sums = from_scores.sums();
    const auto float_results = from_scores.finalize(fs, DamageConfig{});
    for (std::size_t i = 0; i < fs.size(); ++i) {
      const std::string what = "feature " + std::to_string(i) + " tile " + std::to_string(ts);
      expect_same(sums[i], brute_force(fs[i], decoded), what);
      // Misregistration sums and the codes of the valid pixels inside (the pixels brute_force
      // counts); their quantiles by nearest rank in the sorted codes.
      std::int64_t msum = 0, mpx = 0;
      std::vector<std::uint16_t> inside;
      for (int r = 0; r < 512; ++r) {
        for (int c = 0; c < 512; ++c) {
          if (!l.valid.at<std::uint8_t>(r, c) || !centre_inside(fs[i], c, r)) continue;
          inside.push_back(codes.at<std::uint16_t>(r, c));
          const double d = misreg.at<float>(r, c);
          if (d >= 0) {
            msum += std::llround(d * 65536.0);
            ++mpx;
          }
        }
      }
      ASSERT_GT(inside.size(), 100u) << what;
      std::sort(inside.begin(), inside.end());
      const auto nearest_rank = [&](double p) {
        const double n = static_cast<double>(inside.size());
        return inside[static_cast<std::size_t>(std::max(0.0, std::ceil(p * n) - 1.0))];
      };
      EXPECT_EQ(sums[i].misregistration_sum, msum) << what;
      EXPECT_EQ(sums[i].misregistration_pixels, mpx) << what;
      expect_same(float_sums[i], sums[i], what + " (float path)");
      EXPECT_EQ(float_sums[i].misregistration_sum, msum) << what << " (float path)";
      EXPECT_EQ(float_sums[i].misregistration_pixels, mpx) << what << " (float path)";
      EXPECT_EQ(float_results[i].median_score, results[i].median_score) << what << " (float path)";
      EXPECT_EQ(float_results[i].p90_score, results[i].p90_score) << what << " (float path)";
      EXPECT_EQ(results[i].median_score, nearest_rank(0.5) * kScoreCodeScale) << what;
      EXPECT_EQ(results[i].p90_score, nearest_rank(0.9) * kScoreCodeScale) << what;
    }
  }
}

TEST(AccumulateTile, SplitAcrossTilesEqualsOneTile) {
  const Layers l = random_layers(512, 512, 3);
  const auto fs = tricky_features();
  const auto one = accumulate(fs, l, 512);
  for (int ts : {256, 100, 64, 37}) {
    const auto many = accumulate(fs, l, ts);
    for (std::size_t i = 0; i < fs.size(); ++i) {
      expect_same(one[i], many[i], "feature " + std::to_string(i) + " tile " + std::to_string(ts));
    }
  }
  // The diamond really is in all four tiles of the 256 grid.
  const FootprintIndex index(fs, TileGrid(512, 512, 256, 0));
  for (int t = 0; t < 4; ++t) {
    const auto& ids = index.in_tile(t);
    EXPECT_NE(std::find(ids.begin(), ids.end(), 0), ids.end()) << t;
  }
}

TEST(Classify, HalfOutsideFullyOutsideAndNoData) {
  Layers l = random_layers(100, 100, 4);
  l.valid(cv::Rect(60, 60, 30, 30)).setTo(0);
  l.mask = damage_mask(l.score, l.valid, 0.6, 0);
  std::vector<Footprint> fs;
  fs.push_back(rect(0, -10.0, 40.0, 10.0, 60.0));    // half outside
  fs.push_back(rect(1, -10.3, 20.0, 9.7, 30.0));     // half outside, fractional
  fs.push_back(rect(2, -50.0, 40.0, -30.0, 60.0));   // fully outside
  fs.push_back(rect(3, 65.0, 65.0, 85.0, 85.0));     // over invalid pixels only
  fs.push_back(rect(4, 20.0, 20.0, 40.0, 40.0));     // normal
  fs.push_back(rect(5, 95.0, 95.0, 130.0, 130.0));   // mostly outside the grid
  FootprintAccumulator acc(fs.size());
  const TileGrid grid(100, 100, 64, 0);
  const FootprintIndex index(fs, grid);
  for (int i = 0; i < grid.count(); ++i) {
    const Tile t = grid.tile(i);
    acc.add(accumulate_tile(fs, index.in_tile(i), t, l.score(t.core.rect()), l.valid(t.core.rect()),
                            l.mask(t.core.rect())));
  }
  DamageConfig cfg;
  auto res = acc.finalize(fs, cfg);
  EXPECT_NEAR(res[0].coverage, 0.5, 1e-12);
  EXPECT_NEAR(res[1].coverage, 0.5, 1.0 * 10 / 200);  // within a pixel column
  EXPECT_EQ(res[0].status, FeatureStatus::scored);
  EXPECT_EQ(res[2].status, FeatureStatus::outside);
  EXPECT_EQ(res[2].damage, DamageClass::unclassified);
  EXPECT_EQ(res[2].sums.inside, 0);
  EXPECT_EQ(res[3].status, FeatureStatus::no_data);
  EXPECT_EQ(res[3].damage, DamageClass::unclassified);
  EXPECT_EQ(res[3].sums.inside, 400);
  EXPECT_EQ(res[4].status, FeatureStatus::scored);
  EXPECT_EQ(res[4].coverage, 1.0);
  EXPECT_NEAR(res[5].coverage, 25.0 / (35.0 * 35.0), 1e-12);
  // All-invalid is no_data even when no valid fraction is required.
  cfg.min_valid_fraction = 0.0;
  res = acc.finalize(fs, cfg);
  EXPECT_EQ(res[3].status, FeatureStatus::no_data);
  EXPECT_NE(res[3].damage, DamageClass::no_damage);
  for (const auto& r : res) {
    EXPECT_GE(r.confidence, 0.0);
    EXPECT_LE(r.confidence, 1.0);
    EXPECT_GE(r.coverage, 0.0);
    EXPECT_LE(r.coverage, 1.0);
  }
}

TEST(Classify, ClassesMetricsAndConfidence) {
  Footprint f = rect(0, 0, 0, 10, 10);
  DamageConfig cfg;
  cfg.minor = 0.15;
  cfg.major = 0.35;
  cfg.destroyed = 0.55;
  auto with = [&](std::int64_t changed, double score_sum) {
    FeatureSums s;
    s.inside = 100;
    s.valid = 100;
    s.changed = changed;
    s.score_sum = score_sum;
    return classify_feature(f, s, cfg);
  };
  EXPECT_EQ(with(0, 0).damage, DamageClass::no_damage);
  EXPECT_DOUBLE_EQ(with(0, 0).confidence, 1.0);
  EXPECT_EQ(with(15, 0).damage, DamageClass::minor);
  EXPECT_DOUBLE_EQ(with(15, 0).confidence, 0.0);
  EXPECT_EQ(with(40, 0).damage, DamageClass::major);
  EXPECT_NEAR(with(40, 0).confidence, 0.5, 1e-9);
  EXPECT_EQ(with(55, 0).damage, DamageClass::destroyed);
  EXPECT_EQ(with(100, 0).damage, DamageClass::destroyed);
  EXPECT_DOUBLE_EQ(with(100, 0).changed_fraction, 1.0);
  cfg.metric = "mean_score";
  EXPECT_EQ(with(0, 60.0).damage, DamageClass::destroyed);
  EXPECT_DOUBLE_EQ(with(0, 60.0).mean_score, 0.6);
  EXPECT_EQ(with(100, 10.0).damage, DamageClass::no_damage);
  // Low valid fraction -> no_data.
  cfg.metric = "changed_fraction";
  FeatureSums s;
  s.inside = 100;
  s.valid = 49;
  s.changed = 49;
  EXPECT_EQ(classify_feature(f, s, cfg).status, FeatureStatus::no_data);
  s.valid = 50;
  EXPECT_EQ(classify_feature(f, s, cfg).status, FeatureStatus::scored);
  // Zero-area feature with pixels: coverage 1.
  Footprint g;
  s.valid = 100;
  EXPECT_EQ(classify_feature(g, s, cfg).coverage, 1.0);
  cfg.metric = "bogus";
  EXPECT_THROW((void)classify_feature(f, s, cfg), Error);
}

TEST(FeatureSums, MergeAndAccumulatorOrder) {
  FeatureSums a{3, 2, 1, 0.5}, b{4, 4, 2, 1.25};
  a.merge(b);
  EXPECT_EQ(a.inside, 7);
  EXPECT_EQ(a.valid, 6);
  EXPECT_EQ(a.changed, 3);
  EXPECT_EQ(a.score_sum, 1.75);
  FootprintAccumulator acc(2);
  acc.add({{1, b, {}, {}}, {0, b, {}, {}}});
  acc.add({{1, b, {}, {}}});
  EXPECT_EQ(acc.sums()[1].inside, 8);
  EXPECT_EQ(acc.sums()[0].inside, 4);
  EXPECT_THROW(acc.add({{2, b, {}, {}}}), Error);
}

}  // namespace
TEST(FootprintAccumulatorMerge, TwoHalvesMergedFromBytesEqualOneAccumulator) {
  Layers l = random_layers(200, 200, 7);
  l.mask = damage_mask(l.score, l.valid, 0.6, 0);
  std::vector<Footprint> fs;
  fs.push_back(rect(0, 10.0, 10.0, 150.0, 190.0));  // crosses every tile
  fs.push_back(rect(1, 120.0, 20.0, 140.0, 40.0));
  fs.push_back(rect(2, -30.0, -30.0, -10.0, -10.0));  // outside
  const TileGrid grid(200, 200, 64, 0);
  const FootprintIndex index(fs, grid);
  FootprintAccumulator whole(fs.size()), first(fs.size()), second(fs.size());
  for (int i = 0; i < grid.count(); ++i) {
    const Tile t = grid.tile(i);
    auto parts = accumulate_tile(fs, index.in_tile(i), t, l.score(t.core.rect()), l.valid(t.core.rect()),
                                 l.mask(t.core.rect()));
    whole.add(parts);
    (i % 2 == 0 ? first : second).add(parts);
  }
  FootprintAccumulator merged(fs.size());
  merged.merge_serialized(second.serialize());
  merged.merge_serialized(first.serialize());
  const auto a = merged.finalize(fs, DamageConfig{}), b = whole.finalize(fs, DamageConfig{});
  for (std::size_t i = 0; i < fs.size(); ++i) {
    EXPECT_EQ(a[i].sums.inside, b[i].sums.inside) << i;
    EXPECT_EQ(a[i].sums.changed, b[i].sums.changed) << i;
    EXPECT_EQ(a[i].sums.score_sum, b[i].sums.score_sum) << i;
    EXPECT_EQ(a[i].quantiles.median, b[i].quantiles.median) << i;
    EXPECT_EQ(a[i].quantiles.p90, b[i].quantiles.p90) << i;
    EXPECT_EQ(a[i].grade, b[i].grade) << i;
  }
  EXPECT_GT(b[0].quantiles.p90, b[0].quantiles.median);
  // With the tile index (as run and rescore use it), each part completes the features whose
  // tiles it saw; merged, the others complete: the same results again.
  FootprintAccumulator first_i(fs.size(), index), second_i(fs.size(), index), merged_i(fs.size(), index);
  for (int i = 0; i < grid.count(); ++i) {
    const Tile t = grid.tile(i);
    (i < 3 ? first_i : second_i)
        .add(accumulate_tile(fs, index.in_tile(i), t, l.score(t.core.rect()), l.valid(t.core.rect()),
                             l.mask(t.core.rect())));
  }
  merged_i.merge_serialized(first_i.serialize());
  merged_i.merge_serialized(second_i.serialize());
  const auto c = merged_i.finalize(fs, DamageConfig{});
  for (std::size_t i = 0; i < fs.size(); ++i) {
    EXPECT_EQ(c[i].quantiles.median, b[i].quantiles.median) << i;
    EXPECT_EQ(c[i].quantiles.p90, b[i].quantiles.p90) << i;
    EXPECT_EQ(c[i].sums.valid, b[i].sums.valid) << i;
  }
  EXPECT_THROW(merged_i.merge_serialized(first_i.serialize()), Error);  // the same tiles twice
  FootprintAccumulator wrong(fs.size() + 1);
  EXPECT_THROW(wrong.merge_serialized(whole.serialize()), Error);
  auto truncated = whole.serialize();
  truncated.pop_back();
  EXPECT_THROW(merged.merge_serialized(truncated), Error);
}

}  // namespace aftermath
