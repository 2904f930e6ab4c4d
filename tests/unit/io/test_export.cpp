// export_outputs: an output written like the engine's (Hdf5Writer layers + /footprints table +
// root attributes) exported and read back through GDAL's C API: COGs (CRS, geotransform, pixels,
// COG layout), the GeoPackage (features, fields, QGIS style row), GeoJSON (EPSG:4326) and the
// STAC Item (the STAC 1.0 Item structure).
#include <cpl_minixml.h>
#include <gdal.h>
#include <gtest/gtest.h>
#include <ogr_api.h>
#include <ogr_srs_api.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "aftermath/core/error.hpp"
#include "aftermath/io/export.hpp"
#include "aftermath/io/hdf5_reader.hpp"
#include "aftermath/io/hdf5_writer.hpp"
#include "aftermath/io/scene.hpp"

using namespace aftermath;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr int kChunk = 256;

struct Output {
  std::string path;
  Grid grid;
  cv::Mat score, mask;
};

/// Writes an HDF5 output as the engine does: layers, /footprints (with geometry_wkt), attributes.
Output write_output(const fs::path& dir, bool georeferenced, bool with_truth = false) {
  Output o;
  o.path = (dir / "scene.h5").string();
  Grid& g = o.grid;
  if (georeferenced) {
    g.crs_wkt = crs_to_wkt("EPSG:32615");
    g.geotransform = {366000.0, 0.6, 0, 4104000.0, 0, -0.6};
  }
  g.width = 700;  // > the COG tile (512): one overview level
  g.height = 300;
  o.score = cv::Mat(g.height, g.width, CV_32F);
  cv::randu(o.score, 0.0, 1.0);
  o.score(cv::Rect(0, 0, 40, 30)).setTo(-1.0f);  // invalid pixels
  o.mask = cv::Mat(g.height, g.width, CV_8U);
  cv::randu(o.mask, 0, 2);
  o.mask(cv::Rect(0, 0, 40, 30)).setTo(255);
  const std::vector<LayerSpec> specs = {
      {"change_score", LayerType::float32, -1.0, "change score of detector cva", "1", {}, {}},
      {"damage_mask",
       LayerType::uint8,
       255,
       "damage mask",
       "",
       {0, 1, 255},
       "unchanged changed invalid"}};
  Hdf5Writer w(o.path, g, kChunk, specs, 4);
  const TileGrid tiles(g.width, g.height, kChunk, 0);
  for (int i = 0; i < tiles.count(); ++i) {
    const Tile t = tiles.tile(i);
    w.write_chunk(0, t, encode_chunk(specs[0], o.score(t.core.rect()), kChunk, 4));
    w.write_chunk(1, t, encode_chunk(specs[1], o.mask(t.core.rect()), kChunk, 4));
  }
  // Three features: a rectangle, a two-part multipolygon, one without geometry (outside).
  auto map = [&](double c, double r) {
    const auto p = g.pixel_to_map(c, r);
    return std::to_string(p.x) + " " + std::to_string(p.y);
  };
  const std::string rect = "POLYGON ((" + map(100, 50) + ", " + map(120, 50) + ", " + map(120, 60) +
                           ", " + map(100, 60) + ", " + map(100, 50) + "))";
  const std::string multi = "MULTIPOLYGON (((" + map(200, 100) + ", " + map(210, 100) + ", " +
                            map(210, 110) + ", " + map(200, 100) + ")), ((" + map(300, 200) + ", " +
                            map(310, 200) + ", " + map(310, 210) + ", " + map(300, 200) + ")))";
  Table t;
  t.group = "footprints";
  t.dimension = "feature";
  const std::string cv = "0 1 2 3 255",
                    cm = "no_damage minor_damage major_damage destroyed unclassified";
  t.columns.push_back({"id", std::vector<std::int64_t>{0, 1, 2}, "", "", {}});
  t.columns.push_back({"source_id", std::vector<std::string>{"b-17", "b-18", "b-19"}, "", "", {}});
  t.columns.push_back({"kind", std::vector<std::uint8_t>{0, 0, 0}, "", "", {}});
  t.columns.push_back(
      {"area", std::vector<double>{72.0, 36.0, 0.0}, "", georeferenced ? "m2" : "pixel2", {}});
  t.columns.push_back({"pixels", std::vector<std::int64_t>{200, 100, 0}, "", "1", {}});
  t.columns.push_back({"coverage", std::vector<double>{1.0, 1.0, 0.0}, "", "1", {}});
  t.columns.push_back({"valid_fraction", std::vector<double>{1.0, 0.5, 0.0}, "", "1", {}});
  t.columns.push_back({"mean_score", std::vector<double>{0.75, 0.125, 0.0}, "", "1", {}});
  t.columns.push_back({"changed_fraction", std::vector<double>{0.9, 0.05, 0.0}, "", "1", {}});
  t.columns.push_back({"status", std::vector<std::uint8_t>{0, 0, 2}, "", "", {}});
  t.columns.push_back({"damage_class",
                       std::vector<std::uint8_t>{3, 0, 255},
                       "",
                       "",
                       {{"flag_values", cv}, {"flag_meanings", cm}}});
  t.columns.push_back({"confidence", std::vector<double>{1.0, 0.5, 0.0}, "", "1", {}});
  t.columns.push_back({"geometry_wkt", std::vector<std::string>{rect, multi, ""}, "", "", {}});
  if (with_truth)
    t.columns.push_back({"truth_class", std::vector<std::uint8_t>{3, 1, 255}, "", "", {}});
  w.write_table(t);
  w.set_attribute("/", "Conventions", std::string("CF-1.8"));
  w.set_attribute("/", "aftermath_version", std::string("0.1.0"));
  w.set_attribute("/", "config_sha256", std::string(64, 'a'));
  w.set_attribute("/", "detector", std::string("cva"));
  w.set_attribute("/", "threshold", 0.5);
  w.set_attribute("/", "created", std::string("2024-05-01T12:00:00Z"));
  w.set_attribute("/", "input_pre", std::string("/nowhere/pre.tif"));
  w.set_attribute("/", "input_pre_sha256", std::string(64, 'b'));
  w.set_attribute("/", "input_post", std::string("/nowhere/post.tif"));
  w.set_attribute("/", "input_post_sha256", std::string(64, 'c'));
  w.commit();
  return o;
}

class ExportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    init_gdal();
    dir_ = fs::temp_directory_path() /
           ("aftermath_export_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!std::getenv("AFTERMATH_KEEP_TEST_FILES")) fs::remove_all(dir_);
  }
  fs::path dir_;
};

struct Ds {
  GDALDatasetH h = nullptr;
  explicit Ds(const std::string& path, unsigned flags) {
    h = GDALOpenEx(path.c_str(), flags | GDAL_OF_READONLY, nullptr, nullptr, nullptr);
  }
  ~Ds() {
    if (h) GDALClose(h);
  }
  Ds(const Ds&) = delete;
  Ds& operator=(const Ds&) = delete;
};

OGRSpatialReferenceH srs_of_wkt(const std::string& wkt) {
  OGRSpatialReferenceH s = OSRNewSpatialReference(nullptr);
  char* p = const_cast<char*>(wkt.c_str());
  EXPECT_EQ(OSRImportFromWkt(s, &p), OGRERR_NONE);
  return s;
}

/// The STAC 1.0.0 Item schema (item.json + the common datetime rules), as structure checks.
void expect_stac_item(const json& j) {
  ASSERT_TRUE(j.is_object());
  for (const char* k :
       {"type", "stac_version", "id", "geometry", "properties", "links", "assets"}) {
    EXPECT_TRUE(j.contains(k)) << "missing " << k;
  }
  EXPECT_EQ(j.value("type", ""), "Feature");
  EXPECT_EQ(j.value("stac_version", ""), "1.0.0");
  ASSERT_TRUE(j["id"].is_string());
  EXPECT_FALSE(j["id"].get<std::string>().empty());
  if (j.contains("stac_extensions")) {
    ASSERT_TRUE(j["stac_extensions"].is_array());
    for (const auto& e : j["stac_extensions"]) {
      EXPECT_TRUE(e.is_string() && e.get<std::string>().rfind("https://", 0) == 0);
    }
  }
  if (!j["geometry"].is_null()) {
    ASSERT_TRUE(j["geometry"].is_object());
    EXPECT_EQ(j["geometry"].value("type", ""), "Polygon");
    ASSERT_TRUE(j["geometry"]["coordinates"].is_array());
    const auto& ring = j["geometry"]["coordinates"][0];
    ASSERT_GE(ring.size(), 4u);
    EXPECT_EQ(ring.front(), ring.back());
    ASSERT_TRUE(j.contains("bbox")) << "bbox is required with a geometry";
    ASSERT_TRUE(j["bbox"].is_array());
    ASSERT_EQ(j["bbox"].size(), 4u);
    for (const auto& v : j["bbox"]) EXPECT_TRUE(v.is_number());
  }
  const auto& p = j["properties"];
  ASSERT_TRUE(p.is_object());
  ASSERT_TRUE(p.contains("datetime"));
  if (p["datetime"].is_null()) {
    EXPECT_TRUE(p.contains("start_datetime") && p["start_datetime"].is_string());
    EXPECT_TRUE(p.contains("end_datetime") && p["end_datetime"].is_string());
  } else {
    EXPECT_TRUE(p["datetime"].is_string());
  }
  ASSERT_TRUE(j["links"].is_array());
  for (const auto& l : j["links"]) EXPECT_TRUE(l.contains("href") && l.contains("rel"));
  ASSERT_TRUE(j["assets"].is_object());
  for (const auto& [key, a] : j["assets"].items()) {
    ASSERT_TRUE(a.is_object()) << key;
    ASSERT_TRUE(a.contains("href") && a["href"].is_string()) << key;
    if (a.contains("type")) {
      EXPECT_TRUE(a["type"].is_string()) << key;
    }
    if (a.contains("roles")) {
      ASSERT_TRUE(a["roles"].is_array()) << key;
      for (const auto& r : a["roles"]) EXPECT_TRUE(r.is_string()) << key;
    }
  }
}

