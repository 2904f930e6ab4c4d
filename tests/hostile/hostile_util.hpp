#pragma once
// Helpers of the hostile-input suite: a baseline pair (B00) generated with GDAL, hand-written
// GeoJSON, and running the `aftermath` binary with its exit code, stdout and stderr captured.
#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <gdal.h>
#include <opencv2/core.hpp>

namespace hostile {

namespace fs = std::filesystem;

/// Path of the aftermath binary (compile definition, or argv[1] of the test executable).
std::string& binary();

struct Result {
  int code = -1;  ///< exit code, or 128 + signal
  std::string out, err;
};

/// Runs `binary() args...` (or `prefix... binary() args...`), capturing stdout and stderr in `log_dir`.
Result run(const std::vector<std::string>& args, const fs::path& log_dir,
           const std::vector<std::string>& prefix = {});

// ---- the baseline pair --------------------------------------------------------------------------
inline constexpr int kSize = 256;      ///< scene side, px
inline constexpr int kMargin = 32;     ///< world = scene + margin on every side
inline constexpr double kX0 = 500000;  ///< UTM 32N easting of the pre scene's left edge
inline constexpr double kY0 = 5000256; ///< UTM 32N northing of its top edge
inline constexpr const char* kUtm = "EPSG:32632";

/// Buildings b1..b6 in scene pixel coordinates; b2 and b5 are destroyed in the post scene.
const std::vector<cv::Rect>& buildings();
/// 3 bands (CV_32F, 0..255) of the world (scene + margin) before and after the event.
const std::vector<cv::Mat>& world_pre();
const std::vector<cv::Mat>& world_post();
/// The scene-sized crop of a world at offset (dx, dy) from the standard position.
std::vector<cv::Mat> crop(const std::vector<cv::Mat>& world, int dx = 0, int dy = 0, int w = kSize, int h = kSize);
/// UTM geotransform of the standard scene (1 m pixels).
std::array<double, 6> utm_gt(double px = 1.0, double dx_m = 0, double dy_m = 0);

struct TifOptions {
  GDALDataType type = GDT_Byte;
  std::optional<std::array<double, 6>> gt;  ///< none = no geotransform
  std::string srs = kUtm;                   ///< "" = no CRS
  std::optional<double> nodata;
  std::vector<std::string> creation;        ///< GTiff creation options
  double scale = 1.0;                       ///< values are multiplied by it before conversion
  bool alpha_last = false;                  ///< the last band is an alpha band
};
/// Writes bands with GDAL (Create + RasterIO, GTiff).
void write_tif(const fs::path& path, const std::vector<cv::Mat>& bands, const TifOptions& o);
/// Standard pre/post GeoTIFFs of B00 (uint8, UTM 32N, 1 m, no nodata).
void write_pre(const fs::path& path);
void write_post(const fs::path& path);
/// Reprojects `src` into `dst` with gdalwarp options (e.g. {"-t_srs", "EPSG:3857"}).
void warp(const fs::path& src, const fs::path& dst, const std::vector<std::string>& options);

// ---- footprints ---------------------------------------------------------------------------------
/// Lon/lat (EPSG:4326, traditional order) of a scene pixel corner of the standard scene.
cv::Point2d lonlat(double col, double row);
/// UTM of a scene pixel corner.
cv::Point2d utm(double col, double row);
/// A closed ring of `r` as a GeoJSON position array, in lon/lat or UTM, shifted by (dx, dy) metres.
std::string ring_json(const cv::Rect& r, bool in_utm = false, double dx_m = 0, double dy_m = 0);
std::string polygon_json(const cv::Rect& r, bool in_utm = false, double dx_m = 0, double dy_m = 0);
std::string feature_json(const std::string& id, const std::string& geometry_json);
std::string collection_json(const std::vector<std::string>& features, const std::string& crs_member = "");
/// The B00 footprints as GeoJSON (EPSG:4326, ids b1..b6).
std::string baseline_geojson();
/// Writes the footprints with OGR into a GeoPackage in `epsg` (layer names as given, the same
/// features in each layer).
void write_gpkg(const fs::path& path, const std::string& epsg, const std::vector<std::string>& layers);

// ---- reading results ----------------------------------------------------------------------------
struct FeatureResult {
  std::string status;  ///< scored | no-data | outside
  int damage_class = 255;
};
std::map<std::string, FeatureResult> read_features(const fs::path& h5);
/// Source ids with status scored and a damage class of major or destroyed.
std::set<std::string> damaged(const fs::path& h5);
std::optional<std::string> root_attr(const fs::path& h5, const std::string& name);
std::optional<double> number_attr(const fs::path& h5, const std::string& object, const std::string& name);

std::string read_text(const fs::path& p);
void write_text(const fs::path& p, const std::string& text);
std::string sha256_of(const fs::path& p);
/// Names of the entries of a directory (sorted); empty if it does not exist.
std::vector<std::string> entries(const fs::path& dir);

}  // namespace hostile
