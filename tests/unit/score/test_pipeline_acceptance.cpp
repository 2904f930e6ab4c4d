// Acceptance: synthetic pair -> robust normalisation -> cva -> mask -> footprints -> classes,
// once with the whole scene as one tile and once on a 256 px tile grid (as the engine does it:
// score and mask on the outer window, crop to the core). Sums must match feature by feature.
#include <cstdio>

#include <gtest/gtest.h>

#include "aftermath/detect/detector.hpp"
#include "aftermath/evaluate/metrics.hpp"
#include "aftermath/radiometry/normalisation.hpp"
#include "aftermath/score/footprint_accumulator.hpp"
#include "aftermath/score/threshold.hpp"
#include "synthetic.hpp"

namespace aftermath {
namespace {

constexpr int kSize = 768;

struct Prepared {
  test::SyntheticPair pair;
  BandPair scene;  // post normalised
  std::unique_ptr<Detector> detector;
  std::vector<Footprint> features;
};

Prepared prepare() {
  test::SyntheticOptions o;
  o.width = kSize;
  o.height = kSize;
  o.buildings = 60;
  o.destroyed_fraction = 0.3;
  o.noise = 1.0;
  o.gain = 1.3;
  o.offset = 10.0;
  o.seed = 7;
  Prepared p;
  p.pair = test::make_synthetic_pair(o);
  p.scene.pre = p.pair.pre;
  for (const auto& b : p.pair.post) p.scene.post.push_back(b.clone());
  p.scene.valid = cv::Mat(kSize, kSize, CV_8U, cv::Scalar(255));
  // A nodata strip along the right edge (no building is wholly inside it).
  p.scene.valid(cv::Rect(kSize - 20, 0, 20, kSize)).setTo(0);
  aftermath::apply(fit_robust_linear(p.scene.pre, p.scene.post, p.scene.valid), p.scene.post);
  p.detector = make_detector(DetectConfig{});
  p.detector->fit({p.scene});
  for (std::size_t i = 0; i < p.pair.buildings.size(); ++i) {
    const cv::Rect r = p.pair.buildings[i].rect;
    Footprint f;
    f.id = static_cast<std::int64_t>(i);
    f.rings = {{{double(r.x), double(r.y)}, {double(r.br().x), double(r.y)}, {double(r.br().x), double(r.br().y)},
                {double(r.x), double(r.br().y)}}};
    finalize_geometry(f);
    p.features.push_back(std::move(f));
  }
  return p;
}

BandPair window(const BandPair& s, const Window& w) {
  BandPair out;
  for (std::size_t b = 0; b < s.pre.size(); ++b) {
    out.pre.push_back(s.pre[b](w.rect()));
    out.post.push_back(s.post[b](w.rect()));
  }
  out.valid = s.valid(w.rect());
  return out;
}

struct PipelineRun {
  std::vector<FeatureSums> sums;
  cv::Mat mask;  // mosaic of the cores
  double threshold = 0;
};

/// threshold < 0 -> Otsu over the histogram of all tile cores (a first pass, as the engine does).
PipelineRun run_pipeline(const Prepared& p, int tile_size, int halo, double threshold, int open_radius) {
  const TileGrid grid(kSize, kSize, tile_size, halo);
  PipelineRun out;
  out.threshold = threshold;
  if (threshold < 0) {
    ScoreHistogram h;
    for (int i = 0; i < grid.count(); ++i) {
      const Tile t = grid.tile(i);
      const BandPair w = window(p.scene, t.core);
      h.add(p.detector->score(w), w.valid);
    }
    out.threshold = otsu_threshold(h);
  }
  const FootprintIndex index(p.features, grid);
  FootprintAccumulator acc(p.features.size());
  out.mask = cv::Mat(kSize, kSize, CV_8U, cv::Scalar(77));
  for (int i = 0; i < grid.count(); ++i) {
    const Tile t = grid.tile(i);
    const BandPair w = window(p.scene, t.outer);
    const cv::Mat score = p.detector->score(w);
    const cv::Mat mask = damage_mask(score, w.valid, out.threshold, open_radius);
    const cv::Rect core = t.core_in_outer();
    const cv::Mat score_core = score(core).clone();
    const cv::Mat valid_core = w.valid(core).clone();
    const cv::Mat mask_core = mask(core).clone();
    mask_core.copyTo(out.mask(t.core.rect()));
    acc.add(accumulate_tile(p.features, index.in_tile(i), t, score_core, valid_core, mask_core));
  }
  out.sums = acc.sums();
  return out;
}

double f1_of(const Prepared& p, const std::vector<FeatureSums>& sums, const char* label) {
  FootprintAccumulator acc(sums.size());
  std::vector<FeaturePartial> parts;
  for (std::size_t i = 0; i < sums.size(); ++i) parts.push_back({static_cast<std::int64_t>(i), sums[i], {}, {}});
  acc.add(parts);
  const auto results = acc.finalize(p.features, DamageConfig{});
  std::vector<bool> predicted, truth;
  for (std::size_t i = 0; i < results.size(); ++i) {
    EXPECT_EQ(results[i].status, FeatureStatus::scored) << i;
    predicted.push_back(results[i].damage == DamageClass::destroyed);
    truth.push_back(p.pair.buildings[i].destroyed);
  }
  const BinaryMetrics m = binary_metrics(predicted, truth);
  std::printf("[ %s ] buildings %zu, destroyed %lld: tp %lld fp %lld fn %lld tn %lld, F1 %.4f\n", label,
              results.size(), static_cast<long long>(m.tp + m.fn), static_cast<long long>(m.tp),
              static_cast<long long>(m.fp), static_cast<long long>(m.fn), static_cast<long long>(m.tn), m.f1());
  return m.f1();
}

void expect_identical(const std::vector<FeatureSums>& a, const std::vector<FeatureSums>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].inside, b[i].inside) << i;
    EXPECT_EQ(a[i].valid, b[i].valid) << i;
    EXPECT_EQ(a[i].changed, b[i].changed) << i;
    EXPECT_EQ(a[i].score_sum, b[i].score_sum) << i;
  }
}

