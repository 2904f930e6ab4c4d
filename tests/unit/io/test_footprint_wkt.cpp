// Footprint::wkt: the feature's geometry as WKT in the analysis grid's CRS (map units), or in
// pixel units (the xBD `xy` polygon) on a plain pixel grid.
#include <gtest/gtest.h>
#include <ogr_geometry.h>
#include <ogr_spatialref.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "aftermath/io/footprints.hpp"
#include "aftermath/io/scene.hpp"

namespace fs = std::filesystem;
using namespace aftermath;

namespace {

struct TempDir {
  fs::path dir;
  TempDir() {
    dir = fs::temp_directory_path() /
          ("aftermath_fp_wkt_" + std::to_string(::getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~TempDir() { fs::remove_all(dir); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream((dir / name).string(), std::ios::binary) << text;
    return (dir / name).string();
  }
};

std::unique_ptr<OGRGeometry> parse(const std::string& wkt) {
  OGRGeometry* g = nullptr;
  EXPECT_EQ(OGRGeometryFactory::createFromWkt(wkt.c_str(), nullptr, &g), OGRERR_NONE) << wkt;
  return std::unique_ptr<OGRGeometry>(g);
}

TEST(FootprintWkt, XbdOnPlainGridIsTheXyPolygonInPixels) {
  TempDir t;
  const std::string json = R"JSON({"features": {
    "lng_lat": [{"properties": {"feature_type": "building", "uid": "a"},
                 "wkt": "POLYGON ((10.01 49.99, 10.02 49.99, 10.02 49.98, 10.01 49.99))"}],
    "xy": [{"properties": {"feature_type": "building", "uid": "a"},
            "wkt": "POLYGON ((1.5 2.5, 11.5 2.5, 11.5 12.5, 1.5 12.5, 1.5 2.5))"}]}})JSON";
  Grid plain;
  plain.width = 100;
  plain.height = 100;
  const auto set = read_footprints(t.write("post.json", json), plain);
  ASSERT_EQ(set.features.size(), 1u);
  const auto g = parse(set.features[0].wkt);
  ASSERT_TRUE(g);
  EXPECT_EQ(wkbFlatten(g->getGeometryType()), wkbPolygon);
  const auto expected = parse("POLYGON ((1.5 2.5, 11.5 2.5, 11.5 12.5, 1.5 12.5, 1.5 2.5))");
  EXPECT_TRUE(g->Equals(expected.get())) << set.features[0].wkt;
}

TEST(FootprintWkt, GeoJsonReprojectedToTheGridCrs) {
  init_gdal();
  TempDir t;
  Grid g;
  g.crs_wkt = crs_to_wkt("EPSG:32615");
  g.geotransform = {500000, 0.5, 0, 3850000, 0, -0.5};
  g.width = 400;
  g.height = 400;
  // A UTM rectangle and a two-part multipolygon, given in EPSG:4326 (reprojected exactly here).
  OGRSpatialReference utm, wgs;
  utm.importFromEPSG(32615);
  wgs.importFromEPSG(4326);
  utm.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  wgs.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  std::unique_ptr<OGRCoordinateTransformation, void (*)(OGRCoordinateTransformation*)> to_wgs(
      OGRCreateCoordinateTransformation(&utm, &wgs), OGRCoordinateTransformation::DestroyCT);
  auto lonlat = [&](const std::string& utm_wkt) {
    auto geom = parse(utm_wkt);
    geom->transform(to_wgs.get());
    char* json = geom->exportToJson();
    std::string s = json;
    CPLFree(json);
    return s;
  };
  const std::string rect =
      "POLYGON ((500010 3849990,500020 3849990,500020 3849980,500010 3849980,500010 3849990))";
  const std::string multi =
      "MULTIPOLYGON (((500050 3849950,500060 3849950,500060 3849940,500050 3849950)),"
      "((500100 3849900,500110 3849900,500110 3849890,500100 3849900)))";
  const std::string gj = R"({"type":"FeatureCollection","features":[
    {"type":"Feature","properties":{"id":"r"},"geometry":)" +
                         lonlat(rect) + R"(},
    {"type":"Feature","properties":{"id":"m"},"geometry":)" +
                         lonlat(multi) + R"(}]})";
  const auto set = read_footprints(t.write("b.geojson", gj), g);
  ASSERT_EQ(set.features.size(), 2u);
  const auto a = parse(set.features[0].wkt);
  ASSERT_TRUE(a);
  EXPECT_EQ(wkbFlatten(a->getGeometryType()), wkbPolygon);
  OGREnvelope e;
  a->getEnvelope(&e);
  EXPECT_NEAR(e.MinX, 500010, 1e-4);
  EXPECT_NEAR(e.MaxX, 500020, 1e-4);
  EXPECT_NEAR(e.MinY, 3849980, 1e-4);
  EXPECT_NEAR(e.MaxY, 3849990, 1e-4);
  EXPECT_NEAR(a->toPolygon()->get_Area(), 100.0, 1e-3);
  const auto b = parse(set.features[1].wkt);
  ASSERT_TRUE(b);
  EXPECT_EQ(wkbFlatten(b->getGeometryType()), wkbMultiPolygon);
  EXPECT_EQ(b->toMultiPolygon()->getNumGeometries(), 2);
  EXPECT_NEAR(b->toMultiPolygon()->get_Area(), 100.0, 1e-3);
  // The pixel rings and the WKT describe the same shape: area in px^2 x 0.25 m^2/px^2.
  EXPECT_NEAR(set.features[0].area_px * 0.25, 100.0, 1e-3);
}

}  // namespace