TEST_F(ExportTest, CogsAreValidCogsWithTheGridAndTheHdf5Values) {
  const Output o = write_output(dir_, true);
  const ExportResult r = export_outputs(o.path, (dir_ / "out").string());
  ASSERT_EQ(r.cogs.size(), 2u);
  EXPECT_TRUE(r.georeferenced);
  const Hdf5Reader h5(o.path);
  OGRSpatialReferenceH grid_srs = srs_of_wkt(o.grid.crs_wkt);
  for (std::size_t i = 0; i < 2; ++i) {
    const std::string name = i == 0 ? "change_score" : "damage_mask";
    EXPECT_EQ(fs::path(r.cogs[i]).filename(), "scene_" + name + ".tif");
    Ds ds(r.cogs[i], GDAL_OF_RASTER);
    ASSERT_TRUE(ds.h) << r.cogs[i];
    EXPECT_STREQ(GDALGetDriverShortName(GDALGetDatasetDriver(ds.h)), "GTiff");
    const char* layout = GDALGetMetadataItem(ds.h, "LAYOUT", "IMAGE_STRUCTURE");
    ASSERT_NE(layout, nullptr);
    EXPECT_STREQ(layout, "COG");
    const char* comp = GDALGetMetadataItem(ds.h, "COMPRESSION", "IMAGE_STRUCTURE");
    ASSERT_NE(comp, nullptr);
    EXPECT_STREQ(comp, "DEFLATE");
    // CRS equivalent to the grid's and the same geotransform.
    OGRSpatialReferenceH srs = GDALGetSpatialRef(ds.h);
    ASSERT_NE(srs, nullptr);
    EXPECT_TRUE(OSRIsSame(srs, grid_srs));
    double gt[6];
    ASSERT_EQ(GDALGetGeoTransform(ds.h, gt), CE_None);
    for (int k = 0; k < 6; ++k)
      EXPECT_EQ(gt[k], o.grid.geotransform[static_cast<std::size_t>(k)]) << k;
    ASSERT_EQ(GDALGetRasterXSize(ds.h), o.grid.width);
    ASSERT_EQ(GDALGetRasterYSize(ds.h), o.grid.height);
    GDALRasterBandH b = GDALGetRasterBand(ds.h, 1);
    int has_nodata = 0;
    const double nodata = GDALGetRasterNoDataValue(b, &has_nodata);
    EXPECT_TRUE(has_nodata);
    EXPECT_EQ(nodata, i == 0 ? -1.0 : 255.0);
    EXPECT_GE(GDALGetOverviewCount(b), 1);
    // Pixels identical to the HDF5 layer (bit for bit).
    const cv::Mat ref = h5.layer(name);
    cv::Mat got(o.grid.height, o.grid.width, ref.type());
    ASSERT_EQ(GDALRasterIO(b, GF_Read, 0, 0, o.grid.width, o.grid.height, got.data, o.grid.width,
                           o.grid.height, i == 0 ? GDT_Float32 : GDT_Byte, 0, 0),
              CE_None);
    EXPECT_EQ(std::memcmp(got.data, ref.data, ref.total() * ref.elemSize()), 0) << name;
    EXPECT_EQ(cv::norm(ref, i == 0 ? o.score : o.mask, cv::NORM_INF), 0.0);
  }
  OSRDestroySpatialReference(grid_srs);
  // Nothing temporary is left behind.
  for (const auto& e : fs::directory_iterator(dir_ / "out")) {
    EXPECT_NE(e.path().filename().string()[0], '.') << e.path();
  }
}