class Acceptance : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { prepared_ = new Prepared(prepare()); }
  static void TearDownTestSuite() {
    delete prepared_;
    prepared_ = nullptr;
  }
  static Prepared* prepared_;
};
Prepared* Acceptance::prepared_ = nullptr;

TEST_F(Acceptance, FixedThresholdF1AndTileIndependence) {
  const Prepared& p = *prepared_;
  ASSERT_GE(p.features.size(), 40u);
  const PipelineRun whole = run_pipeline(p, kSize, 0, 0.5, 1);
  const PipelineRun tiled = run_pipeline(p, 256, 4, 0.5, 1);  // halo >= 2 x open_radius
  EXPECT_EQ(cv::countNonZero(whole.mask != tiled.mask), 0);
  expect_identical(whole.sums, tiled.sums);
  EXPECT_GE(f1_of(p, whole.sums, "fixed 0.5, one tile"), 0.9);
  EXPECT_GE(f1_of(p, tiled.sums, "fixed 0.5, 256 px tiles"), 0.9);
  // Invalid pixels never enter the mask.
  EXPECT_EQ(cv::countNonZero(whole.mask(cv::Rect(kSize - 20, 0, 20, kSize)) != kMaskInvalid), 0);
}

TEST_F(Acceptance, OtsuThresholdF1AndTileIndependence) {
  const Prepared& p = *prepared_;
  const PipelineRun whole = run_pipeline(p, kSize, 0, -1, 1);
  const PipelineRun tiled = run_pipeline(p, 256, 4, -1, 1);
  EXPECT_EQ(whole.threshold, tiled.threshold);
  std::printf("[ otsu ] threshold %.4f\n", whole.threshold);
  expect_identical(whole.sums, tiled.sums);
  EXPECT_GE(f1_of(p, tiled.sums, "otsu, 256 px tiles"), 0.9);
}

}  // namespace
}  // namespace aftermath
