// Unit tests of io/scene: open_scene validation, SceneReader (direct and warp paths),
// CRS helpers, write_geotiff and sha256_file. Inputs are generated under a temporary directory.
#include <gdal.h>
#include <gdal_utils.h>
#include <gtest/gtest.h>
#include <ogr_spatialref.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <opencv2/imgcodecs.hpp>
#include <string>
#include <thread>

#include "aftermath/core/error.hpp"
#include "aftermath/io/scene.hpp"
#include "synthetic.hpp"

namespace fs = std::filesystem;
using namespace aftermath;

namespace {

class SceneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    init_gdal();
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("aftermath_io_scene_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  static Grid utm_grid(int w, int h, double px = 1.0) {
    Grid g;
    g.crs_wkt = crs_to_wkt("EPSG:32615");
    g.geotransform = {500000, px, 0, 3850000, 0, -px};
    g.width = w;
    g.height = h;
    return g;
  }

  static std::vector<cv::Mat> texture_bands(int w, int h, int n, unsigned seed = 3) {
    std::vector<cv::Mat> out;
    for (int i = 0; i < n; ++i) out.push_back(test::make_texture(w, h, seed + i));
    return out;
  }

  fs::path dir_;
};

double max_abs_diff(const cv::Mat& a, const cv::Mat& b) { return cv::norm(a, b, cv::NORM_INF); }

/// Expects `fn` to throw Error of `kind` whose message contains every one of `parts`.
template <class Fn>
void expect_error(Fn fn, ErrorKind kind, std::initializer_list<std::string> parts) {
  try {
    fn();
    ADD_FAILURE() << "no exception";
  } catch (const Error& e) {
    EXPECT_EQ(static_cast<int>(e.kind()), static_cast<int>(kind)) << e.what();
    if (std::getenv("AFTERMATH_TEST_VERBOSE")) std::printf("  error: %s\n", e.what());
    for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what() << " lacks " << p;
  }
}

// -------------------------------------------------------------------------------------------------
// Direct path

TEST_F(SceneTest, DirectReadEqualsWrittenPixels) {
  const Grid g = utm_grid(96, 80);
  const auto bands = texture_bands(96, 80, 3);
  write_geotiff(path("a.tif"), g, bands);
  const SceneInfo info = open_scene(path("a.tif"), InputConfig{});
  EXPECT_EQ(info.driver, "GTiff");
  EXPECT_TRUE(info.georeferenced);
  EXPECT_EQ(info.band_count, 3);
  EXPECT_EQ(info.data_type, "Float32");
  EXPECT_FALSE(info.nodata.has_value());
  EXPECT_FALSE(info.has_mask);
  EXPECT_GT(info.file_size, 0);
  EXPECT_EQ(info.grid.width, 96);
  EXPECT_EQ(info.grid.height, 80);
  EXPECT_TRUE(same_crs(info.grid.crs_wkt, g.crs_wkt));
  for (int i = 0; i < 6; ++i) EXPECT_DOUBLE_EQ(info.grid.geotransform[i], g.geotransform[i]);

  SceneReader reader(info, info.grid, ReadOptions{});
  EXPECT_TRUE(reader.direct());
  const SceneWindow w = reader.read(Window{0, 0, 96, 80});
  ASSERT_EQ(w.bands.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(w.bands[i].type(), CV_32F);
    EXPECT_EQ(max_abs_diff(w.bands[i], bands[i]), 0.0);
  }
  EXPECT_EQ(cv::countNonZero(w.valid), 96 * 80);

  // Band selection, 1-based, any order.
  ReadOptions opt;
  opt.bands = {3, 1};
  SceneReader r2(info, info.grid, opt);
  const SceneWindow w2 = r2.read(Window{10, 20, 30, 40});
  ASSERT_EQ(w2.bands.size(), 2u);
  EXPECT_EQ(max_abs_diff(w2.bands[0], bands[2](cv::Rect(10, 20, 30, 40))), 0.0);
  EXPECT_EQ(max_abs_diff(w2.bands[1], bands[0](cv::Rect(10, 20, 30, 40))), 0.0);

  ReadOptions bad;
  bad.bands = {4};
  expect_error([&] { SceneReader r(info, info.grid, bad); }, ErrorKind::input, {"band 4"});
}

TEST_F(SceneTest, WindowPartlyOutsideGridIsInvalidThere) {
  const Grid g = utm_grid(64, 64);
  const auto bands = texture_bands(64, 64, 1);
  write_geotiff(path("a.tif"), g, bands);
  const SceneInfo info = open_scene(path("a.tif"), InputConfig{});
  SceneReader reader(info, info.grid, ReadOptions{});
  const Window win{-10, -5, 40, 30};
  const SceneWindow w = reader.read(win);
  ASSERT_EQ(w.valid.size(), cv::Size(40, 30));
  for (int r = 0; r < 30; ++r) {
    for (int c = 0; c < 40; ++c) {
      const bool inside = c >= 10 && r >= 5;
      ASSERT_EQ(w.valid.at<uchar>(r, c) != 0, inside) << r << "," << c;
      if (inside) {
        ASSERT_EQ(w.bands[0].at<float>(r, c), bands[0].at<float>(r - 5, c - 10));
      } else {
        ASSERT_EQ(w.bands[0].at<float>(r, c), 0.f);
      }
    }
  }
  // Entirely outside: all invalid, no error.
  const SceneWindow far = reader.read(Window{200, 200, 8, 8});
  EXPECT_EQ(cv::countNonZero(far.valid), 0);
  // Beyond the right/bottom edge.
  const SceneWindow br = reader.read(Window{60, 60, 8, 8});
  EXPECT_EQ(cv::countNonZero(br.valid), 16);
}