TEST_F(ExportTest, GeoPackageHasTheFeaturesFieldsAndQgisStyle) {
  const Output o = write_output(dir_, true, true);
  const ExportResult r = export_outputs(o.path, (dir_ / "out").string());
  EXPECT_EQ(r.features, 3);
  Ds ds(r.geopackage, GDAL_OF_VECTOR);
  ASSERT_TRUE(ds.h);
  OGRLayerH l = GDALDatasetGetLayerByName(ds.h, "footprints");
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(OGR_L_GetFeatureCount(l, TRUE), 3);
  OGRSpatialReferenceH grid_srs = srs_of_wkt(o.grid.crs_wkt);
  ASSERT_NE(OGR_L_GetSpatialRef(l), nullptr);
  EXPECT_TRUE(OSRIsSame(OGR_L_GetSpatialRef(l), grid_srs));
  OSRDestroySpatialReference(grid_srs);
  OGRFeatureDefnH defn = OGR_L_GetLayerDefn(l);
  std::set<std::string> fields;
  for (int i = 0; i < OGR_FD_GetFieldCount(defn); ++i)
    fields.insert(OGR_Fld_GetNameRef(OGR_FD_GetFieldDefn(defn, i)));
  for (const char* f : {"id", "source_id", "kind", "status", "damage_class", "damage", "mean_score",
                        "changed_fraction", "valid_fraction", "coverage", "confidence", "area",
                        "pixels", "truth_class", "truth"}) {
    EXPECT_TRUE(fields.count(f)) << "missing field " << f;
  }
  OGR_L_ResetReading(l);
  OGRFeatureH f = OGR_L_GetNextFeature(l);
  ASSERT_NE(f, nullptr);
  EXPECT_STREQ(OGR_F_GetFieldAsString(f, OGR_F_GetFieldIndex(f, "source_id")), "b-17");
  EXPECT_STREQ(OGR_F_GetFieldAsString(f, OGR_F_GetFieldIndex(f, "kind")), "building");
  EXPECT_STREQ(OGR_F_GetFieldAsString(f, OGR_F_GetFieldIndex(f, "status")), "scored");
  EXPECT_EQ(OGR_F_GetFieldAsInteger(f, OGR_F_GetFieldIndex(f, "damage_class")), 3);
  EXPECT_STREQ(OGR_F_GetFieldAsString(f, OGR_F_GetFieldIndex(f, "damage")), "destroyed");
  EXPECT_DOUBLE_EQ(OGR_F_GetFieldAsDouble(f, OGR_F_GetFieldIndex(f, "mean_score")), 0.75);
  EXPECT_DOUBLE_EQ(OGR_F_GetFieldAsDouble(f, OGR_F_GetFieldIndex(f, "changed_fraction")), 0.9);
  EXPECT_DOUBLE_EQ(OGR_F_GetFieldAsDouble(f, OGR_F_GetFieldIndex(f, "area")), 72.0);
  EXPECT_STREQ(OGR_F_GetFieldAsString(f, OGR_F_GetFieldIndex(f, "truth")), "destroyed");
  OGRGeometryH g = OGR_F_GetGeometryRef(f);
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(wkbFlatten(OGR_G_GetGeometryType(g)), wkbMultiPolygon);
  EXPECT_NEAR(OGR_G_Area(g), 20 * 10 * 0.36, 1e-6);  // 20 x 10 px of 0.6 m
  OGR_F_Destroy(f);
  f = OGR_L_GetNextFeature(l);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(OGR_G_GetGeometryCount(OGR_F_GetGeometryRef(f)), 2);
  EXPECT_STREQ(OGR_F_GetFieldAsString(f, OGR_F_GetFieldIndex(f, "damage")), "no-damage");
  OGR_F_Destroy(f);
  f = OGR_L_GetNextFeature(l);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(OGR_F_GetGeometryRef(f), nullptr);  // no geometry in the HDF5 file
  EXPECT_STREQ(OGR_F_GetFieldAsString(f, OGR_F_GetFieldIndex(f, "status")), "outside");
  EXPECT_STREQ(OGR_F_GetFieldAsString(f, OGR_F_GetFieldIndex(f, "damage")), "un-classified");
  OGR_F_Destroy(f);

  // The QGIS style row: default style of `footprints`, a categorised renderer on damage_class.
  OGRLayerH st = GDALDatasetGetLayerByName(ds.h, "layer_styles");
  ASSERT_NE(st, nullptr);
  EXPECT_EQ(OGR_L_GetGeomType(st), wkbNone);
  ASSERT_EQ(OGR_L_SetAttributeFilter(
                st, "f_table_schema='' AND f_table_name='footprints' AND f_geometry_column='geom'"),
            OGRERR_NONE);
  EXPECT_EQ(OGR_L_GetFeatureCount(st, TRUE), 1);
  OGR_L_ResetReading(st);
  OGRFeatureH s = OGR_L_GetNextFeature(st);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(OGR_F_GetFieldAsInteger(s, OGR_F_GetFieldIndex(s, "useAsDefault")), 1);
  const std::string qml = OGR_F_GetFieldAsString(s, OGR_F_GetFieldIndex(s, "styleQML"));
  EXPECT_NE(qml.find("type=\"categorizedSymbol\""), std::string::npos);
  EXPECT_NE(qml.find("attr=\"damage_class\""), std::string::npos);
  for (const char* v :
       {"value=\"0\"", "value=\"1\"", "value=\"2\"", "value=\"3\"", "value=\"255\""}) {
    EXPECT_NE(qml.find(v), std::string::npos) << v;
  }
  CPLXMLNode* xml = CPLParseXMLString(qml.c_str());
  EXPECT_NE(xml, nullptr) << "QML is not well-formed XML";
  if (xml) {
    EXPECT_NE(CPLGetXMLNode(xml, "=qgis.renderer-v2.categories"), nullptr);
    CPLDestroyXMLNode(xml);
  }
  OGR_F_Destroy(s);
}

