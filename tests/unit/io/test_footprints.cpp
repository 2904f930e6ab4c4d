// Unit tests of io/footprints: GeoJSON / GeoPackage through OGR, reprojection onto the grid,
// repair and skipping of bad geometries, and xBD label JSON on a plain pixel grid.
#include <gdal.h>
#include <gtest/gtest.h>
#include <ogr_api.h>
#include <ogr_spatialref.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <opencv2/core.hpp>
#include <sstream>
#include <string>

#include "aftermath/core/error.hpp"
#include "aftermath/io/footprints.hpp"
#include "aftermath/io/scene.hpp"

namespace fs = std::filesystem;
using namespace aftermath;

namespace {

class FootprintsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    init_gdal();
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("aftermath_io_fp_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path(name), std::ios::binary) << text;
    return path(name);
  }

  static Grid utm_grid() {
    Grid g;
    g.crs_wkt = crs_to_wkt("EPSG:32615");
    g.geotransform = {500000, 0.5, 0, 3850000, 0, -0.5};
    g.width = 400;
    g.height = 400;
    return g;
  }
  static Grid wgs_grid() {
    Grid g;
    g.crs_wkt = crs_to_wkt("EPSG:4326");
    g.geotransform = {10.0, 0.001, 0, 50.0, 0, -0.001};
    g.width = 100;
    g.height = 100;
    return g;
  }

  fs::path dir_;
};

