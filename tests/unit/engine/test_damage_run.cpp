// Issue 5 end to end through run_job and rescore_job on a synthetic pair: a road crossing the
// scene scored per segment, a hospital point, damage sites restricted to built-up ground; the
// tables and layers independent of the tiling and thread count, and rescore reproducing them.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <filesystem>
#include <fstream>

#include "aftermath/core/error.hpp"
#include "aftermath/core/footprint.hpp"
#include "aftermath/engine/analyst.hpp"
#include "aftermath/engine/job.hpp"
#include "aftermath/io/geotiff_writer.hpp"
#include "synthetic_scene.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using namespace aftermath;

namespace {

template <typename T>
std::vector<T> column(const std::string& file, const std::string& name, hid_t type) {
  hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  EXPECT_GE(f, 0) << file;
  hid_t d = H5Dopen2(f, name.c_str(), H5P_DEFAULT);
  EXPECT_GE(d, 0) << file << " " << name;
  std::vector<T> v;
  if (d >= 0) {
    hid_t s = H5Dget_space(d);
    v.resize(static_cast<std::size_t>(H5Sget_simple_extent_npoints(s)));
    if (!v.empty()) {
      EXPECT_GE(H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), 0);
    }
    H5Sclose(s);
    H5Dclose(d);
  }
  H5Fclose(f);
  return v;
}