TEST_F(SceneTest, IntegerOffsetIsDirect) {
  const Grid g = utm_grid(64, 64);
  const auto bands = texture_bands(64, 64, 1);
  write_geotiff(path("a.tif"), g, bands);
  const SceneInfo info = open_scene(path("a.tif"), InputConfig{});
  Grid sub = g;
  sub.geotransform[0] += 10;  // 10 px east
  sub.geotransform[3] -= 20;  // 20 px south
  sub.width = 40;
  sub.height = 40;
  SceneReader reader(info, sub, ReadOptions{});
  EXPECT_TRUE(reader.direct());
  const SceneWindow w = reader.read(Window{0, 0, 40, 40});
  EXPECT_EQ(max_abs_diff(w.bands[0], bands[0](cv::Rect(10, 20, 40, 40))), 0.0);
  EXPECT_EQ(cv::countNonZero(w.valid), 40 * 40);
  // The analysis grid's halo outside the grid is invalid even where the file has data.
  const SceneWindow h = reader.read(Window{-2, -2, 44, 44});
  EXPECT_EQ(cv::countNonZero(h.valid), 40 * 40);

  Grid shifted = g;
  shifted.geotransform[0] += 0.5;  // half a pixel: must warp
  SceneReader r2(info, shifted, ReadOptions{});
  EXPECT_FALSE(r2.direct());
}

TEST_F(SceneTest, SharedBlockCacheReadsWhatADirectReadGives) {
  // 4 bands of uint16 in 256 px tiles, a nodata value, read through a grid offset by a few px:
  // windows from two threads through one small cache (evicting) equal plain direct reads.
  const Grid g = utm_grid(700, 600);
  std::vector<cv::Mat> bands;
  for (int k = 0; k < 4; ++k) {
    cv::Mat b;
    test::make_texture(700, 600, 11 + k).convertTo(b, CV_16U, 100, 1000);
    b(cv::Rect(30 + 40 * k, 50, 20, 300)).setTo(0);  // nodata stripes, a different one per band
    bands.push_back(b);
  }
  write_geotiff(path("u.tif"), g, bands, 0.0);
  const SceneInfo info = open_scene(path("u.tif"), InputConfig{});
  Grid sub = g;
  sub.geotransform[0] += 7;
  sub.geotransform[3] -= 3;
  sub.width = 650;
  sub.height = 590;
  auto cache = std::make_shared<SceneBlockCache>(6u << 20);  // a few blocks: evicts
  std::vector<Window> windows;
  for (int y = -40; y < 600; y += 97) {
    for (int x = -40; x < 660; x += 131) windows.push_back(Window{x, y, 180, 150});
  }
  SceneReader plain(info, sub, ReadOptions{});
  std::vector<SceneWindow> expected;
  for (const auto& w : windows) expected.push_back(plain.read(w));
  std::vector<std::vector<SceneWindow>> got(2);
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      SceneReader r(info, sub, ReadOptions{}, cache);
      for (std::size_t i = 0; i < windows.size(); ++i)
        got[t].push_back(r.read(windows[(i + 5 * t) % windows.size()]));
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 2; ++t) {
    for (std::size_t i = 0; i < windows.size(); ++i) {
      const SceneWindow& e = expected[(i + 5 * t) % windows.size()];
      const SceneWindow& a = got[t][i];
      ASSERT_EQ(a.bands.size(), 4u);
      EXPECT_EQ(cv::norm(a.valid, e.valid, cv::NORM_INF), 0.0) << i;
      for (int k = 0; k < 4; ++k)
        EXPECT_EQ(max_abs_diff(a.bands[k], e.bands[k]), 0.0) << i << " band " << k;
    }
  }
  const auto st = cache->stats();
  EXPECT_GT(st.decoded, 0);
  EXPECT_GT(st.reused, 0);
}