template <class Fn>
void expect_error(Fn fn, ErrorKind kind, std::initializer_list<std::string> parts) {
  try {
    fn();
    ADD_FAILURE() << "no exception";
  } catch (const Error& e) {
    if (std::getenv("AFTERMATH_TEST_VERBOSE")) std::printf("  error: %s\n", e.what());
    EXPECT_EQ(static_cast<int>(e.kind()), static_cast<int>(kind)) << e.what();
    for (const auto& p : parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what() << " lacks " << p;
  }
}

bool any_contains(const std::vector<std::string>& v, const std::string& s) {
  for (const auto& x : v)
    if (x.find(s) != std::string::npos) return true;
  return false;
}

std::string lonlat_of_pixel(const Grid& g, double col, double row) {
  OGRSpatialReference utm, wgs;
  utm.importFromEPSG(32615);
  wgs.importFromEPSG(4326);
  utm.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  wgs.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  auto* ct = OGRCreateCoordinateTransformation(&utm, &wgs);
  const auto m = g.pixel_to_map(col, row);
  double x = m.x, y = m.y;
  ct->Transform(1, &x, &y);
  OGRCoordinateTransformation::DestroyCT(ct);
  char buf[128];
  std::snprintf(buf, sizeof buf, "[%.12f, %.12f]", x, y);
  return buf;
}

TEST_F(FootprintsTest, GeoJsonInWgs84LandsOnUtmPixels) {
  const Grid g = utm_grid();
  // A 20 x 10 px rectangle with corners at pixel (100,50)-(120,60), and a polygon with a hole.
  // (GCC 12 warns falsely (-Wrestrict) on long chains of std::string operator+; use a stream.)
  auto ring_of = [&](std::initializer_list<cv::Point2d> pts) {
    std::ostringstream s;
    s << "[";
    for (const auto& p : pts) s << (&p == pts.begin() ? "" : ",") << lonlat_of_pixel(g, p.x, p.y);
    s << "," << lonlat_of_pixel(g, pts.begin()->x, pts.begin()->y) << "]";
    return s.str();
  };
  const std::string ring = ring_of({{100, 50}, {120, 50}, {120, 60}, {100, 60}});
  const std::string outer = ring_of({{200, 200}, {240, 200}, {240, 240}, {200, 240}});
  const std::string hole = ring_of({{210, 210}, {210, 220}, {220, 220}, {220, 210}});
  std::ostringstream gj;
  gj << R"({"type":"FeatureCollection","features":[
    {"type":"Feature","properties":{"id":"A7"},"geometry":{"type":"Polygon","coordinates":[)"
     << ring << R"(]}},
    {"type":"Feature","properties":{"id":"B8"},"geometry":{"type":"Polygon","coordinates":[)"
     << outer << "," << hole << R"(]}}
  ]})";
  const auto fs_ = read_footprints(write("b.geojson", gj.str()), g);
  ASSERT_EQ(fs_.features.size(), 2u);
  EXPECT_TRUE(fs_.warnings.empty());
  const Footprint& a = fs_.features[0];
  EXPECT_EQ(a.id, 0);
  EXPECT_EQ(a.source_id, "A7");
  EXPECT_EQ(a.kind, FeatureKind::building);
  ASSERT_EQ(a.rings.size(), 1u);
  ASSERT_EQ(a.rings[0].size(), 4u);  // closing vertex dropped
  EXPECT_NEAR(a.rings[0][0].x, 100, 1e-6);
  EXPECT_NEAR(a.rings[0][0].y, 50, 1e-6);
  EXPECT_NEAR(a.rings[0][2].x, 120, 1e-6);
  EXPECT_NEAR(a.rings[0][2].y, 60, 1e-6);
  EXPECT_NEAR(a.area_px, 200, 1e-3);
  EXPECT_NEAR(a.bbox.x, 100, 1e-6);
  EXPECT_NEAR(a.bbox.width, 20, 1e-6);
  const Footprint& b = fs_.features[1];
  EXPECT_EQ(b.id, 1);
  EXPECT_EQ(b.source_id, "B8");
  ASSERT_EQ(b.rings.size(), 2u);
  EXPECT_NEAR(b.area_px, 1600 - 100, 1e-3);
}

TEST_F(FootprintsTest, GeoPackageLayers) {
  GDALDriverH drv = GDALGetDriverByName("GPKG");
  ASSERT_NE(drv, nullptr);
  GDALDatasetH ds = GDALCreate(drv, path("two.gpkg").c_str(), 0, 0, 0, GDT_Unknown, nullptr);
  ASSERT_NE(ds, nullptr);
  OGRSpatialReferenceH srs = OSRNewSpatialReference(nullptr);
  OSRImportFromEPSG(srs, 32615);
  for (const char* name : {"buildings", "roads"}) {
    OGRLayerH lyr = GDALDatasetCreateLayer(ds, name, srs, wkbPolygon, nullptr);
    ASSERT_NE(lyr, nullptr);
    OGRFieldDefnH fld = OGR_Fld_Create("uid", OFTString);
    OGR_L_CreateField(lyr, fld, TRUE);
    OGR_Fld_Destroy(fld);
    OGRFeatureH f = OGR_F_Create(OGR_L_GetLayerDefn(lyr));
    OGR_F_SetFieldString(f, 0, name);
    OGRGeometryH geom = nullptr;
    char wkt[] =
        "POLYGON ((500010 3849990, 500020 3849990, 500020 3849980, 500010 3849980, 500010 "
        "3849990))";
    char* p = wkt;
    OGR_G_CreateFromWkt(&p, nullptr, &geom);
    OGR_F_SetGeometryDirectly(f, geom);
    ASSERT_EQ(OGR_L_CreateFeature(lyr, f), OGRERR_NONE);
    OGR_F_Destroy(f);
  }
  OSRDestroySpatialReference(srs);
  GDALClose(ds);

  const Grid g = utm_grid();
  expect_error([&] { read_footprints(path("two.gpkg"), g); }, ErrorKind::input,
               {"two.gpkg", "buildings", "roads"});
  expect_error(
      [&] {
        read_footprints(path("two.gpkg"), g, {"lakes", "", {}});
      },
      ErrorKind::input, {"lakes", "buildings", "roads"});
  const auto set = read_footprints(path("two.gpkg"), g, {"roads", "", {}});
  ASSERT_EQ(set.features.size(), 1u);
  EXPECT_EQ(set.features[0].source_id, "roads");  // "uid" field
  EXPECT_NEAR(set.features[0].bbox.x, 20, 1e-6);
  EXPECT_NEAR(set.features[0].bbox.y, 20, 1e-6);
  EXPECT_NEAR(set.features[0].area_px, 400, 1e-6);
  expect_error(
      [&] {
        read_footprints(path("two.gpkg"), g, {"roads", "name", {}});
      },
      ErrorKind::input, {"name", "uid"});
}

TEST_F(FootprintsTest, BadGeometriesSkippedOrRepairedWithWarnings) {
  const Grid g = wgs_grid();
  const std::string gj = R"({"type":"FeatureCollection","features":[
    {"type":"Feature","properties":{"id":"square"},"geometry":{"type":"Polygon","coordinates":[[[10.01,49.99],[10.02,49.99],[10.02,49.98],[10.01,49.98],[10.01,49.99]]]}},
    {"type":"Feature","properties":{"id":"bowtie"},"geometry":{"type":"Polygon","coordinates":[[[10.03,49.99],[10.05,49.97],[10.05,49.99],[10.03,49.97],[10.03,49.99]]]}},
    {"type":"Feature","properties":{"id":"nothing"},"geometry":null},
    {"type":"Feature","properties":{"id":"pt"},"geometry":{"type":"Point","coordinates":[10.05,49.95]}},
    {"type":"Feature","properties":{"id":"road"},"geometry":{"type":"LineString","coordinates":[[10.05,49.95],[10.06,49.96]]}},
    {"type":"Feature","properties":{"id":"mixed"},"geometry":{"type":"GeometryCollection","geometries":[
       {"type":"Point","coordinates":[10.05,49.95]},
       {"type":"Polygon","coordinates":[[[10.06,49.94],[10.07,49.94],[10.07,49.93],[10.06,49.93],[10.06,49.94]]]}]}},
    {"type":"Feature","properties":{"id":"multi"},"geometry":{"type":"MultiPolygon","coordinates":[
       [[[10.08,49.92],[10.09,49.92],[10.09,49.91],[10.08,49.91],[10.08,49.92]]],
       [[[10.085,49.905],[10.09,49.905],[10.09,49.9],[10.085,49.9],[10.085,49.905]]]]}}
  ]})";
  const auto set = read_footprints(write("bad.geojson", gj), g);
  if (std::getenv("AFTERMATH_TEST_VERBOSE"))
    for (const auto& w : set.warnings) std::printf("  warning: %s\n", w.c_str());
  ASSERT_EQ(set.features.size(), 4u);
  EXPECT_EQ(set.features[0].source_id, "square");
  EXPECT_EQ(set.features[1].source_id, "bowtie");
  EXPECT_EQ(set.features[2].source_id, "mixed");
  EXPECT_EQ(set.features[3].source_id, "multi");
  for (std::size_t i = 0; i < set.features.size(); ++i)
    EXPECT_EQ(set.features[i].id, std::int64_t(i));
  EXPECT_NEAR(set.features[0].area_px, 100, 1e-6);
  EXPECT_NEAR(set.features[1].area_px, 200, 1e-6);  // two 10x10-half triangles of a 20x20 bow-tie
  EXPECT_GE(set.features[1].rings.size(), 2u);
  EXPECT_NEAR(set.features[2].area_px, 100, 1e-6);
  EXPECT_EQ(set.features[3].rings.size(), 2u);
  EXPECT_NEAR(set.features[3].area_px, 100 + 25, 1e-6);
  EXPECT_TRUE(any_contains(set.warnings, "bowtie"));
  EXPECT_TRUE(any_contains(set.warnings, "nothing"));
  EXPECT_TRUE(any_contains(set.warnings, "pt"));
  EXPECT_TRUE(any_contains(set.warnings, "road"));
  EXPECT_TRUE(any_contains(set.warnings, "mixed"));
  EXPECT_EQ(set.warnings.size(), 5u);
}

