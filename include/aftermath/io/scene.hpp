#pragma once
/// @file scene.hpp
/// Raster scenes through GDAL: validation at open, and windowed reads onto the analysis grid.
/// Only `io` sees GDAL; nothing here exposes a GDAL type.
#include <cstdint>
#include <functional>
#include <memory>
#include <opencv2/core.hpp>
#include <optional>
#include <string>
#include <vector>

#include "aftermath/config/config.hpp"
#include "aftermath/core/grid.hpp"

namespace aftermath {

/// What was learned about a raster at open. `grid.crs_wkt` is empty for a file without a CRS and
/// geotransform (allowed only as a plain pixel grid, see `georeferenced`).
struct SceneInfo {
  std::string path;
  std::string driver;           ///< GDAL short name, e.g. "GTiff"
  Grid grid;                    ///< the file's own grid
  bool georeferenced = false;   ///< has both a CRS and a geotransform
  int band_count = 0;
  int data_band_count = 0;      ///< bands that are not alpha bands (what is analysed by default)
  std::string data_type;        ///< GDAL name of band 1's type, e.g. "Byte", "UInt16", "Float32"
  std::optional<double> nodata; ///< band 1's nodata value, if declared
  bool has_mask = false;        ///< an alpha band or an explicit mask band exists
  std::int64_t file_size = 0;   ///< bytes (0 for non-file datasets)
};

/// Opens `path`, validates it and describes it. Throws Error(input) naming the file and the
/// problem: missing, a directory, a dangling link, unreadable, empty, not a recognised raster
/// format, a driver not in `config.allowed_drivers`, no bands (listing subdatasets), size over
/// `config.max_pixels` (64-bit checked), a geotransform without a CRS (or the reverse).
SceneInfo open_scene(const std::string& path, const InputConfig& config);

/// A warning when `scene` declares no nodata value and no mask, yet its first and last rows are
/// 0 in every band (a black collar, common after orthorectification); nullopt otherwise.
std::optional<std::string> zero_border_warning(const SceneInfo& scene);

/// The bounds of a scene in `crs_wkt` (edges densified), as an axis-aligned map rectangle
/// (x = easting/longitude, y = northing/latitude; traditional GIS axis order).
cv::Rect2d scene_bounds_in(const SceneInfo& scene, const std::string& crs_wkt);

/// WKT of a user CRS string ("EPSG:32615", PROJ string, WKT). Throws Error(usage) if unknown.
std::string crs_to_wkt(const std::string& user_crs);
/// True if both WKT strings describe the same CRS (OSRIsSame); two empty strings are the same.
bool same_crs(const std::string& wkt_a, const std::string& wkt_b);
/// Linear unit of a projected CRS in metres per CRS unit, or 0 for a geographic/empty CRS.
double linear_units_in_metres(const std::string& crs_wkt);
/// Side of a grid pixel in metres: projected CRS: sqrt(pixel area) x the linear unit; geographic
/// CRS: the same at the grid's centre latitude (WGS 84 ellipsoid, approximate); a plain pixel
/// grid: 0 (no metric size).
double pixel_size_in_metres(const Grid& grid);

/// One window of a scene on the analysis grid: float32 bands and a validity mask.
struct SceneWindow {
  std::vector<cv::Mat> bands;  ///< CV_32F (read_native: maybe the file's integer type), window
                               ///< size, one per selected band; invalid pixels are 0
  cv::Mat valid;               ///< CV_8U, 255 = valid (inside the scene, not nodata/masked, finite in every band)
  /// CV_8U, 255 where a pixel was otherwise valid but some band was NaN or infinite (made
  /// invalid); empty when the window had none, which is the usual case.
  cv::Mat non_finite;
};

struct ReadOptions {
  std::vector<int> bands;          ///< 1-based; empty = all
  std::optional<double> nodata;    ///< overrides the file's nodata
  std::string resampling = "bilinear";  ///< nearest | bilinear | cubic, used when warping
};

/// Decoded blocks of one scene, shared by the SceneReaders of that scene (one per thread): a
/// block under the halo of several tiles is decoded once, whichever thread reads it first (the
/// others wait for it). Bounded: beyond `capacity_bytes` the least recently used blocks are
/// dropped (and decoded again if read again), so memory follows the tiles in flight, not the
/// scene. Thread-safe. Used on the direct path of a tiled file only (blocks at most 1024 px a
/// side); other reads go to GDAL as before. Values are exactly what a direct read gives.
class SceneBlockCache {
 public:
  explicit SceneBlockCache(std::size_t capacity_bytes);
  ~SceneBlockCache();
  SceneBlockCache(const SceneBlockCache&) = delete;
  SceneBlockCache& operator=(const SceneBlockCache&) = delete;