TEST_F(ExportTest, GeoJsonIsRfc7946InWgs84) {
  const Output o = write_output(dir_, true);
  const ExportResult r = export_outputs(o.path, (dir_ / "out").string());
  ASSERT_FALSE(r.geojson.empty());
  Ds ds(r.geojson, GDAL_OF_VECTOR);
  ASSERT_TRUE(ds.h);
  OGRLayerH l = GDALDatasetGetLayer(ds.h, 0);
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(OGR_L_GetFeatureCount(l, TRUE), 3);
  OGRSpatialReferenceH wgs = OSRNewSpatialReference(nullptr);
  OSRImportFromEPSG(wgs, 4326);
  ASSERT_NE(OGR_L_GetSpatialRef(l), nullptr);
  OSRSetAxisMappingStrategy(wgs, OAMS_TRADITIONAL_GIS_ORDER);  // RFC 7946: lon, lat
  EXPECT_TRUE(OSRIsSame(OGR_L_GetSpatialRef(l), wgs));
  OSRDestroySpatialReference(wgs);
  std::ifstream in(r.geojson);
  const json j = json::parse(in);
  EXPECT_EQ(j["type"], "FeatureCollection");
  EXPECT_FALSE(j.contains("crs"));  // RFC 7946: no crs member
  ASSERT_EQ(j["features"].size(), 3u);
  const auto& f0 = j["features"][0];
  EXPECT_EQ(f0["properties"]["damage"], "destroyed");
  EXPECT_EQ(f0["properties"]["source_id"], "b-17");
  // Lon/lat order, near the grid (UTM 15N, x 366 km, y 4104 km: about 94.5 W, 37.1 N).
  const auto& geom = f0["geometry"];
  const auto& pt =
      geom["type"] == "Polygon" ? geom["coordinates"][0][0] : geom["coordinates"][0][0][0];
  ASSERT_TRUE(pt.is_array());
  EXPECT_NEAR(pt[0].get<double>(), -94.5, 0.1);
  EXPECT_NEAR(pt[1].get<double>(), 37.07, 0.1);
  EXPECT_TRUE(j["features"][2]["geometry"].is_null());
}