TEST_F(SceneTest, ReadNativeKeepsIntegerBlocksWithTheValuesOfRead) {
  // uint16 in 256 px tiles with nodata, through a grid offset by a few px (windows crossing
  // blocks and the scene's edge): read_native gives uint16 bands whose values are read()'s.
  const Grid g = utm_grid(600, 520);
  std::vector<cv::Mat> bands;
  for (int k = 0; k < 3; ++k) {
    cv::Mat b;
    test::make_texture(600, 520, 21 + k).convertTo(b, CV_16U, 100, 1000);
    b(cv::Rect(40 + 30 * k, 60, 25, 200)).setTo(0);
    bands.push_back(b);
  }
  write_geotiff(path("n16.tif"), g, bands, 0.0);
  const SceneInfo info = open_scene(path("n16.tif"), InputConfig{});
  Grid sub = g;
  sub.geotransform[0] += 5;
  sub.geotransform[3] -= 9;
  sub.width = 590;
  sub.height = 505;
  SceneReader reader(info, sub, ReadOptions{}, std::make_shared<SceneBlockCache>(64u << 20));
  for (const Window& w :
       {Window{-20, -10, 300, 280}, Window{200, 240, 300, 280}, Window{450, 400, 200, 150}}) {
    const SceneWindow f = reader.read(w), u = reader.read_native(w);
    ASSERT_EQ(u.bands.size(), 3u);
    EXPECT_EQ(cv::norm(u.valid, f.valid, cv::NORM_INF), 0.0);
    for (int k = 0; k < 3; ++k) {
      ASSERT_EQ(u.bands[k].type(), CV_16U);
      cv::Mat as_float;
      u.bands[k].convertTo(as_float, CV_32F);
      EXPECT_EQ(max_abs_diff(as_float, f.bands[k]), 0.0) << k;
    }
  }
  // Without shared blocks it reads float, as read().
  SceneReader plain(info, sub, ReadOptions{});
  EXPECT_EQ(plain.read_native(Window{0, 0, 64, 64}).bands[0].type(), CV_32F);
}

TEST_F(SceneTest, SharedBlockCacheDropsABlockAfterItsAnnouncedReads) {
  // Three 256 px blocks in a row (A, B, C), a cache for two of them, reads A B C A. Least
  // recently used alone, C pushes A out and A is decoded twice; with the reads announced, B goes
  // after its only read and A stays.
  const Grid g = utm_grid(768, 256);
  cv::Mat b;
  test::make_texture(768, 256, 5).convertTo(b, CV_16U, 100, 1000);
  write_geotiff(path("abc.tif"), g, {b});
  const SceneInfo info = open_scene(path("abc.tif"), InputConfig{});
  const std::vector<Window> reads = {Window{10, 10, 100, 100}, Window{300, 10, 100, 100},
                                     Window{560, 10, 100, 100}, Window{20, 40, 100, 100}};
  SceneReader plain(info, g, ReadOptions{});
  for (const bool announce : {false, true}) {
    auto cache = std::make_shared<SceneBlockCache>(450u << 10);  // two blocks of 256^2 x 3 bytes
    SceneReader reader(info, g, ReadOptions{}, cache);
    EXPECT_EQ(reader.block_keys(Window{200, 0, 100, 300}), (std::vector<std::int64_t>{0, 1}));
    EXPECT_TRUE(reader.block_keys(Window{800, 0, 10, 10}).empty());  // off the scene
    if (announce) {
      std::vector<std::int64_t> keys;
      for (const Window& w : reads) {
        for (const std::int64_t k : reader.block_keys(w)) keys.push_back(k);
      }
      EXPECT_EQ(keys, (std::vector<std::int64_t>{0, 1, 2, 0}));
      cache->expect_reads(keys);
    }
    for (const Window& w : reads) {
      const SceneWindow got = reader.read(w), want = plain.read(w);
      EXPECT_EQ(cv::norm(got.bands[0], want.bands[0], cv::NORM_INF), 0.0);
      EXPECT_EQ(cv::norm(got.valid, want.valid, cv::NORM_INF), 0.0);
    }
    EXPECT_EQ(cache->stats().decoded, announce ? 3 : 4)
        << (announce ? "announced" : "least recently used");
  }
}

TEST_F(SceneTest, SharedBlockCacheReportsACorruptBlock) {
  const Grid g = utm_grid(512, 512);
  cv::Mat noise(512, 512, CV_32F);
  cv::randu(noise, 0, 1000);
  write_geotiff(path("c.tif"), g, {noise});
  {
    std::fstream f(path("c.tif"), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(path("c.tif")) / 2));
    const std::string junk(4096, '\x5a');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  const SceneInfo info = open_scene(path("c.tif"), InputConfig{});
  SceneReader reader(info, info.grid, ReadOptions{}, std::make_shared<SceneBlockCache>(64u << 20));
  expect_error(
      [&] {
        reader.read(Window{0, 0, 512, 512});
      },
      ErrorKind::input, {"c.tif", "read failed"});
}