TEST_F(FootprintsTest, ProjectedCoordinatesWithoutCrsAreOutOfRange) {
  const std::string gj = R"({"type":"FeatureCollection","features":[
    {"type":"Feature","properties":{},"geometry":{"type":"Polygon","coordinates":[[[500010,3849990],[500020,3849990],[500020,3849980],[500010,3849990]]]}}]})";
  expect_error([&] { read_footprints(write("utm.geojson", gj), utm_grid()); }, ErrorKind::input,
               {"utm.geojson", "out of range for EPSG:4326"});
}

TEST_F(FootprintsTest, GeoJsonWithCrsMemberAndFidIds) {
  const std::string gj = R"({"type":"FeatureCollection",
    "crs":{"type":"name","properties":{"name":"urn:ogc:def:crs:EPSG::32615"}},
    "features":[
    {"type":"Feature","id":41,"properties":{"subtype":"destroyed"},"geometry":{"type":"Polygon","coordinates":[[[500010,3849990],[500020,3849990],[500020,3849980],[500010,3849990]]]}}]})";
  const auto set = read_footprints(write("crs.geojson", gj), utm_grid());
  ASSERT_EQ(set.features.size(), 1u);
  EXPECT_EQ(set.features[0].source_id, "41");
  EXPECT_EQ(set.features[0].truth, DamageClass::destroyed);
  EXPECT_NEAR(set.features[0].area_px, 200, 1e-6);
}