/// The pair, its buildings as polygons, a road along row 300 across the whole scene and a
/// hospital as a point, in the scene's CRS (UTM 32N, 0.5 m pixels).
void write_scene(const synth::SceneSpec& spec, const fs::path& dir) {
  const Grid g = synth::scene_grid(spec);
  for (bool post : {false, true}) {
    GeoTiffWriter w((dir / (post ? "post.tif" : "pre.tif")).string(), g, spec.bands, CV_16U);
    w.write({0, 0, spec.width, spec.height},
            synth::render(spec, post, {0, 0, spec.width, spec.height}));
    w.close();
  }
  auto X = [&](double c) { return g.geotransform[0] + c * g.geotransform[1]; };
  auto Y = [&](double r) { return g.geotransform[3] + r * g.geotransform[5]; };
  std::ofstream f(dir / "osm.geojson");
  f.precision(12);
  f << R"({"type":"FeatureCollection","crs":{"type":"name","properties":{"name":"urn:ogc:def:crs:EPSG::32632"}},"features":[)";
  const auto bs = synth::buildings(spec);
  for (std::size_t i = 0; i < bs.size(); ++i) {
    const auto& r = bs[i].rect;
    f << R"({"type":"Feature","properties":{"id":"b)" << i
      << R"(","building":"yes"},"geometry":{"type":"Polygon","coordinates":[[[)" << X(r.x) << ","
      << Y(r.y) << "],[" << X(r.x + r.width) << "," << Y(r.y) << "],[" << X(r.x + r.width) << ","
      << Y(r.y + r.height) << "],[" << X(r.x) << "," << Y(r.y + r.height) << "],[" << X(r.x) << ","
      << Y(r.y) << "]]]}},";
  }
  f << R"({"type":"Feature","properties":{"id":"road","highway":"primary"},"geometry":{"type":"LineString","coordinates":[[)"
    << X(-20) << "," << Y(300) << "],[" << X(spec.width + 20) << "," << Y(300) << "]]}},";
  f << R"({"type":"Feature","properties":{"id":"hospital","amenity":"hospital"},"geometry":{"type":"Point","coordinates":[)"
    << X(200) << "," << Y(200) << "]}}]}";
}

RunRequest request(const fs::path& dir, const std::string& out, int tile, int threads) {
  RunRequest r;
  r.pre = (dir / "pre.tif").string();
  r.post = (dir / "post.tif").string();
  r.footprints = (dir / "osm.geojson").string();
  r.out = (dir / out).string();
  r.threads = threads;
  r.config.tiling.tile_size = tile;
  r.config.sites.built_up_only = true;
  r.config.sites.built_up_max_size_m = 12;  // the building index reaches 25 px: the default halo
  r.config.sites.min_area_m2 = 10;
  return r;
}

const char* kDoubleColumns[] = {
    "area",         "length",    "coverage",         "valid_fraction",          "mean_score",
    "median_score", "p90_score", "changed_fraction", "length_changed_fraction", "misregistration",
    "confidence"};
const char* kByteColumns[] = {"kind",
                              "source_geometry",
                              "status",
                              "damage_class",
                              "damage_grade",
                              "damage_grade_high_precision",
                              "damage_grade_high_recall"};
const char* kSiteColumns[] = {"area",       "mean_score", "max_score", "built_up_fraction",
                              "centroid_x", "centroid_y"};

void expect_same_tables(const std::string& a, const std::string& b) {
  for (const char* c : kDoubleColumns) {
    EXPECT_EQ(column<double>(a, std::string("/footprints/") + c, H5T_NATIVE_DOUBLE),
              column<double>(b, std::string("/footprints/") + c, H5T_NATIVE_DOUBLE))
        << c;
  }
  for (const char* c : kByteColumns) {
    EXPECT_EQ(column<std::uint8_t>(a, std::string("/footprints/") + c, H5T_NATIVE_UINT8),
              column<std::uint8_t>(b, std::string("/footprints/") + c, H5T_NATIVE_UINT8))
        << c;
  }
  for (const char* c : kSiteColumns) {
    EXPECT_EQ(column<double>(a, std::string("/sites/") + c, H5T_NATIVE_DOUBLE),
              column<double>(b, std::string("/sites/") + c, H5T_NATIVE_DOUBLE))
        << c;
  }
}

TEST(DamageRun, RoadSegmentsPointAndSitesIndependentOfTilingAndReproducedByRescore) {
  test::TempDir tmp("aftermath-damage");
  synth::SceneSpec spec;
  spec.width = spec.height = 512;
  spec.shift_x = 1.3;
  spec.shift_y = -0.6;
  write_scene(spec, tmp.path);
  const RunSummary a = run_job(request(tmp.path, "a.h5", 128, 2));
  const RunSummary b = run_job(request(tmp.path, "b.h5", 256, 1));
  const auto bs = synth::buildings(spec);

  // The road: 256 m across a 256 m scene (+10 m each side) in 3 segments of at most 100 m.
  const auto kind = column<std::uint8_t>(a.output, "/footprints/kind", H5T_NATIVE_UINT8);
  const auto segment = column<std::int64_t>(a.output, "/footprints/segment", H5T_NATIVE_INT64);
  const auto length = column<double>(a.output, "/footprints/length", H5T_NATIVE_DOUBLE);
  const auto status = column<std::uint8_t>(a.output, "/footprints/status", H5T_NATIVE_UINT8);
  const auto grade = column<std::uint8_t>(a.output, "/footprints/damage_grade", H5T_NATIVE_UINT8);
  ASSERT_EQ(kind.size(), bs.size() + 3 + 1);
  double road_length = 0;
  for (std::size_t i = bs.size(); i < bs.size() + 3; ++i) {
    EXPECT_EQ(kind[i], static_cast<std::uint8_t>(FeatureKind::road));
    EXPECT_EQ(segment[i], static_cast<std::int64_t>(i - bs.size()));
    EXPECT_EQ(status[i], static_cast<std::uint8_t>(FeatureStatus::scored));
    EXPECT_LE(grade[i], 3);  // every segment has a class
    road_length += length[i];
  }
  EXPECT_NEAR(road_length, 276.0, 1e-6);
  EXPECT_EQ(kind.back(), static_cast<std::uint8_t>(FeatureKind::infrastructure));
  EXPECT_EQ(a.kind_counts[1], 3);
  EXPECT_EQ(a.kind_counts[2], 1);
  EXPECT_GT(a.sites, 0);

  // Tiling and threads change nothing, and the default halo (tiling.halo 0: the building
  // index's reach here) gives what a wider one gives.
  RunRequest wide = request(tmp.path, "c.h5", 128, 2);
  wide.config.tiling.halo = 64;
  const RunSummary c = run_job(wide);
  for (const RunSummary* other : {&b, &c}) {
    expect_same_tables(a.output, other->output);
    EXPECT_EQ(column<float>(a.output, "/built_up_index", H5T_NATIVE_FLOAT),
              column<float>(other->output, "/built_up_index", H5T_NATIVE_FLOAT));
    EXPECT_EQ(column<std::uint8_t>(a.output, "/damage_mask", H5T_NATIVE_UINT8),
              column<std::uint8_t>(other->output, "/damage_mask", H5T_NATIVE_UINT8));
  }

  // Rescore with the run's config reproduces the tables; a stricter built-up threshold keeps
  // fewer sites.
  RescoreRequest rr;
  rr.input = a.output;
  rr.out = (tmp.path / "r.h5").string();
  const RescoreSummary r = rescore_job(rr);
  EXPECT_EQ(r.sites, a.sites);
  expect_same_tables(a.output, rr.out);
  rr.out = (tmp.path / "r2.h5").string();
  rr.overrides = {"sites.built_up_index_threshold=0.9"};
  EXPECT_LT(rescore_job(rr).sites, a.sites);
}

// A halo set by hand must cover the building index's reach; tiles must be wider than what the
// default halo needs. Both are said before a pixel is read, and nothing is written.
TEST(DamageRun, HaloShortOfTheBuildingIndexOrTilesTooSmallAreUsageErrors) {
  test::TempDir tmp("aftermath-halo");
  synth::SceneSpec spec;
  spec.width = spec.height = 256;
  write_scene(spec, tmp.path);
  RunRequest shorter = request(tmp.path, "a.h5", 128, 1);
  shorter.config.tiling.halo = 8;  // the index reaches 25 px
  try {
    run_job(shorter);
    FAIL() << "expected a usage error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::usage);
    EXPECT_NE(std::string(e.what()).find("set tiling.halo to at least 25 (now 8)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(tmp.path / "a.h5"));
  RunRequest small = request(tmp.path, "b.h5", 64, 1);
  small.config.sites.built_up_max_size_m = 40;  // 80 px around each pixel, tiles of 64
  try {
    run_job(small);
    FAIL() << "expected a usage error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::usage);
    EXPECT_NE(std::string(e.what()).find("tiles of 64 px are too small"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(tmp.path / "b.h5"));
}

}  // namespace