TEST_F(SceneTest, NodataPixelsInvalidAndOverride) {
  const Grid g = utm_grid(32, 32);
  cv::Mat b(32, 32, CV_16U, cv::Scalar(100));
  b(cv::Rect(0, 0, 8, 32)).setTo(0);
  b(cv::Rect(20, 0, 4, 32)).setTo(7);
  write_geotiff(path("n.tif"), g, {b, b.clone()}, 0.0);
  const SceneInfo info = open_scene(path("n.tif"), InputConfig{});
  ASSERT_TRUE(info.nodata.has_value());
  EXPECT_EQ(*info.nodata, 0.0);
  EXPECT_EQ(info.data_type, "UInt16");
  SceneReader reader(info, info.grid, ReadOptions{});
  const SceneWindow w = reader.read(Window{0, 0, 32, 32});
  EXPECT_EQ(cv::countNonZero(w.valid), 24 * 32);
  EXPECT_EQ(w.valid.at<uchar>(5, 3), 0);
  EXPECT_EQ(w.valid.at<uchar>(5, 21), 255);
  EXPECT_EQ(w.bands[0].at<float>(5, 12), 100.f);

  // The override replaces the file's nodata value.
  ReadOptions opt;
  opt.nodata = 7;
  SceneReader r2(info, info.grid, opt);
  const SceneWindow w2 = r2.read(Window{0, 0, 32, 32});
  EXPECT_EQ(w2.valid.at<uchar>(5, 3), 255);
  EXPECT_EQ(w2.valid.at<uchar>(5, 21), 0);
  EXPECT_EQ(w2.bands[1].at<float>(5, 21), 0.f);
  EXPECT_EQ(cv::countNonZero(w2.valid), 28 * 32);
}

TEST_F(SceneTest, NanAndInfPixelsInvalid) {
  const Grid g = utm_grid(16, 16);
  cv::Mat a(16, 16, CV_32F, cv::Scalar(5)), b(16, 16, CV_32F, cv::Scalar(6));
  a.at<float>(2, 3) = std::numeric_limits<float>::quiet_NaN();
  b.at<float>(4, 5) = std::numeric_limits<float>::infinity();
  a.at<float>(6, 7) = -std::numeric_limits<float>::infinity();
  write_geotiff(path("f.tif"), g, {a, b});
  const SceneInfo info = open_scene(path("f.tif"), InputConfig{});
  SceneReader reader(info, info.grid, ReadOptions{});
  const SceneWindow w = reader.read(Window{0, 0, 16, 16});
  EXPECT_EQ(cv::countNonZero(w.valid), 256 - 3);
  EXPECT_EQ(w.valid.at<uchar>(2, 3), 0);
  EXPECT_EQ(w.valid.at<uchar>(4, 5), 0);
  EXPECT_EQ(w.valid.at<uchar>(6, 7), 0);
  for (const auto& band : w.bands) {
    EXPECT_TRUE(cv::checkRange(band));
    EXPECT_EQ(band.at<float>(4, 5), 0.f);
  }
  EXPECT_EQ(w.bands[1].at<float>(2, 3), 0.f);  // invalid pixels are 0 in every band
}

TEST_F(SceneTest, RgbaAlphaMasksAndIsNotASpectralBand) {
  const Grid g = utm_grid(32, 24);
  GDALDriverH drv = GDALGetDriverByName("GTiff");
  const char* opts[] = {"PHOTOMETRIC=RGB", "ALPHA=YES", nullptr};
  GDALDatasetH ds = GDALCreate(drv, path("rgba.tif").c_str(), 32, 24, 4, GDT_Byte, const_cast<char**>(opts));
  ASSERT_NE(ds, nullptr);
  std::array<double, 6> gt = g.geotransform;
  GDALSetGeoTransform(ds, gt.data());
  GDALSetProjection(ds, g.crs_wkt.c_str());
  for (int b = 1; b <= 4; ++b) {
    cv::Mat m(24, 32, CV_8U, cv::Scalar(b * 40));
    if (b == 4) {
      m.setTo(255);
      m(cv::Rect(0, 0, 10, 24)).setTo(0);
    }
    ASSERT_EQ(GDALRasterIO(GDALGetRasterBand(ds, b), GF_Write, 0, 0, 32, 24, m.data, 32, 24, GDT_Byte, 0, 0), CE_None);
  }
  GDALClose(ds);

  const SceneInfo info = open_scene(path("rgba.tif"), InputConfig{});
  EXPECT_EQ(info.band_count, 4);
  EXPECT_TRUE(info.has_mask);
  SceneReader reader(info, info.grid, ReadOptions{});
  EXPECT_TRUE(reader.direct());
  const SceneWindow w = reader.read(Window{0, 0, 32, 24});
  ASSERT_EQ(w.bands.size(), 3u);
  EXPECT_EQ(cv::countNonZero(w.valid), 22 * 24);
  EXPECT_EQ(w.valid.at<uchar>(3, 9), 0);
  EXPECT_EQ(w.valid.at<uchar>(3, 10), 255);
  EXPECT_EQ(w.bands[2].at<float>(3, 10), 120.f);
  EXPECT_EQ(w.bands[2].at<float>(3, 9), 0.f);
}

// -------------------------------------------------------------------------------------------------
// Warp path