TEST_F(FootprintsTest, FileErrors) {
  const Grid g = utm_grid();
  expect_error([&] { read_footprints(path("none.geojson"), g); }, ErrorKind::input,
               {"none.geojson", "does not exist"});
  expect_error([&] { read_footprints(write("e.geojson", ""), g); }, ErrorKind::input,
               {"e.geojson", "empty file"});
  expect_error(
      [&] {
        read_footprints(write("m.geojson", R"({"type":"FeatureCollection","features":[{"type":)"),
                        g);
      },
      ErrorKind::input, {"m.geojson"});
  expect_error([&] { read_footprints(write("junk.shp", "not a shapefile at all"), g); },
               ErrorKind::input, {"junk.shp"});

  Grid plain;
  plain.width = 10;
  plain.height = 10;
  const std::string gj = R"({"type":"FeatureCollection","features":[]})";
  expect_error([&] { read_footprints(write("p.geojson", gj), plain); }, ErrorKind::input,
               {"p.geojson", "georeferenced scene"});

  const auto empty = read_footprints(write("zero.geojson", gj), g);
  EXPECT_TRUE(empty.features.empty());
  ASSERT_EQ(empty.warnings.size(), 1u);
  EXPECT_NE(empty.warnings[0].find("no features in"), std::string::npos);
}

const char* kXbd = R"JSON({"features": {
  "lng_lat": [
    {"properties": {"feature_type": "building", "subtype": "destroyed", "uid": "u1"},
     "wkt": "POLYGON ((10.010 49.990, 10.020 49.990, 10.020 49.980, 10.010 49.980, 10.010 49.990))"},
    {"properties": {"feature_type": "building", "subtype": "no-damage", "uid": "u2"},
     "wkt": "POLYGON ((10.030 49.990, 10.040 49.990, 10.040 49.980, 10.030 49.980, 10.030 49.990))"},
    {"properties": {"feature_type": "tree", "uid": "u3"},
     "wkt": "POLYGON ((10.050 49.990, 10.060 49.990, 10.060 49.980, 10.050 49.990))"},
    {"properties": {"feature_type": "building", "uid": "u4"},
     "wkt": "POLYGON ((10.070 49.990, 10.080 49.990, 10.080 49.980, 10.070 49.990))"}
  ],
  "xy": [
    {"properties": {"feature_type": "building", "subtype": "destroyed", "uid": "u1"},
     "wkt": "POLYGON ((1.5 2.5, 11.5 2.5, 11.5 12.5, 1.5 12.5, 1.5 2.5))"},
    {"properties": {"feature_type": "building", "subtype": "no-damage", "uid": "u2"},
     "wkt": "POLYGON ((20 20, 30 20, 30 40, 20 40, 20 20))"},
    {"properties": {"feature_type": "tree", "uid": "u3"},
     "wkt": "POLYGON ((50 50, 60 50, 60 60, 50 50))"},
    {"properties": {"feature_type": "building", "uid": "u4"},
     "wkt": "POLYGON ((70 10, 80 10, 80 20, 70 10))"}
  ]},
  "metadata": {"width": 100, "height": 100}})JSON";