  struct Stats {
    std::int64_t decoded = 0;  ///< blocks decoded (a block dropped and read again counts twice)
    std::int64_t reused = 0;   ///< block reads served from the cache
  };
  Stats stats() const;

  /// Announces reads to come: one for every occurrence of a block key (SceneReader::block_keys)
  /// in `keys`. A block whose announced reads are all done is dropped at once, before any block
  /// still to be read, so the capacity holds blocks with a future (a tile order's reads are
  /// known in advance). Blocks never announced are kept in least-recently-used order.
  void expect_reads(const std::vector<std::int64_t>& keys);

  struct Impl;  // defined in scene.cpp

 private:
  friend class SceneReader;
  std::unique_ptr<Impl> impl_;
};

/// Reads windows of one scene resampled onto an analysis grid. Owns its own GDAL dataset
/// handle: create one per thread; an instance is not thread-safe. When the scene's grid is the
/// analysis grid up to an integer offset, windows are read directly (no resampling); otherwise
/// they are warped window by window (the scene is never copied whole). `blocks` (optional, shared
/// by the readers of the same scene) caches decoded blocks across threads.
class SceneReader {
 public:
  SceneReader(const SceneInfo& scene, const Grid& analysis_grid, const ReadOptions& options,
              std::shared_ptr<SceneBlockCache> blocks = nullptr);
  ~SceneReader();
  SceneReader(SceneReader&&) noexcept;
  SceneReader& operator=(SceneReader&&) noexcept;

  /// Reads `window` of the analysis grid; pixels outside the scene are invalid. Every GDAL
  /// failure (including decode errors reported only through CPLError) throws Error(input)
  /// naming the file and the window.
  SceneWindow read(const Window& window);

  /// As read(), but the bands keep the file's integer type (CV_8U, CV_16U or CV_16S; invalid
  /// pixels 0) when the window is assembled from shared decoded blocks of that type: the values
  /// are exactly those read() gives as float, without the float copy (apply_registration
  /// converts as it samples). CV_32F otherwise, as read().
  SceneWindow read_native(const Window& window);
  bool direct() const;
  /// The keys of the shared cache's blocks that read(window) reads, one per block (in no
  /// particular order); empty without a shared cache (or off the direct path).
  std::vector<std::int64_t> block_keys(const Window& window) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Writes a GeoTIFF (tiled, deflate) of float32 or byte bands, for tests, the synthetic
/// generator and `--write-aligned`. `bands` are all the same size and type (CV_8U, CV_16U or CV_32F).
void write_geotiff(const std::string& path, const Grid& grid, const std::vector<cv::Mat>& bands,
                   std::optional<double> nodata = std::nullopt);

/// Hex SHA-256 of a file's bytes (streamed). Throws Error(input) if it cannot be read. With
/// `keep_going`, asked before every MiB: false stops the hashing with Error(internal, "hashing
/// stopped") (a job that fails or is cancelled does not wait for the hash of a large input).
std::string sha256_file(const std::string& path, const std::function<bool()>& keep_going = {});
/// Hex SHA-256 of a string's bytes (e.g. the resolved config, for idempotence records).
std::string sha256_text(const std::string& text);

/// Installs GDAL's configuration for aftermath once per process (error handler, thread-local
/// error capture, GDAL_NUM_THREADS for decompression). Safe to call more than once.
void init_gdal();

}  // namespace aftermath
