// Unit tests of io/xbd: the affine fit from xy/lng_lat pairs and the written GeoTIFFs / GeoJSON.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "aftermath/core/error.hpp"
#include "aftermath/io/footprints.hpp"
#include "aftermath/io/scene.hpp"
#include "aftermath/io/xbd.hpp"

namespace fs = std::filesystem;
using namespace aftermath;

namespace {

class XbdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    init_gdal();
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("aftermath_io_xbd_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

// The affine used to make the synthetic labels (slightly rotated, as real imagery can be).
constexpr double kGt[6] = {-92.33, 1.2e-5, 1.0e-7, 34.80, 0.8e-7, -1.0e-5};

std::string poly_wkt(const std::vector<cv::Point2d>& pts, bool geo) {
  std::ostringstream s;
  s.precision(15);
  s << "POLYGON ((";
  for (std::size_t i = 0; i <= pts.size(); ++i) {
    const auto& p = pts[i % pts.size()];
    const double x = geo ? kGt[0] + p.x * kGt[1] + p.y * kGt[2] : p.x;
    const double y = geo ? kGt[3] + p.x * kGt[4] + p.y * kGt[5] : p.y;
    s << (i ? ", " : "") << x << " " << y;
  }
  s << "))";
  return s.str();
}

void write_labels(const std::string& path, int n_buildings, bool mismatch_uid = false) {
  nlohmann::json xy = nlohmann::json::array(), ll = nlohmann::json::array();
  for (int i = 0; i < n_buildings; ++i) {
    const double x0 = 5 + 13 * i, y0 = 4 + 9 * (i % 5);
    const std::vector<cv::Point2d> pts{{x0, y0}, {x0 + 8, y0}, {x0 + 8, y0 + 6}, {x0, y0 + 6}};
    const std::string uid = "uid-" + std::to_string(i);
    const char* sub = i % 2 ? "destroyed" : "no-damage";
    ll.push_back({{"properties", {{"feature_type", "building"}, {"subtype", sub}, {"uid", uid}}},
                  {"wkt", poly_wkt(pts, true)}});
    xy.push_back({{"properties", {{"feature_type", "building"}, {"subtype", sub},
                                  {"uid", mismatch_uid && i == 1 ? "other" : uid}}},
                  {"wkt", poly_wkt(pts, false)}});
  }
  nlohmann::json j = {{"features", {{"lng_lat", ll}, {"xy", xy}}}, {"metadata", {{"width", 64}, {"height", 48}}}};
  std::ofstream(path) << j.dump();
}

TEST_F(XbdTest, FitsAffineAndWritesGeoreferencedPair) {
  cv::Mat pre(48, 64, CV_8UC3), post(48, 64, CV_8UC3);
  cv::randu(pre, 0, 255);
  cv::randu(post, 0, 255);
  ASSERT_TRUE(cv::imwrite(path("a_pre.png"), pre));
  ASSERT_TRUE(cv::imwrite(path("a_post.png"), post));
  write_labels(path("a_post.json"), 4);

  const auto res = xbd_import(path("a_pre.png"), path("a_post.png"), path("a_post.json"), path("out/sub"), "a");
  EXPECT_EQ(res.buildings, 4);
  EXPECT_LT(res.fit_rmse_px, 1e-6);
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(res.geotransform[i], kGt[i], std::abs(kGt[i]) * 1e-7 + 1e-12) << i;
  EXPECT_TRUE(fs::exists(res.pre_tif));
  EXPECT_TRUE(fs::exists(res.post_tif));
  EXPECT_TRUE(fs::exists(res.footprints_geojson));
  EXPECT_EQ(fs::path(res.post_tif).filename(), "a_post.tif");

  const SceneInfo info = open_scene(res.post_tif, InputConfig{});
  EXPECT_TRUE(info.georeferenced);
  EXPECT_TRUE(same_crs(info.grid.crs_wkt, crs_to_wkt("EPSG:4326")));
  EXPECT_EQ(info.band_count, 3);
  EXPECT_EQ(info.grid.width, 64);
  SceneReader reader(info, info.grid, ReadOptions{});
  const SceneWindow w = reader.read(Window{0, 0, 64, 48});
  EXPECT_EQ(w.bands[0].at<float>(7, 9), float(post.at<cv::Vec3b>(7, 9)[2]));  // band 1 = red

  // The footprints land back on their xy polygons, with the truth classes.
  const auto set = read_footprints(res.footprints_geojson, info.grid);
  ASSERT_EQ(set.features.size(), 4u);
  EXPECT_EQ(set.features[1].source_id, "uid-1");
  EXPECT_EQ(set.features[1].truth, DamageClass::destroyed);
  EXPECT_NEAR(set.features[1].rings[0][0].x, 18, 1e-5);
  EXPECT_NEAR(set.features[1].rings[0][0].y, 13, 1e-5);
  EXPECT_NEAR(set.features[1].area_px, 48, 1e-3);
}

TEST_F(XbdTest, InconsistentLabelsAreInputErrors) {
  cv::Mat img(48, 64, CV_8UC3, cv::Scalar(1, 2, 3));
  ASSERT_TRUE(cv::imwrite(path("p.png"), img));
  write_labels(path("mismatch.json"), 3, true);
  EXPECT_THROW(xbd_import(path("p.png"), path("p.png"), path("mismatch.json"), path("o"), "m"), Error);
  write_labels(path("one.json"), 0);
  EXPECT_THROW(xbd_import(path("p.png"), path("p.png"), path("one.json"), path("o"), "m"), Error);
  std::ofstream(path("bad.json")) << "{\"features\": ";
  try {
    xbd_import(path("p.png"), path("p.png"), path("bad.json"), path("o"), "m");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::input);
    EXPECT_NE(std::string(e.what()).find("bad.json"), std::string::npos);
  }
  cv::Mat small(10, 10, CV_8UC3, cv::Scalar(0));
  ASSERT_TRUE(cv::imwrite(path("small.png"), small));
  write_labels(path("ok.json"), 3);
  EXPECT_THROW(xbd_import(path("small.png"), path("p.png"), path("ok.json"), path("o"), "m"), Error);
}

TEST_F(XbdTest, RealMidwestFloodingTile) {
  // The bundled sample (tests run from the repository root).
  const std::string root = "data/sample/xbd";
  const std::string stem = "midwest-flooding_00000008";
  const std::string pre = root + "/" + stem + "_pre_disaster.png";
  const std::string post = root + "/" + stem + "_post_disaster.png";
  const std::string labels = root + "/" + stem + "_post_disaster.json";
  ASSERT_TRUE(fs::exists(pre) && fs::exists(post) && fs::exists(labels)) << "bundled sample missing under " << root;
  const auto res = xbd_import(pre, post, labels, path("out"), stem);
  std::printf("  %s: %d buildings, fit RMSE %.4f px, pixel %.3g x %.3g deg\n", stem.c_str(), res.buildings,
              res.fit_rmse_px, res.geotransform[1], res.geotransform[5]);
  EXPECT_GT(res.buildings, 0);
  EXPECT_LT(res.fit_rmse_px, 1.0);
  EXPECT_NEAR(res.geotransform[0], -92.33, 0.05);
  EXPECT_NEAR(res.geotransform[3], 34.80, 0.05);
  const SceneInfo info = open_scene(res.post_tif, InputConfig{});
  EXPECT_EQ(info.grid.width, 1024);
  const auto set = read_footprints(res.footprints_geojson, info.grid);
  EXPECT_EQ(static_cast<int>(set.features.size()), res.buildings);
}

}  // namespace