TEST_F(SceneTest, WarpFromGeographicOntoUtmGrid) {
  const Grid g = utm_grid(160, 160, 2.0);
  const auto bands = texture_bands(160, 160, 2, 11);
  write_geotiff(path("utm.tif"), g, bands);

  // The same content in EPSG:4326, reprojected by GDAL (cubic, so the round trip stays close).
  GDALDatasetH src = GDALOpen(path("utm.tif").c_str(), GA_ReadOnly);
  ASSERT_NE(src, nullptr);
  const char* args[] = {"-t_srs", "EPSG:4326", "-r", "cubic", "-of", "GTiff", "-dstalpha", nullptr};
  GDALWarpAppOptions* wopt = GDALWarpAppOptionsNew(const_cast<char**>(args), nullptr);
  int usage_error = 0;
  GDALDatasetH out = GDALWarp(path("geo.tif").c_str(), nullptr, 1, &src, wopt, &usage_error);
  GDALWarpAppOptionsFree(wopt);
  ASSERT_NE(out, nullptr);
  GDALClose(out);
  GDALClose(src);

  const SceneInfo info = open_scene(path("geo.tif"), InputConfig{});
  EXPECT_TRUE(info.georeferenced);
  EXPECT_EQ(info.band_count, 3);  // 2 + alpha
  EXPECT_FALSE(same_crs(info.grid.crs_wkt, g.crs_wkt));
  SceneReader reader(info, g, ReadOptions{});
  EXPECT_FALSE(reader.direct());
  const SceneWindow w = reader.read(Window{0, 0, 160, 160});
  ASSERT_EQ(w.bands.size(), 2u);  // the alpha band is not a spectral band
  const cv::Rect interior(8, 8, 144, 144);
  EXPECT_EQ(cv::countNonZero(w.valid(interior)), interior.area());
  for (int b = 0; b < 2; ++b) {
    cv::Mat diff;
    cv::absdiff(w.bands[b](interior), bands[b](interior), diff);
    const double mad = cv::mean(diff)[0];
    EXPECT_LT(mad, 1.5) << "band " << b;
    if (std::getenv("AFTERMATH_TEST_VERBOSE")) std::printf("  warp mean abs diff band %d: %.4f\n", b, mad);
  }
  // Windows beyond the grid and a window read in pieces equals the whole.
  const SceneWindow part = reader.read(Window{150, 150, 20, 20});
  EXPECT_EQ(cv::countNonZero(part.valid(cv::Rect(10, 10, 10, 10))), 0);
  const SceneWindow piece = reader.read(Window{40, 50, 30, 20});
  EXPECT_EQ(max_abs_diff(piece.bands[0], w.bands[0](cv::Rect(40, 50, 30, 20))), 0.0);

  // An analysis grid larger than the scene: outside the scene is invalid.
  Grid big = g;
  big.geotransform[0] -= 100;
  big.width += 100;
  SceneReader r2(info, big, ReadOptions{});
  const SceneWindow wb = r2.read(Window{0, 0, 40, 40});
  EXPECT_EQ(cv::countNonZero(wb.valid), 0);
}

TEST_F(SceneTest, WarpNearestFromFinerResolution) {
  const Grid fine = utm_grid(64, 64, 1.0);
  cv::Mat m(64, 64, CV_32F);
  for (int r = 0; r < 64; ++r)
    for (int c = 0; c < 64; ++c) m.at<float>(r, c) = float(c);
  write_geotiff(path("fine.tif"), fine, {m});
  const SceneInfo info = open_scene(path("fine.tif"), InputConfig{});
  const Grid coarse = utm_grid(32, 32, 2.0);
  ReadOptions opt;
  opt.resampling = "nearest";
  SceneReader reader(info, coarse, opt);
  EXPECT_FALSE(reader.direct());
  const SceneWindow w = reader.read(Window{0, 0, 32, 32});
  EXPECT_EQ(cv::countNonZero(w.valid), 32 * 32);
  for (int c = 0; c < 32; ++c) {
    const float v = w.bands[0].at<float>(5, c);
    EXPECT_TRUE(v == 2.f * c || v == 2.f * c + 1) << c << " " << v;
  }
  ReadOptions badr;
  badr.resampling = "lanczos9";
  expect_error([&] { SceneReader r(info, coarse, badr); }, ErrorKind::usage, {"lanczos9"});
}