TEST_F(ExportTest, StacItemDescribesTheOutputs) {
  const Output o = write_output(dir_, true);
  const fs::path out = dir_ / "out";
  const ExportResult r = export_outputs(o.path, out.string());
  std::ifstream in(r.stac_item);
  const json j = json::parse(in);
  expect_stac_item(j);
  EXPECT_EQ(j["id"], "scene");
  const auto& p = j["properties"];
  EXPECT_EQ(p["datetime"], "2024-05-01T12:00:00Z");  // scene times unknown: the run's creation
  EXPECT_EQ(p["processing:software"]["aftermath"], "0.1.0");
  EXPECT_EQ(p["aftermath:config_sha256"], std::string(64, 'a'));
  EXPECT_EQ(p["proj:epsg"], 32615);
  EXPECT_EQ(p["proj:shape"], json({300, 700}));
  // bbox holds the grid corners in lon/lat.
  const auto& bb = j["bbox"];
  OGRSpatialReferenceH utm = srs_of_wkt(o.grid.crs_wkt), wgs = OSRNewSpatialReference(nullptr);
  OSRImportFromEPSG(wgs, 4326);
  OSRSetAxisMappingStrategy(utm, OAMS_TRADITIONAL_GIS_ORDER);
  OSRSetAxisMappingStrategy(wgs, OAMS_TRADITIONAL_GIS_ORDER);
  OGRCoordinateTransformationH ct = OCTNewCoordinateTransformation(utm, wgs);
  for (const auto& c :
       {cv::Point2d(0, 0), cv::Point2d(700, 0), cv::Point2d(0, 300), cv::Point2d(700, 300)}) {
    const auto m = o.grid.pixel_to_map(c.x, c.y);
    double x = m.x, y = m.y;
    ASSERT_TRUE(OCTTransform(ct, 1, &x, &y, nullptr));
    EXPECT_GE(x, bb[0].get<double>() - 1e-7);
    EXPECT_GE(y, bb[1].get<double>() - 1e-7);
    EXPECT_LE(x, bb[2].get<double>() + 1e-7);
    EXPECT_LE(y, bb[3].get<double>() + 1e-7);
  }
  OCTDestroyCoordinateTransformation(ct);
  OSRDestroySpatialReference(utm);
  OSRDestroySpatialReference(wgs);
  // Assets: every href resolves (relative to the item), with media types and roles.
  const auto& a = j["assets"];
  for (const char* k :
       {"hdf5", "change_score", "damage_mask", "footprints", "footprints_geojson"}) {
    ASSERT_TRUE(a.contains(k)) << k;
    EXPECT_TRUE(fs::exists(out / a[k]["href"].get<std::string>())) << a[k]["href"];
    EXPECT_EQ(a[k]["roles"], json::array({"data"})) << k;
  }
  EXPECT_EQ(a["change_score"]["type"], "image/tiff; application=geotiff; profile=cloud-optimized");
  EXPECT_EQ(a["change_score"]["raster:bands"][0]["nodata"], -1.0);
  EXPECT_EQ(a["footprints"]["type"], "application/geopackage+sqlite3");
  EXPECT_EQ(a["footprints_geojson"]["type"], "application/geo+json");
  EXPECT_EQ(a["hdf5"]["type"], "application/x-hdf5");
  EXPECT_EQ(a["hdf5"]["href"], "../scene.h5");
}