TEST_F(FootprintsTest, XbdJsonOnPlainGridUsesXy) {
  Grid plain;
  plain.width = 100;
  plain.height = 100;
  const auto set = read_footprints(write("post.json", kXbd), plain);
  ASSERT_EQ(set.features.size(), 3u);
  EXPECT_EQ(set.features[0].source_id, "u1");
  EXPECT_EQ(set.features[0].truth, DamageClass::destroyed);
  EXPECT_NEAR(set.features[0].rings[0][0].x, 1.5, 1e-12);
  EXPECT_NEAR(set.features[0].rings[0][0].y, 2.5, 1e-12);
  EXPECT_NEAR(set.features[0].area_px, 100, 1e-9);
  EXPECT_EQ(set.features[1].source_id, "u2");
  EXPECT_EQ(set.features[1].truth, DamageClass::no_damage);
  EXPECT_NEAR(set.features[1].area_px, 200, 1e-9);
  EXPECT_EQ(set.features[2].source_id, "u4");
  EXPECT_EQ(set.features[2].truth, DamageClass::unclassified);
  EXPECT_EQ(set.features[2].id, 2);
}

TEST_F(FootprintsTest, XbdJsonOnGeoreferencedGridUsesLngLat) {
  const auto set = read_footprints(write("post.json", kXbd), wgs_grid());
  ASSERT_EQ(set.features.size(), 3u);
  EXPECT_NEAR(set.features[0].bbox.x, 10, 1e-6);
  EXPECT_NEAR(set.features[0].bbox.y, 10, 1e-6);
  EXPECT_NEAR(set.features[0].area_px, 100, 1e-6);
  EXPECT_NEAR(set.features[1].bbox.x, 30, 1e-6);
}

TEST_F(FootprintsTest, MalformedXbdJson) {
  std::string bad = kXbd;
  bad.resize(bad.size() / 2);
  expect_error([&] { read_footprints(write("post.json", bad), wgs_grid()); }, ErrorKind::input,
               {"post.json", "JSON"});
}

