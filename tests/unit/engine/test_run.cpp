// The engine end to end on synthetic pairs with known truth: shift recovered, destroyed
// buildings found, and results independent of the thread count.
#include <hdf5.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "aftermath/core/error.hpp"
#include "aftermath/core/footprint.hpp"
#include "aftermath/engine/job.hpp"
#include "aftermath/evaluate/metrics.hpp"
#include "aftermath/io/geotiff_writer.hpp"
#include "synthetic_scene.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using namespace aftermath;

namespace {

struct TempDir : test::TempDir {
  TempDir() : test::TempDir("aftermath-engine") {}
};

void write_pair(const synth::SceneSpec& spec, const fs::path& dir) {
  const Grid g = synth::scene_grid(spec);
  for (bool post : {false, true}) {
    GeoTiffWriter w((dir / (post ? "post.tif" : "pre.tif")).string(), g, spec.bands, CV_16U);
    w.write({0, 0, spec.width, spec.height}, synth::render(spec, post, {0, 0, spec.width, spec.height}));
    w.close();
  }
  std::ofstream f(dir / "buildings.geojson");
  f << R"({"type":"FeatureCollection","crs":{"type":"name","properties":{"name":"urn:ogc:def:crs:EPSG::32632"}},"features":[)";
  const auto bs = synth::buildings(spec);
  for (std::size_t i = 0; i < bs.size(); ++i) {
    const auto& r = bs[i].rect;
    auto X = [&](int c) { return g.geotransform[0] + c * g.geotransform[1]; };
    auto Y = [&](int row) { return g.geotransform[3] + row * g.geotransform[5]; };
    f << (i ? "," : "") << R"({"type":"Feature","properties":{"id":"b)" << i
      << R"("},"geometry":{"type":"Polygon","coordinates":[[[)" << X(r.x) << "," << Y(r.y) << "],["
      << X(r.x + r.width) << "," << Y(r.y) << "],[" << X(r.x + r.width) << "," << Y(r.y + r.height) << "],["
      << X(r.x) << "," << Y(r.y + r.height) << "],[" << X(r.x) << "," << Y(r.y) << "]]]}}";
  }
  f << "]}";
}

template <typename T>
std::vector<T> read_dataset(const std::string& file, const std::string& name, hid_t type) {
  hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  EXPECT_GE(f, 0) << file;
  hid_t d = H5Dopen2(f, name.c_str(), H5P_DEFAULT);
  EXPECT_GE(d, 0) << name;
  hid_t s = H5Dget_space(d);
  const auto n = H5Sget_simple_extent_npoints(s);
  std::vector<T> v(static_cast<std::size_t>(n));
  if (n > 0) {
    EXPECT_GE(H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), 0);
  }
  H5Sclose(s);
  H5Dclose(d);
  H5Fclose(f);
  return v;
}

RunRequest request_for(const fs::path& dir, const std::string& out, int threads) {
  RunRequest r;
  r.pre = (dir / "pre.tif").string();
  r.post = (dir / "post.tif").string();
  r.footprints = (dir / "buildings.geojson").string();
  r.out = (dir / out).string();
  r.threads = threads;
  r.config.tiling.tile_size = 256;
  return r;
}

}  // namespace

TEST(EngineRun, RecoversShiftFindsDestroyedBuildingsAndIsThreadIndependent) {
  TempDir tmp;
  synth::SceneSpec spec;
  spec.width = spec.height = 1024;
  spec.shift_x = 2.3;
  spec.shift_y = -1.7;
  write_pair(spec, tmp.path);

  const RunSummary s1 = run_job(request_for(tmp.path, "t1.h5", 1));
  const RunSummary s2 = run_job(request_for(tmp.path, "t2.h5", 2));
  std::cout << "recovered shift (" << s1.shift_x << ", " << s1.shift_y << "), error ("
            << s1.shift_x - spec.shift_x << ", " << s1.shift_y - spec.shift_y << ") px\n";
  EXPECT_NEAR(s1.shift_x, 2.3, 0.05);
  EXPECT_NEAR(s1.shift_y, -1.7, 0.05);

  const auto bs = synth::buildings(spec);
  const auto cls = read_dataset<std::uint8_t>(s1.output, "/footprints/damage_class", H5T_NATIVE_UINT8);
  ASSERT_EQ(cls.size(), bs.size());
  std::vector<bool> pred, truth;
  for (std::size_t i = 0; i < bs.size(); ++i) {
    pred.push_back(cls[i] == static_cast<std::uint8_t>(DamageClass::destroyed));
    truth.push_back(bs[i].destroyed);
  }
  const BinaryMetrics m = binary_metrics(pred, truth);
  std::cout << "destroyed vs not: " << bs.size() << " buildings, precision " << m.precision() << " recall "
            << m.recall() << " F1 " << m.f1() << "\n";
  EXPECT_GE(m.f1(), 0.9);

  // Same layers and tables with 1 and 2 threads.
  EXPECT_EQ(read_dataset<float>(s1.output, "/change_score", H5T_NATIVE_FLOAT),
            read_dataset<float>(s2.output, "/change_score", H5T_NATIVE_FLOAT));
  EXPECT_EQ(read_dataset<std::uint8_t>(s1.output, "/damage_mask", H5T_NATIVE_UINT8),
            read_dataset<std::uint8_t>(s2.output, "/damage_mask", H5T_NATIVE_UINT8));
  EXPECT_EQ(read_dataset<double>(s1.output, "/footprints/mean_score", H5T_NATIVE_DOUBLE),
            read_dataset<double>(s2.output, "/footprints/mean_score", H5T_NATIVE_DOUBLE));
}

TEST(EngineRun, FailedRunLeavesNoFile) {
  TempDir tmp;
  synth::SceneSpec spec;
  spec.width = spec.height = 128;
  write_pair(spec, tmp.path);
  RunRequest r = request_for(tmp.path, "out.h5", 2);
  r.footprints = (tmp.path / "missing.geojson").string();
  EXPECT_THROW(run_job(r), Error);
  EXPECT_FALSE(fs::exists(r.out));
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(tmp.path)) ++files;
  EXPECT_EQ(files, 3u);  // pre, post, buildings only
}