TEST_F(SceneTest, WarpHonoursSourceMaskAndNodata) {
  const Grid g = utm_grid(40, 30);
  // File 1: an internal per-dataset mask hiding columns 0..9.
  {
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), path("m.tif").c_str(), 40, 30, 2, GDT_Byte, nullptr);
    ASSERT_NE(ds, nullptr);
    std::array<double, 6> gt = g.geotransform;
    GDALSetGeoTransform(ds, gt.data());
    GDALSetProjection(ds, g.crs_wkt.c_str());
    cv::Mat v(30, 40, CV_8U, cv::Scalar(50)), mask(30, 40, CV_8U, cv::Scalar(255));
    mask(cv::Rect(0, 0, 10, 30)).setTo(0);
    for (int b = 1; b <= 2; ++b)
      ASSERT_EQ(GDALRasterIO(GDALGetRasterBand(ds, b), GF_Write, 0, 0, 40, 30, v.data, 40, 30, GDT_Byte, 0, 0), CE_None);
    ASSERT_EQ(GDALCreateDatasetMaskBand(ds, GMF_PER_DATASET), CE_None);
    ASSERT_EQ(GDALRasterIO(GDALGetMaskBand(GDALGetRasterBand(ds, 1)), GF_Write, 0, 0, 40, 30, mask.data, 40, 30, GDT_Byte, 0, 0), CE_None);
    GDALClose(ds);
  }
  // File 2: nodata value 0 in columns 0..9.
  cv::Mat n(30, 40, CV_16U, cv::Scalar(300));
  n(cv::Rect(0, 0, 10, 30)).setTo(0);
  write_geotiff(path("n.tif"), g, {n}, 0.0);

  Grid shifted = g;
  shifted.geotransform[0] += 0.5;  // half a pixel east: warp path
  for (const char* name : {"m.tif", "n.tif"}) {
    const SceneInfo info = open_scene(path(name), InputConfig{});
    if (std::string(name) == "m.tif") {
      EXPECT_TRUE(info.has_mask);
    }
    for (const char* rs : {"nearest", "bilinear"}) {
      ReadOptions opt;
      opt.resampling = rs;
      SceneReader direct(info, g, opt);
      EXPECT_TRUE(direct.direct());
      const SceneWindow d = direct.read(Window{0, 0, 40, 30});
      EXPECT_EQ(cv::countNonZero(d.valid), 30 * 30) << name;
      SceneReader warp(info, shifted, opt);
      EXPECT_FALSE(warp.direct());
      const SceneWindow w = warp.read(Window{0, 0, 40, 30});
      // Shifted grid column c covers file columns c+0.5 .. c+1.5.
      for (int c = 0; c < 9; ++c) EXPECT_EQ(w.valid.at<uchar>(10, c), 0) << name << " " << rs << " col " << c;
      for (int c = 10; c < 38; ++c) {
        EXPECT_EQ(w.valid.at<uchar>(10, c), 255) << name << " " << rs << " col " << c;
        EXPECT_NEAR(w.bands[0].at<float>(10, c), std::string(name) == "m.tif" ? 50.f : 300.f, 1e-3);
      }
      EXPECT_EQ(w.valid.at<uchar>(10, 39), 0) << name << " " << rs;  // half outside the file
    }
  }
}

// -------------------------------------------------------------------------------------------------
// open_scene validation

TEST_F(SceneTest, OpenErrors) {
  const InputConfig cfg;
  expect_error([&] { open_scene(path("missing.tif"), cfg); }, ErrorKind::input, {"missing.tif", "does not exist"});
  fs::create_directories(path("d.tif"));
  expect_error([&] { open_scene(path("d.tif"), cfg); }, ErrorKind::input, {"d.tif", "directory"});
  { std::ofstream(path("empty.tif")); }
  expect_error([&] { open_scene(path("empty.tif"), cfg); }, ErrorKind::input, {"empty.tif", "empty file"});
  { std::ofstream(path("text.tif")) << "this is not a TIFF, just some words\n"; }
  expect_error([&] { open_scene(path("text.tif"), cfg); }, ErrorKind::input, {"text.tif", "not a recognised raster format"});
  fs::create_symlink(path("nowhere.tif"), path("link.tif"));
  expect_error([&] { open_scene(path("link.tif"), cfg); }, ErrorKind::input, {"link.tif", "dangling", "nowhere.tif"});

  write_geotiff(path("ok.tif"), utm_grid(20, 10), {cv::Mat(10, 20, CV_8U, cv::Scalar(1))});
  InputConfig small;
  small.max_pixels = 199;
  expect_error([&] { open_scene(path("ok.tif"), small); }, ErrorKind::input, {"ok.tif", "20 x 10", "max_pixels"});
  small.max_pixels = 200;
  EXPECT_NO_THROW(open_scene(path("ok.tif"), small));
  InputConfig only_png;
  only_png.allowed_drivers = {"PNG"};
  expect_error([&] { open_scene(path("ok.tif"), only_png); }, ErrorKind::input, {"ok.tif", "GTiff", "not allowed"});

  if (::geteuid() != 0) {
    fs::permissions(path("ok.tif"), fs::perms::none);
    expect_error([&] { open_scene(path("ok.tif"), cfg); }, ErrorKind::input, {"ok.tif", "permission denied"});
    fs::permissions(path("ok.tif"), fs::perms::owner_all);
  }
}

TEST_F(SceneTest, GeotransformWithoutCrsIsAnError) {
  GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), path("nocrs.tif").c_str(), 8, 8, 1, GDT_Byte, nullptr);
  ASSERT_NE(ds, nullptr);
  double gt[6] = {100, 1, 0, 200, 0, -1};
  GDALSetGeoTransform(ds, gt);
  GDALClose(ds);
  expect_error([&] { open_scene(path("nocrs.tif"), InputConfig{}); }, ErrorKind::input,
               {"nocrs.tif", "has a geotransform but no CRS"});
}