// Issue 5: kinds from OpenStreetMap-style tags, lines cut into buffered segments, points into
// discs, duplicate ids renumbered. Grid: UTM, 0.5 m pixels, origin (500000, 3850000).
TEST_F(FootprintsTest, KindsLinesPointsAndDuplicateIds) {
  const std::string text = R"({"type":"FeatureCollection",
    "crs":{"type":"name","properties":{"name":"urn:ogc:def:crs:EPSG::32615"}},
    "features":[
     {"type":"Feature","properties":{"id":"a","building":"yes"},
      "geometry":{"type":"Polygon","coordinates":[[[500010,3849990],[500020,3849990],[500020,3849980],[500010,3849980],[500010,3849990]]]}},
     {"type":"Feature","properties":{"id":"a"},
      "geometry":{"type":"Polygon","coordinates":[[[500030,3849990],[500040,3849990],[500040,3849980],[500030,3849980],[500030,3849990]]]}},
     {"type":"Feature","properties":{"id":"r1","highway":"primary"},
      "geometry":{"type":"LineString","coordinates":[[500000,3849900],[500150,3849900],[500150,3849800]]}},
     {"type":"Feature","properties":{"id":"r2","railway":"rail","width":"3 m"},
      "geometry":{"type":"LineString","coordinates":[[500000,3849850],[500050,3849850]]}},
     {"type":"Feature","properties":{"id":"h","amenity":"hospital"},
      "geometry":{"type":"Point","coordinates":[500100,3849950]}},
     {"type":"Feature","properties":{"id":"p"},
      "geometry":{"type":"Point","coordinates":[500120,3849950]}},
     {"type":"Feature","properties":{"id":"x"},
      "geometry":{"type":"LineString","coordinates":[[500000,3849870],[500050,3849870]]}}
    ]})";
  const auto set = read_footprints(write("osm.geojson", text), utm_grid());
  // a, a~2, three segments of r1 (250 m in pieces of at most 100 m), one of r2, the hospital.
  ASSERT_EQ(set.features.size(), 7u);
  const auto& f = set.features;
  EXPECT_EQ(f[0].source_id, "a");
  EXPECT_EQ(f[0].kind, FeatureKind::building);
  EXPECT_EQ(f[1].source_id, "a~2");
  EXPECT_EQ(f[1].kind, FeatureKind::building);  // untagged polygon
  EXPECT_TRUE(any_contains(set.warnings, "duplicate feature id"));
  for (int k = 0; k < 3; ++k) {
    const Footprint& seg = f[static_cast<std::size_t>(2 + k)];
    EXPECT_EQ(seg.source_id, "r1");
    EXPECT_EQ(seg.kind, FeatureKind::road);
    EXPECT_EQ(seg.source_geometry, SourceGeometry::line);
    EXPECT_EQ(seg.segment, k);
    EXPECT_NEAR(centerline_length_px(seg), 250.0 / 3 / 0.5, 1e-6);  // 83.3 m in 0.5 m pixels
    EXPECT_FALSE(seg.centerline_wkt.empty());
    // Corridor 8 m wide (16 px): area = length x width + the round ends (pi r^2), roughly.
    EXPECT_NEAR(seg.area_px, 166.67 * 16 + 3.14159 * 64, 0.03 * 166.67 * 16);
  }
  EXPECT_EQ(f[5].kind, FeatureKind::rail);
  EXPECT_NEAR(f[5].area_px, 100 * 6 + 3.14159 * 9, 0.03 * 600);  // the width attribute "3 m"
  EXPECT_EQ(f[6].kind, FeatureKind::infrastructure);
  EXPECT_EQ(f[6].source_geometry, SourceGeometry::point);
  EXPECT_NEAR(f[6].area_px, 3.14159 * 30 * 30, 0.02 * 3.14159 * 900);  // 15 m radius
  EXPECT_NEAR(f[6].bbox.x + f[6].bbox.width / 2, 200, 1e-6);
  EXPECT_TRUE(any_contains(set.warnings, "feature p: Point skipped"));
  EXPECT_TRUE(any_contains(set.warnings, "feature x: Line String skipped (no features.kinds rule"));
}

TEST_F(FootprintsTest, KindRulesAreParsedAndChecked) {
  std::string problem;
  const auto r = parse_kind_rule("amenity=hospital|school:infrastructure", problem);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->attribute, "amenity");
  EXPECT_EQ(r->values, (std::vector<std::string>{"hospital", "school"}));
  EXPECT_TRUE(r->matches("school"));
  EXPECT_FALSE(r->matches("bank"));
  const auto any = parse_kind_rule("building=*:building", problem);
  ASSERT_TRUE(any);
  EXPECT_TRUE(any->matches("house"));
  EXPECT_FALSE(any->matches("no"));  // OSM building=no
  for (const char* bad : {"building", "=x:road", "a=:road", "a=x:castle", "a=x||y:road"}) {
    EXPECT_FALSE(parse_kind_rule(bad, problem)) << bad;
    EXPECT_FALSE(problem.empty()) << bad;
  }
}

}  // namespace
