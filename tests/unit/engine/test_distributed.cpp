// The MPI helpers that need no MPI: a communicator of one process, the Registration message,
// the split of the tiles over ranks.
#include <gtest/gtest.h>

#include <set>

#include "aftermath/core/error.hpp"
#include "distributed.hpp"
#include "ranked_tiles.hpp"

namespace aftermath::engine {
namespace {

Registration field_registration() {
  Registration r;
  r.model = "field";
  r.method = "phase correlation";
  r.shift = {1.25, -0.75};
  r.affine = cv::Matx23d(1.0001, 0.0002, 1.3, -0.0003, 0.9998, -0.6);
  r.field.origin = {16.5, 32.25};
  r.field.spacing = 128;
  r.field.dx = (cv::Mat_<double>(2, 3) << 0.1, 0.2, 0.3, -0.1, -0.2, 1.0 / 3.0);
  r.field.dy = cv::Mat::zeros(2, 3, CV_64F);
  r.field.sigma = cv::Mat::ones(2, 3, CV_64F) * 0.05;
  r.grid = {1000, 700};
  r.max_displacement = 2.5;
  r.uncertainty = 0.07;
  TiePoint t;
  t.window = {10, 20, 256, 256};
  t.shift = {1.2, -0.7};
  t.peak = 0.9;
  t.psr = 12;
  t.ssim_before = 0.4;
  t.ssim_after = 0.8;
  t.residual = 0.01;
  t.cv_residual = 0.02;
  t.kept = true;
  r.ties = {t, t};
  r.ties[1].kept = false;
  r.ties[1].reason = "weak peak";
  r.kept = 1;
  r.dropped = 1;
  r.rmse_before = 1.4;
  r.rmse_after = 0.03;
  r.cv_rmse = 0.04;
  r.cv_translation = 0.3;
  r.cv_affine = 0.05;
  r.cv_field = 0.04;
  r.warning = "a warning";
  return r;
}

TEST(Distributed, RegistrationRoundTripsBitForBit) {
  const Registration a = field_registration();
  const Bytes bytes = serialize_registration(a);
  const Registration b = deserialize_registration(bytes);
  EXPECT_EQ(serialize_registration(b), bytes);
  EXPECT_EQ(b.model, "field");
  EXPECT_EQ(b.ties.size(), 2u);
  EXPECT_EQ(b.ties[1].reason, "weak peak");
  EXPECT_FALSE(b.ties[1].kept);
  EXPECT_EQ(cv::norm(a.field.dx, b.field.dx, cv::NORM_INF), 0.0);
  for (double x : {10.0, 500.0, 999.0}) {
    const cv::Point2d da = displacement(a, x, x / 2), db = displacement(b, x, x / 2);
    EXPECT_EQ(da.x, db.x);
    EXPECT_EQ(da.y, db.y);
  }
  // A truncated message is an error, not a half-read model.
  Bytes cut(bytes.begin(), bytes.end() - 3);
  EXPECT_THROW(deserialize_registration(cut), Error);
}

TEST(Distributed, AloneEveryCallIsLocal) {
  const Communicator c = Communicator::self();
  EXPECT_FALSE(c.distributed());
  EXPECT_EQ(c.size(), 1);
  Bytes b{1, 2, 3};
  c.broadcast(b, 0);
  EXPECT_EQ(b, (Bytes{1, 2, 3}));
  EXPECT_EQ(c.gather(b, 0), std::vector<Bytes>{b});
  std::vector<std::int64_t> v{4, 5};
  c.sum(v);
  EXPECT_EQ(v, (std::vector<std::int64_t>{4, 5}));
  EXPECT_TRUE(c.all_equal(42));
  c.agree(nullptr);
  // A local failure is rethrown as it was (kind and context kept).
  try {
    c.run_agreed([] { throw Error(ErrorKind::output, "disk full", "write", {}, 7); });
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::output);
    EXPECT_EQ(e.tile(), 7);
  }
  EXPECT_EQ(share_registration(c, [] { return field_registration(); }).warning, "a warning");
}

TEST(Distributed, RanksSplitTheTileRows) {
  const TileGrid tiles(1300, 1300, 320, 32);  // 5 x 5 tiles
  for (int ranks : {1, 2, 3, 4, 7}) {
    std::set<int> seen;
    int previous_last_row = -1;
    for (int r = 0; r < ranks; ++r) {
      const auto order = rank_tile_order(tiles, 2, r, ranks);
      for (int i : order) {
        EXPECT_TRUE(seen.insert(i).second) << "tile " << i << " on two ranks";
        EXPECT_GT(i / tiles.cols(), previous_last_row) << "rank " << r << " of " << ranks;
      }
      if (!order.empty()) {
        int last_row = 0;
        for (int i : order) last_row = std::max(last_row, i / tiles.cols());
        previous_last_row = last_row;
        EXPECT_EQ(order.size() % static_cast<std::size_t>(tiles.cols()), 0u) << "whole rows";
      }
    }
    EXPECT_EQ(static_cast<int>(seen.size()), tiles.count()) << ranks << " ranks";
  }
  EXPECT_EQ(rank_tile_order(tiles, 2, 0, 1), strip_order(tiles, 2));
}

TEST(Distributed, RawChunkLayersAreUncompressed) {
  std::vector<LayerSpec> layers(2);
  layers[0].deflate_level = 6;
  const auto raw = raw_chunk_layers(layers);
  for (const auto& l : raw) EXPECT_EQ(l.deflate_level, 0);
  const cv::Mat core(5, 7, CV_32F, cv::Scalar(1.5f));
  const EncodedChunk c = encode_chunk(raw[0], core, 8, 4);
  EXPECT_EQ(c.bytes.size(), 8u * 8u * 4u);  // padded, not compressed: what H5Dwrite takes
}

}  // namespace
}  // namespace aftermath::engine