TEST_F(SceneTest, PlainPixelGridPng) {
  cv::Mat rgb(12, 20, CV_8UC3, cv::Scalar(10, 20, 30));
  ASSERT_TRUE(cv::imwrite(path("plain.png"), rgb));
  const SceneInfo info = open_scene(path("plain.png"), InputConfig{});
  EXPECT_EQ(info.driver, "PNG");
  EXPECT_FALSE(info.georeferenced);
  EXPECT_TRUE(info.grid.crs_wkt.empty());
  EXPECT_EQ(info.grid.geotransform, (std::array<double, 6>{0, 1, 0, 0, 0, 1}));
  const cv::Rect2d r = scene_bounds_in(info, "");
  EXPECT_DOUBLE_EQ(r.x, 0);
  EXPECT_DOUBLE_EQ(r.y, 0);
  EXPECT_DOUBLE_EQ(r.width, 20);
  EXPECT_DOUBLE_EQ(r.height, 12);
  SceneReader reader(info, info.grid, ReadOptions{});
  EXPECT_TRUE(reader.direct());
  const SceneWindow w = reader.read(Window{0, 0, 20, 12});
  ASSERT_EQ(w.bands.size(), 3u);
  EXPECT_EQ(w.bands[0].at<float>(1, 1), 30.f);  // PNG band 1 = red (OpenCV wrote BGR)
  EXPECT_EQ(cv::countNonZero(w.valid), 240);
  // A plain scene cannot be read onto a georeferenced grid.
  EXPECT_THROW(SceneReader(info, utm_grid(20, 12), ReadOptions{}), Error);
}

TEST_F(SceneTest, TruncatedTiffOpensButReadFails) {
  // Noise does not compress, so half the file is half the tiles. The COG layout puts the
  // header and tile index first, so the truncated file still opens.
  cv::Mat noise(512, 512, CV_32F);
  cv::randu(noise, 0, 1000);
  GDALDriverH mem = GDALGetDriverByName("MEM");
  GDALDatasetH m = GDALCreate(mem, "", 512, 512, 1, GDT_Float32, nullptr);
  const Grid g = utm_grid(512, 512);
  std::array<double, 6> gt = g.geotransform;
  GDALSetGeoTransform(m, gt.data());
  GDALSetProjection(m, g.crs_wkt.c_str());
  ASSERT_EQ(GDALRasterIO(GDALGetRasterBand(m, 1), GF_Write, 0, 0, 512, 512, noise.data, 512, 512, GDT_Float32, 0, 0), CE_None);
  const char* opts[] = {"COMPRESS=DEFLATE", "BLOCKSIZE=128", "OVERVIEWS=NONE", nullptr};
  GDALDatasetH cog = GDALCreateCopy(GDALGetDriverByName("COG"), path("t.tif").c_str(), m, FALSE,
                                    const_cast<char**>(opts), nullptr, nullptr);
  ASSERT_NE(cog, nullptr);
  GDALClose(cog);
  GDALClose(m);
  fs::resize_file(path("t.tif"), fs::file_size(path("t.tif")) / 2);

  const SceneInfo info = open_scene(path("t.tif"), InputConfig{});
  SceneReader reader(info, info.grid, ReadOptions{});
  EXPECT_NO_THROW(reader.read(Window{0, 0, 128, 128}));  // first tile is intact
  expect_error([&] { reader.read(Window{0, 0, 512, 512}); }, ErrorKind::input, {"t.tif", "window"});
  // Also through the warp path.
  Grid shifted = info.grid;
  shifted.geotransform[0] += 0.5;
  SceneReader warp(info, shifted, ReadOptions{});
  expect_error([&] { warp.read(Window{0, 0, 512, 512}); }, ErrorKind::input, {"t.tif", "window"});
}

