// Hdf5Reader reads back what Hdf5Writer wrote.
#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "aftermath/core/error.hpp"
#include "aftermath/io/hdf5_reader.hpp"
#include "aftermath/io/hdf5_writer.hpp"

using namespace aftermath;
namespace fs = std::filesystem;

TEST(Hdf5Reader, ReadsBackGridAttributesLayersAndTables) {
  char tmpl[] = "/tmp/aftermath-h5r-XXXXXX";
  const fs::path dir = mkdtemp(tmpl);
  const std::string path = (dir / "out.h5").string();
  Grid g;
  g.crs_wkt = "PROJCS[\"WGS 84 / UTM zone 15N\",GEOGCS[\"WGS 84\",DATUM[\"WGS_1984\",SPHEROID[\"WGS 84\",6378137,298.257223563]],PRIMEM[\"Greenwich\",0],UNIT[\"degree\",0.0174532925199433]],PROJECTION[\"Transverse_Mercator\"],PARAMETER[\"latitude_of_origin\",0],PARAMETER[\"central_meridian\",-93],PARAMETER[\"scale_factor\",0.9996],PARAMETER[\"false_easting\",500000],PARAMETER[\"false_northing\",0],UNIT[\"metre\",1],AUTHORITY[\"EPSG\",\"32615\"]]";
  g.geotransform = {500000.5, 0.6, 0, 4200000.25, 0, -0.6};
  g.width = 150;
  g.height = 100;
  const TileGrid tiles(g.width, g.height, 64, 0);
  std::vector<LayerSpec> specs = {{"change_score", LayerType::float32, -1.0, "score", "1", {}, {}},
                                  {"damage_mask", LayerType::uint8, 255, "mask", "", {0, 1, 255}, "a b c"}};
  cv::Mat score(g.height, g.width, CV_32F), mask(g.height, g.width, CV_8U);
  cv::randu(score, 0.0, 1.0);
  cv::randu(mask, 0, 2);
  {
    Hdf5Writer w(path, g, 64, specs, 4);
    for (int i = 0; i < tiles.count(); ++i) {
      const Tile t = tiles.tile(i);
      w.write_chunk(0, t, encode_chunk(specs[0], score(t.core.rect()), 64, 4));
      w.write_chunk(1, t, encode_chunk(specs[1], mask(t.core.rect()), 64, 4));
    }
    Table tab;
    tab.group = "footprints";
    tab.dimension = "feature";
    tab.columns.push_back({"id", std::vector<std::int64_t>{7, 8}, "", "", {}});
    tab.columns.push_back({"source_id", std::vector<std::string>{"a", "b\xc3\xa9"}, "", "", {}});
    tab.columns.push_back({"mean", std::vector<double>{0.25, 0.5}, "", "", {}});
    tab.columns.push_back({"cls", std::vector<std::uint8_t>{3, 0}, "", "", {}});
    w.write_table(tab);
    w.set_attribute("/", "input_pre_sha256", std::string("abc"));
    w.set_attribute("/", "threshold", 0.5);
    w.commit();
  }
  Hdf5Reader r(path);
  const Grid back = r.grid();
  EXPECT_EQ(back.width, 150);
  EXPECT_EQ(back.height, 100);
  for (int i = 0; i < 6; ++i) EXPECT_DOUBLE_EQ(back.geotransform[i], g.geotransform[i]);
  EXPECT_FALSE(back.crs_wkt.empty());
  EXPECT_EQ(r.string_attribute("/", "input_pre_sha256"), "abc");
  EXPECT_EQ(r.number_attribute("/", "threshold"), 0.5);
  EXPECT_FALSE(r.string_attribute("/", "nope").has_value());
  EXPECT_TRUE(r.has("footprints/cls"));
  EXPECT_FALSE(r.has("nothing/here"));
  EXPECT_EQ(cv::norm(r.layer("change_score"), score, cv::NORM_INF), 0.0);
  EXPECT_EQ(cv::norm(r.layer("damage_mask", {10, 20, 70, 50}), mask(cv::Rect(10, 20, 70, 50)), cv::NORM_INF), 0.0);
  EXPECT_EQ(r.column_int64("footprints/id"), (std::vector<std::int64_t>{7, 8}));
  EXPECT_EQ(r.column_string("footprints/source_id"), (std::vector<std::string>{"a", "b\xc3\xa9"}));
  EXPECT_EQ(r.column_double("footprints/mean"), (std::vector<double>{0.25, 0.5}));
  EXPECT_EQ(r.column_uint8("footprints/cls"), (std::vector<std::uint8_t>{3, 0}));
  EXPECT_THROW(r.layer("missing"), Error);
  EXPECT_THROW(Hdf5Reader((dir / "none.h5").string()), Error);
  fs::remove_all(dir);
}

#include "aftermath/io/scene.hpp"

TEST(Sha256, TextKnownDigests) {
  EXPECT_EQ(sha256_text(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_text("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
