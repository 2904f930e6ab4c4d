// Damage sites finished inside their tile (take_inner_sites) and joined at the end of the job
// (SiteAccumulator) give exactly the sites of the whole scene: figures, order, ids and runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <opencv2/imgproc.hpp>
#include <string>

#include "aftermath/core/error.hpp"
#include "aftermath/core/grid.hpp"
#include "aftermath/score/sites.hpp"
#include "aftermath/score/threshold.hpp"

namespace aftermath {
namespace {

struct Masks {
  cv::Mat mask, codes, built;  // CV_8U MaskValue, CV_16U codes, CV_8U built-up (may be empty)
};

cv::Mat cut(const cv::Mat& m, const Window& w) { return m.empty() ? cv::Mat() : m(w.rect()); }

/// The whole scene as one tile, every component joined by SiteAccumulator::finalize.
std::vector<DamageSite> whole_scene(const Masks& s, std::int64_t min_pixels, double min_built) {
  SiteAccumulator acc;
  acc.add(mask_runs(Window{0, 0, s.mask.cols, s.mask.rows}, s.mask, s.codes, s.built));
  return std::move(acc).finalize(min_pixels, min_built);
}

/// Tiles of `tile_size` (last to first): components inside a tile's core are finished there,
/// the others' runs handed in; `finished` counts the sites finished in tiles.
std::vector<DamageSite> on_tiles(const Masks& s, int tile_size, std::int64_t min_pixels,
                                 double min_built, std::size_t* finished = nullptr) {
  const TileGrid grid(s.mask.cols, s.mask.rows, tile_size, 0);
  SiteAccumulator acc;
  for (int i = grid.count() - 1; i >= 0; --i) {
    const Window core = grid.tile(i).core;
    auto runs = mask_runs(core, cut(s.mask, core), cut(s.codes, core), cut(s.built, core));
    auto sites = take_inner_sites(runs, core, min_pixels, min_built);
    acc.add(std::move(runs), std::move(sites));
  }
  if (finished) *finished = acc.finished_count();
  return std::move(acc).finalize(min_pixels, min_built);
}

void expect_same_sites(const std::vector<DamageSite>& a, const std::vector<DamageSite>& b,
                       const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (std::size_t i = 0; i < a.size(); ++i) {
    SCOPED_TRACE(what + ", site " + std::to_string(i));
    EXPECT_EQ(a[i].id, static_cast<std::int64_t>(i));
    EXPECT_EQ(b[i].id, static_cast<std::int64_t>(i));
    EXPECT_EQ(a[i].pixels, b[i].pixels);
    // Bit for bit: the same sums in the same order wherever the site is finished.
    EXPECT_EQ(a[i].mean_score, b[i].mean_score);
    EXPECT_EQ(a[i].max_score, b[i].max_score);
    EXPECT_EQ(a[i].built_up_fraction, b[i].built_up_fraction);
    EXPECT_EQ(a[i].bbox, b[i].bbox);
    EXPECT_EQ(a[i].centroid.x, b[i].centroid.x);
    EXPECT_EQ(a[i].centroid.y, b[i].centroid.y);
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_EQ(a[i].runs, b[i].runs);
  }
}

/// A 96 x 96 scene on 32 px tiles (3 x 3) with one component of each kind.
Masks hand_made() {
  Masks s;
  s.mask = cv::Mat(96, 96, CV_8U, cv::Scalar(kMaskUnchanged));
  s.codes = cv::Mat(96, 96, CV_16U, cv::Scalar(0));
  s.built = cv::Mat(96, 96, CV_8U, cv::Scalar(0));
  const auto set = [&](cv::Rect r, std::uint16_t code) {
    s.mask(r).setTo(kMaskChanged);
    s.codes(r).setTo(code);
  };
  set({5, 5, 10, 8}, 40000);     // inside tile 0 (80 px)
  set({6, 13, 3, 6}, 45000);     //   ... an L below it (18 px), same component
  set({26, 40, 14, 6}, 50000);   // across the border between tiles 3 and 4 (84 px)
  set({58, 58, 13, 13}, 42000);  // across the corner of tiles 4, 5, 7 and 8, with a hole
  s.mask(cv::Rect(62, 62, 4, 4)).setTo(kMaskUnchanged);
  set({80, 10, 2, 2}, 60000);    // inside tile 2, too small (4 px)
  set({62, 20, 3, 1}, 61000);    // across the border of tiles 1 and 2, too small (3 px)
  set({32, 70, 9, 9}, 43000);    // inside tile 7, on its core's left edge (81 px): kept as runs
  set({70, 36, 12, 12}, 47000);  // inside tile 5 (144 px), a quarter built-up
  set({40, 8, 12, 12}, 48000);   // inside tile 1 (144 px), three quarters built-up
  set({0, 90, 20, 6}, 52000);    // on the scene's border (tile 6; 120 px)
  set({88, 88, 8, 8}, 41000);    // the scene's corner (tile 8; 64 px)
  s.built(cv::Rect(70, 36, 12, 3)).setTo(1);
  s.built(cv::Rect(40, 8, 12, 9)).setTo(1);
  s.built(cv::Rect(26, 40, 5, 6)).setTo(1);  // 30 of the border-crossing site's 84 px
  // Scores that differ pixel to pixel, so the sums' order matters.
  for (int r = 0; r < 96; ++r) {
    for (int c = 0; c < 96; ++c)
      s.codes.at<std::uint16_t>(r, c) += static_cast<std::uint16_t>(7 * r + 3 * c);
  }
  return s;
}

TEST(SitesOnTiles, TakeInnerSitesFinishesInnerComponentsAndKeepsTheOthersRuns) {
  const Masks s = hand_made();
  const Window core{32, 32, 32, 32};  // tile 4: the border-crossing and the corner-crossing parts
  auto runs = mask_runs(core, cut(s.mask, core), cut(s.codes, core), cut(s.built, core));
  const auto all = runs;
  EXPECT_TRUE(take_inner_sites(runs, core, 1, 0).empty());  // nothing lies wholly inside
  EXPECT_EQ(runs, all);

  const Window tile0{0, 0, 32, 32};
  runs = mask_runs(tile0, cut(s.mask, tile0), cut(s.codes, tile0), cut(s.built, tile0));
  auto sites = take_inner_sites(runs, tile0, 50, 0);
  EXPECT_TRUE(runs.empty());
  ASSERT_EQ(sites.size(), 1u);
  EXPECT_EQ(sites[0].pixels, 98);
  EXPECT_EQ(sites[0].bbox, cv::Rect(5, 5, 10, 14));
  EXPECT_EQ(sites[0].first, cv::Point(5, 5));
  EXPECT_TRUE(sites[0].outline.empty());
  EXPECT_EQ(sites[0].runs.size(), 14u);
  runs = mask_runs(tile0, cut(s.mask, tile0), cut(s.codes, tile0), cut(s.built, tile0));
  EXPECT_TRUE(take_inner_sites(runs, tile0, 99, 0).empty());  // too small: dropped
  EXPECT_TRUE(runs.empty());

  // Tile 7: the component on its core's left edge stays as runs; tile 2: the small one goes.
  const Window tile7{32, 64, 32, 32};
  runs = mask_runs(tile7, cut(s.mask, tile7), cut(s.codes, tile7), cut(s.built, tile7));
  EXPECT_TRUE(take_inner_sites(runs, tile7, 1, 0).empty());
  EXPECT_EQ(runs.size(), 9u + 7u);  // and the corner-crossing component's 7 rows
  EXPECT_EQ(std::count_if(runs.begin(), runs.end(), [](const MaskRun& r) { return r.x0 == 32; }),
            9);
  const Window tile2{64, 0, 32, 32};
  runs = mask_runs(tile2, cut(s.mask, tile2), cut(s.codes, tile2), cut(s.built, tile2));
  EXPECT_TRUE(take_inner_sites(runs, tile2, 5, 0).empty());
  EXPECT_EQ(runs.size(), 1u);  // the 3 px run on the core's left edge
  EXPECT_EQ(runs[0].x0, 64);

  // The built-up filter: tile 5's site is a quarter built-up, tile 1's three quarters.
  for (const auto& [core5, expected] :
       {std::pair{Window{64, 32, 32, 32}, 0}, {Window{32, 0, 32, 32}, 1}}) {
    runs = mask_runs(core5, cut(s.mask, core5), cut(s.codes, core5), cut(s.built, core5));
    sites = take_inner_sites(runs, core5, 1, 0.5);
    EXPECT_EQ(sites.size(), static_cast<std::size_t>(expected));
  }
}

TEST(SitesOnTiles, HandMadeComponentsSameAsTheWholeScene) {
  const Masks s = hand_made();
  for (const auto& [min_pixels, min_built] :
       {std::pair<std::int64_t, double>{1, 0}, {5, 0}, {90, 0}, {1, 0.3}, {50, 0.5}}) {
    const std::string what =
        "min " + std::to_string(min_pixels) + ", built " + std::to_string(min_built);
    const auto whole = whole_scene(s, min_pixels, min_built);
    std::size_t finished = 0;
    const auto tiled = on_tiles(s, 32, min_pixels, min_built, &finished);
    EXPECT_GT(finished, 0u) << what;
    expect_same_sites(whole, tiled, what);
  }
  // Without a filter: every component, the small ones too (10 of them).
  EXPECT_EQ(whole_scene(s, 1, 0).size(), 10u);
  EXPECT_EQ(whole_scene(s, 5, 0).size(), 8u);
  EXPECT_EQ(whole_scene(s, 1, 0.3).size(), 2u);  // the 3/4 built-up one and the 30/84 crossing
}

TEST(SitesOnTiles, RandomMasksSameAsTheWholeSceneForAnyTiling) {
  for (const unsigned seed : {1u, 7u}) {
    cv::Mat noise(300, 260, CV_32F), smooth;
    cv::RNG rng(seed);
    rng.fill(noise, cv::RNG::UNIFORM, 0.0, 1.0);
    cv::GaussianBlur(noise, smooth, cv::Size(0, 0), 3.0);
    cv::normalize(smooth, smooth, 0, 1, cv::NORM_MINMAX);
    const cv::Mat score = 0.8 * smooth + 0.2 * noise;
    const cv::Mat valid(score.size(), CV_8U, cv::Scalar(255));
    Masks s;
    s.codes = encode_scores(score, valid);
    s.mask = damage_mask_from_codes(s.codes, 0.55, 0);
    cv::Mat b(score.size(), CV_32F);
    rng.fill(b, cv::RNG::UNIFORM, 0.0, 1.0);
    cv::GaussianBlur(b, b, cv::Size(0, 0), 6.0);
    cv::normalize(b, b, 0, 1, cv::NORM_MINMAX);
    s.built = b > 0.5f;
    for (const auto& [min_pixels, min_built] :
         {std::pair<std::int64_t, double>{1, 0}, {20, 0}, {20, 0.4}}) {
      const auto whole = whole_scene(s, min_pixels, min_built);
      ASSERT_GT(whole.size(), 5u);
      for (const int ts : {300, 64, 37}) {
        const std::string what = "seed " + std::to_string(seed) + ", tile " + std::to_string(ts) +
                                 ", min " + std::to_string(min_pixels) + ", built " +
                                 std::to_string(min_built);
        std::size_t finished = 0;
        expect_same_sites(whole, on_tiles(s, ts, min_pixels, min_built, &finished), what);
        if (ts == 64) {
          EXPECT_GT(finished, 0u) << what;
        }
      }
    }
  }
}

TEST(SitesOnTiles, StateMergedFromPartsCarriesTheFinishedSites) {
  const Masks s = hand_made();
  const TileGrid grid(96, 96, 32, 0);
  SiteAccumulator parts[2], merged;
  for (int i = 0; i < grid.count(); ++i) {
    const Window core = grid.tile(i).core;
    auto runs = mask_runs(core, cut(s.mask, core), cut(s.codes, core), cut(s.built, core));
    auto sites = take_inner_sites(runs, core, 5, 0);
    for (DamageSite& site : sites) site.outline = pack_outline(site_outline(site));
    if (i == 1) sites.front().runs.clear();  // as the engine hands them in: outline, no runs
    parts[i % 2].add(std::move(runs), std::move(sites));
  }
  EXPECT_GT(parts[0].finished_count(), 0u);
  EXPECT_GT(parts[1].finished_count(), 0u);
  merged.merge_serialized(parts[1].serialize());
  merged.merge_serialized(parts[0].serialize());
  EXPECT_EQ(merged.finished_count(), parts[0].finished_count() + parts[1].finished_count());
  EXPECT_EQ(merged.run_count(), parts[0].run_count() + parts[1].run_count());
  EXPECT_EQ(merged.serialize().size(),
            parts[0].serialize().size() + parts[1].serialize().size() - 16);
  // The const form leaves the state as it was; the rvalue form consumes it.
  const auto copied = merged.finalize(5, 0);
  const auto consumed = std::move(merged).finalize(5, 0);
  const auto whole = whole_scene(s, 5, 0);
  ASSERT_EQ(consumed.size(), whole.size());
  ASSERT_EQ(copied.size(), whole.size());
  for (std::size_t i = 0; i < whole.size(); ++i) {
    EXPECT_EQ(consumed[i].first, whole[i].first);
    EXPECT_EQ(consumed[i].centroid, whole[i].centroid);
    EXPECT_EQ(copied[i].outline, consumed[i].outline);
    if (!consumed[i].outline.empty()) {
      EXPECT_EQ(unpack_outline(consumed[i].outline), site_outline(whole[i]));
    } else {
      EXPECT_EQ(consumed[i].runs, whole[i].runs);  // joined at the end
    }
  }
  // Truncated or stray bytes are refused.
  auto bytes = parts[0].serialize();
  bytes.pop_back();
  EXPECT_THROW(SiteAccumulator().merge_serialized(bytes), Error);
  bytes = parts[0].serialize();
  bytes.push_back(0);
  EXPECT_THROW(SiteAccumulator().merge_serialized(bytes), Error);
}

TEST(SitesOnTiles, PackedOutlinesUnpackExactly) {
  cv::Mat noise(200, 240, CV_32F), smooth;
  cv::RNG(3).fill(noise, cv::RNG::UNIFORM, 0.0, 1.0);
  cv::GaussianBlur(noise, smooth, cv::Size(0, 0), 3.0);
  cv::normalize(smooth, smooth, 0, 1, cv::NORM_MINMAX);
  const cv::Mat score = 0.7 * smooth + 0.3 * noise;  // holes and corner touches
  Masks s;
  s.codes = encode_scores(score, cv::Mat(score.size(), CV_8U, cv::Scalar(255)));
  s.mask = damage_mask_from_codes(s.codes, 0.55, 0);
  const auto sites = whole_scene(s, 1, 0);
  ASSERT_GT(sites.size(), 10u);
  std::size_t vertices = 0, bytes = 0;
  for (const DamageSite& site : sites) {
    const auto rings = site_outline(site);
    const auto packed = pack_outline(rings);
    EXPECT_EQ(unpack_outline(packed), rings) << "site " << site.id;
    EXPECT_EQ(packed.capacity(), packed.size());
    for (const auto& ring : rings) vertices += ring.size();
    bytes += packed.size();
  }
  EXPECT_LT(bytes, 3 * vertices);  // WKT takes ~20 bytes a vertex
  // Any int coordinates, far apart; no rings; malformed bytes refused.
  const std::vector<std::vector<cv::Point>> far = {
      {{INT32_MIN, INT32_MAX}, {INT32_MAX, INT32_MAX}, {INT32_MAX, INT32_MIN}, {-5, 7}}, {{0, 0}}};
  EXPECT_EQ(unpack_outline(pack_outline(far)), far);
  EXPECT_TRUE(unpack_outline(pack_outline({})).empty());
  auto packed = pack_outline(far);
  packed.pop_back();
  EXPECT_THROW(unpack_outline(packed), Error);
  packed = pack_outline(far);
  packed.push_back(0);
  EXPECT_THROW(unpack_outline(packed), Error);
  EXPECT_THROW(unpack_outline({0x80, 0x80}), Error);
  EXPECT_THROW(unpack_outline({}), Error);
}

TEST(SitesOnTiles, ATileHandedInTwiceIsAnError) {
  const Masks s = hand_made();
  const Window tile0{0, 0, 32, 32};
  SiteAccumulator acc;
  for (int k = 0; k < 2; ++k) {
    auto runs = mask_runs(tile0, cut(s.mask, tile0), cut(s.codes, tile0), cut(s.built, tile0));
    acc.add({}, take_inner_sites(runs, tile0, 1, 0));
  }
  EXPECT_THROW(std::move(acc).finalize(1, 0), Error);
}

}  // namespace
}  // namespace aftermath