TEST_F(ExportTest, StacUsesGivenSceneTimes) {
  const Output o = write_output(dir_, true);
  ExportOptions opts;
  opts.pre_datetime = "2011-05-15T16:50:00Z";
  opts.post_datetime = "2011-05-24T17:05:00Z";
  const ExportResult r = export_outputs(o.path, (dir_ / "out").string(), opts);
  std::ifstream in(r.stac_item);
  const json j = json::parse(in);
  expect_stac_item(j);
  EXPECT_TRUE(j["properties"]["datetime"].is_null());
  EXPECT_EQ(j["properties"]["start_datetime"], opts.pre_datetime);
  EXPECT_EQ(j["properties"]["end_datetime"], opts.post_datetime);
  opts.post_datetime = "24 May 2011";
  EXPECT_THROW(export_outputs(o.path, (dir_ / "out2").string(), opts), Error);
}

TEST_F(ExportTest, PlainPixelGridHasNoCrsNoGeoJsonAndNullStacGeometry) {
  const Output o = write_output(dir_, false);
  const ExportResult r = export_outputs(o.path, (dir_ / "out").string());
  EXPECT_FALSE(r.georeferenced);
  EXPECT_TRUE(r.geojson.empty());
  EXPECT_FALSE(r.warnings.empty());
  Ds cog(r.cogs[0], GDAL_OF_RASTER);
  ASSERT_TRUE(cog.h);
  EXPECT_EQ(GDALGetSpatialRef(cog.h), nullptr);
  EXPECT_STREQ(GDALGetMetadataItem(cog.h, "LAYOUT", "IMAGE_STRUCTURE"), "COG");
  double gt[6];
  ASSERT_EQ(GDALGetGeoTransform(cog.h, gt), CE_None);  // upright: x = column, y = -row
  EXPECT_EQ(std::vector<double>(gt, gt + 6), (std::vector<double>{0, 1, 0, 0, 0, -1}));
  Ds gpkg(r.geopackage, GDAL_OF_VECTOR);
  ASSERT_TRUE(gpkg.h);
  OGRLayerH l = GDALDatasetGetLayerByName(gpkg.h, "footprints");
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(OGR_L_GetFeatureCount(l, TRUE), 3);
  ASSERT_NE(OGR_L_GetSpatialRef(l), nullptr);
  EXPECT_TRUE(OSRIsLocal(OGR_L_GetSpatialRef(l)));
  OGR_L_ResetReading(l);
  OGRFeatureH f = OGR_L_GetNextFeature(l);
  ASSERT_NE(f, nullptr);
  OGREnvelope e;
  OGR_G_GetEnvelope(OGR_F_GetGeometryRef(f), &e);  // pixel (100, 50)-(120, 60), same convention
  EXPECT_DOUBLE_EQ(e.MinX, 100);
  EXPECT_DOUBLE_EQ(e.MaxX, 120);
  EXPECT_DOUBLE_EQ(e.MinY, -60);
  EXPECT_DOUBLE_EQ(e.MaxY, -50);
  OGR_F_Destroy(f);
  std::ifstream in(r.stac_item);
  const json j = json::parse(in);
  expect_stac_item(j);
  EXPECT_TRUE(j["geometry"].is_null());
  EXPECT_FALSE(j.contains("bbox"));
  EXPECT_TRUE(j["properties"]["proj:epsg"].is_null());
  EXPECT_FALSE(j["assets"].contains("footprints_geojson"));
}

TEST_F(ExportTest, Errors) {
  const std::string not_h5 = (dir_ / "x.h5").string();
  std::ofstream(not_h5) << "not hdf5";
  try {
    export_outputs(not_h5, (dir_ / "o").string());
    ADD_FAILURE() << "no exception";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::input) << e.what();
  }
  const Output o = write_output(dir_, true);
  const std::string file = (dir_ / "a_file").string();
  std::ofstream(file) << "x";
  try {
    export_outputs(o.path, file);
    ADD_FAILURE() << "no exception";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::output) << e.what();
  }
}

}  // namespace