TEST_F(SceneTest, CorruptDeflateTileFailsAtRead) {
  const Grid g = utm_grid(256, 256);
  cv::Mat noise(256, 256, CV_32F);
  cv::randu(noise, 0, 1000);
  write_geotiff(path("c.tif"), g, {noise});
  // Overwrite bytes in the middle of the compressed data (tile data, not the header).
  {
    std::fstream f(path("c.tif"), std::ios::in | std::ios::out | std::ios::binary);
    const auto size = fs::file_size(path("c.tif"));
    f.seekp(static_cast<std::streamoff>(size / 3));
    const std::string junk(4096, '\x5a');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  const SceneInfo info = open_scene(path("c.tif"), InputConfig{});
  SceneReader reader(info, info.grid, ReadOptions{});
  expect_error([&] { reader.read(Window{0, 0, 256, 256}); }, ErrorKind::input, {"c.tif"});
}

// -------------------------------------------------------------------------------------------------
// CRS helpers, bounds, write_geotiff, sha256

TEST_F(SceneTest, CrsHelpers) {
  const std::string utm = crs_to_wkt("EPSG:32615");
  const std::string wgs = crs_to_wkt("EPSG:4326");
  EXPECT_NE(utm.find("32615"), std::string::npos);
  EXPECT_TRUE(same_crs(utm, crs_to_wkt("+proj=utm +zone=15 +datum=WGS84 +units=m +no_defs")));
  EXPECT_FALSE(same_crs(utm, wgs));
  EXPECT_TRUE(same_crs("", ""));
  EXPECT_FALSE(same_crs("", wgs));
  EXPECT_DOUBLE_EQ(linear_units_in_metres(utm), 1.0);
  EXPECT_DOUBLE_EQ(linear_units_in_metres(wgs), 0.0);
  EXPECT_DOUBLE_EQ(linear_units_in_metres(""), 0.0);
  EXPECT_NEAR(linear_units_in_metres(crs_to_wkt("EPSG:2227")), 0.3048006096, 1e-9);
  expect_error([] { crs_to_wkt("EPSG:999999"); }, ErrorKind::usage, {"EPSG:999999"});
  expect_error([] { crs_to_wkt("not a crs"); }, ErrorKind::usage, {"not a crs"});
}

TEST_F(SceneTest, BoundsInOtherCrs) {
  const Grid g = utm_grid(100, 50, 10.0);
  write_geotiff(path("b.tif"), g, {cv::Mat(50, 100, CV_8U, cv::Scalar(1))});
  const SceneInfo info = open_scene(path("b.tif"), InputConfig{});
  const cv::Rect2d own = scene_bounds_in(info, info.grid.crs_wkt);
  EXPECT_DOUBLE_EQ(own.x, 500000);
  EXPECT_DOUBLE_EQ(own.y, 3850000 - 500);
  EXPECT_DOUBLE_EQ(own.width, 1000);
  EXPECT_DOUBLE_EQ(own.height, 500);

  const cv::Rect2d geo = scene_bounds_in(info, crs_to_wkt("EPSG:4326"));
  // Central meridian of zone 15 is -93; easting 500000 is on it.
  EXPECT_NEAR(geo.x, -93.0, 1e-6);
  EXPECT_GT(geo.width, 0.0);
  EXPECT_LT(geo.width, 0.02);
  EXPECT_NEAR(geo.y, 34.79, 0.02);
  OGRSpatialReference utm, wgs;
  utm.importFromEPSG(32615);
  wgs.importFromEPSG(4326);
  wgs.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  utm.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  auto* ct = OGRCreateCoordinateTransformation(&utm, &wgs);
  double x[4] = {500000, 501000, 500000, 501000}, y[4] = {3850000, 3850000, 3849500, 3849500};
  ASSERT_TRUE(ct->Transform(4, x, y));
  OGRCoordinateTransformation::DestroyCT(ct);
  for (int i = 0; i < 4; ++i) {
    EXPECT_GE(x[i], geo.x - 1e-9);
    EXPECT_LE(x[i], geo.x + geo.width + 1e-9);
    EXPECT_GE(y[i], geo.y - 1e-9);
    EXPECT_LE(y[i], geo.y + geo.height + 1e-9);
  }
  EXPECT_THROW(scene_bounds_in(info, ""), Error);
}

TEST_F(SceneTest, WriteGeotiffLayoutAndErrors) {
  const Grid g = utm_grid(300, 200);
  write_geotiff(path("w.tif"), g, {cv::Mat(200, 300, CV_32F, cv::Scalar(1.5))}, -9999.0);
  GDALDatasetH ds = GDALOpen(path("w.tif").c_str(), GA_ReadOnly);
  ASSERT_NE(ds, nullptr);
  const char* comp = GDALGetMetadataItem(ds, "COMPRESSION", "IMAGE_STRUCTURE");
  ASSERT_NE(comp, nullptr);
  EXPECT_STREQ(comp, "DEFLATE");
  int bx = 0, by = 0;
  GDALGetBlockSize(GDALGetRasterBand(ds, 1), &bx, &by);
  EXPECT_EQ(bx, 256);
  EXPECT_EQ(by, 256);
  int has = 0;
  EXPECT_EQ(GDALGetRasterNoDataValue(GDALGetRasterBand(ds, 1), &has), -9999.0);
  EXPECT_TRUE(has);
  GDALClose(ds);

  expect_error([&] { write_geotiff(path("no/such/dir/x.tif"), g, {cv::Mat(200, 300, CV_32F)}); },
               ErrorKind::output, {"x.tif"});
  expect_error([&] { write_geotiff(path("x.tif"), g, {cv::Mat(200, 300, CV_64F)}); }, ErrorKind::output, {"x.tif"});
}

TEST_F(SceneTest, Sha256) {
  { std::ofstream(path("abc.txt"), std::ios::binary) << "abc"; }
  EXPECT_EQ(sha256_file(path("abc.txt")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  { std::ofstream(path("e.txt"), std::ios::binary); }
  EXPECT_EQ(sha256_file(path("e.txt")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  // Larger than one block.
  {
    std::ofstream f(path("big.bin"), std::ios::binary);
    const std::string block(1 << 20, 'a');
    f << block << block << "tail";
  }
  EXPECT_EQ(sha256_file(path("big.bin")).size(), 64u);
  // keep_going: asked before every MiB; true changes nothing, false stops the hashing.
  int asked = 0;
  EXPECT_EQ(sha256_file(path("big.bin"), [&] { return ++asked > 0; }),
            sha256_file(path("big.bin")));
  EXPECT_GE(asked, 3);
  asked = 0;
  expect_error([&] { sha256_file(path("big.bin"), [&] { return ++asked < 2; }); },
               ErrorKind::internal, {"big.bin", "hashing stopped"});
  EXPECT_EQ(asked, 2);
  expect_error([&] { sha256_file(path("missing")); }, ErrorKind::input, {"missing"});
}

}  // namespace
