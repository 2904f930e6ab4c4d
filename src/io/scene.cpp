#include "aftermath/io/scene.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <list>
#include <mutex>
#include <sstream>
#include <unordered_map>
#include <vector>

#include <cpl_conv.h>
#include <cpl_minixml.h>
#include <cpl_string.h>
#include <gdal.h>
#include <gdal_alg.h>
#include <gdalwarper.h>
#include <ogr_spatialref.h>
#include <openssl/evp.h>

#include "aftermath/core/error.hpp"
#include "gdal_util.hpp"

namespace aftermath {

using io_detail::DatasetPtr;
using io_detail::ErrorCapture;
using io_detail::with_reason;
namespace fs = std::filesystem;

namespace {

/// GDAL names that are not plain files: virtual file systems and subdataset syntax
/// (e.g. NETCDF:"a.nc":var, HDF5:"a.h5"://x, GTIFF_DIR:2:a.tif).
bool is_gdal_special_name(const std::string& path) {
  if (path.rfind("/vsi", 0) == 0) return true;
  const auto colon = path.find(':');
  if (colon == std::string::npos || colon < 2) return false;  // "C:" style is not used on Linux
  for (std::size_t i = 0; i < colon; ++i) {
    const char c = path[i];
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  return true;
}

/// A NULL-terminated char* list over strings (valid while `strings` lives).
std::vector<const char*> c_list(const std::vector<std::string>& strings) {
  std::vector<const char*> out;
  out.reserve(strings.size() + 1);
  for (const auto& s : strings) out.push_back(s.c_str());
  out.push_back(nullptr);
  return out;
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (std::size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

std::string window_str(const Window& w) {
  std::ostringstream s;
  s << "window x=" << w.x << " y=" << w.y << " " << w.width << "x" << w.height;
  return s.str();
}

bool close_rel(double a, double b, double rel) {
  return std::abs(a - b) <= rel * std::max(std::abs(a), std::abs(b));
}

/// Validity of float values: finite in every band and not equal to `nodata` (if set). Pixels
/// that were valid but held a non-finite value (and are not the NaN nodata) are marked in
/// `non_finite`, allocated on the first one.
void and_finite_and_value(const std::vector<cv::Mat>& bands, std::optional<double> nodata,
                          cv::Mat& valid, cv::Mat& non_finite, bool may_be_non_finite) {
  const float nd = nodata ? static_cast<float>(*nodata) : 0.f;
  const bool nd_nan = nodata && std::isnan(*nodata);
  if (!may_be_non_finite) {
    // Integer source bands (as float, or as read_native keeps them) are finite: only the nodata
    // value to drop, compared as float either way, in a branch-free loop the compiler vectorises
    // (this runs on every pixel read).
    if (!nodata || nd_nan) return;
    auto drop = [&]<typename T>(const cv::Mat& b, int r, std::uint8_t* v) {
      const T* p = b.ptr<T>(r);
      for (int c = 0; c < valid.cols; ++c) v[c] = static_cast<float>(p[c]) == nd ? 0 : v[c];
    };
    for (int r = 0; r < valid.rows; ++r) {
      auto* v = valid.ptr<std::uint8_t>(r);
      for (const auto& b : bands) {
        switch (b.depth()) {
          case CV_8U:
            drop.operator()<std::uint8_t>(b, r, v);
            break;
          case CV_16U:
            drop.operator()<std::uint16_t>(b, r, v);
            break;
          case CV_16S:
            drop.operator()<std::int16_t>(b, r, v);
            break;
          default:
            drop.operator()<float>(b, r, v);
            break;
        }
      }
    }
    return;
  }
  for (int r = 0; r < valid.rows; ++r) {
    auto* v = valid.ptr<std::uint8_t>(r);
    for (const auto& b : bands) {
      const float* p = b.ptr<float>(r);
      for (int c = 0; c < valid.cols; ++c) {
        const float x = p[c];
        if (std::isfinite(x)) {
          if (nodata && !nd_nan && x == nd) v[c] = 0;
        } else if (v[c] != 0) {
          v[c] = 0;
          if (!(nd_nan && std::isnan(x))) {
            if (non_finite.empty()) non_finite = cv::Mat::zeros(valid.size(), CV_8U);
            non_finite.at<std::uint8_t>(r, c) = 255;
          }
        }
      }
    }
  }
}

void zero_invalid(std::vector<cv::Mat>& bands, const cv::Mat& valid) {
  cv::Mat invalid;
  cv::compare(valid, 0, invalid, cv::CMP_EQ);
  if (cv::countNonZero(invalid) == 0) return;  // the usual window: a masked write of every band saved
  for (auto& b : bands) b.setTo(0, invalid);
}

GDALResampleAlg resample_alg(const std::string& name) {
  if (name == "nearest") return GRA_NearestNeighbour;
  if (name == "bilinear") return GRA_Bilinear;
  if (name == "cubic") return GRA_Cubic;
  throw Error(ErrorKind::usage, "unknown resampling '" + name + "' (nearest | bilinear | cubic)");
}

/// Identifies `path` among the allowed drivers; throws naming `who` (the file the user gave).
std::string allowed_driver_of(const std::string& who, const std::string& path, const InputConfig& config) {
  const auto allowed = c_list(config.allowed_drivers);
  ErrorCapture cap;
  GDALDriverH any = GDALIdentifyDriverEx(path.c_str(), GDAL_OF_RASTER, nullptr, nullptr);
  if (!any) {
    throw Error(ErrorKind::input, with_reason(who + ": not a recognised raster format", cap.message()));
  }
  GDALDriverH ok = GDALIdentifyDriverEx(path.c_str(), GDAL_OF_RASTER, allowed.data(), nullptr);
  if (!ok) {
    throw Error(ErrorKind::input, who + ": raster driver " + GDALGetDriverShortName(any) +
                                      " is not allowed (input.allowed_drivers: " +
                                      join(config.allowed_drivers, ", ") + ")");
  }
  return GDALGetDriverShortName(ok);
}

/// A VRT may name any file GDAL reads, so its sources obey the same rules as the scene itself
/// (they exist, are rasters of an allowed driver), recursively, without cycles. Raw raster bands
/// (which read any file's bytes as pixels) and Python pixel functions are refused.
void check_vrt_sources(const std::string& top, const std::string& vrt_path, const InputConfig& config,
                       std::vector<std::string>& chain) {
  if (chain.size() > 8) throw Error(ErrorKind::input, top + ": VRT sources nested more than 8 deep");
  std::unique_ptr<CPLXMLNode, decltype(&CPLDestroyXMLNode)> root(nullptr, &CPLDestroyXMLNode);
  {
    ErrorCapture cap;
    root.reset(CPLParseXMLFile(vrt_path.c_str()));
    if (!root) throw Error(ErrorKind::input, with_reason(top + ": VRT " + vrt_path + " is not valid XML", cap.message()));
  }
  const fs::path dir = fs::path(vrt_path).parent_path();
  const auto walk = [&](const auto& self, const CPLXMLNode* node) -> void {
    for (; node; node = node->psNext) {
      if (node->eType != CXT_Element) continue;
      const std::string name = node->pszValue;
      if (EQUAL(name.c_str(), "VRTRasterBand") &&
          EQUAL(CPLGetXMLValue(node, "subClass", ""), "VRTRawRasterBand")) {
        throw Error(ErrorKind::input, top + ": VRT raw raster bands are not allowed (they read any file as pixels)");
      }
      if (EQUAL(name.c_str(), "PixelFunctionLanguage") && !EQUAL(CPLGetXMLValue(node, nullptr, ""), "")) {
        throw Error(ErrorKind::input, top + ": VRT pixel functions in another language are not allowed");
      }
      if (EQUAL(name.c_str(), "SourceFilename") || EQUAL(name.c_str(), "SourceDataset")) {
        std::string src = CPLGetXMLValue(node, nullptr, "");
        const bool relative = EQUAL(CPLGetXMLValue(node, "relativeToVRT", "0"), "1") ||
                              EQUAL(CPLGetXMLValue(node, "relativetoVRT", "0"), "1");
        if (src.rfind("/vsi", 0) == 0 && src.rfind("/vsimem/", 0) != 0) {
          throw Error(ErrorKind::input, top + ": VRT source " + src + " is a virtual file system path (not allowed)");
        }
        if (!is_gdal_special_name(src)) {
          if (relative && !fs::path(src).is_absolute()) src = (dir / src).string();
          std::error_code ec;
          if (src.rfind("/vsimem/", 0) != 0 && !fs::exists(src, ec)) {
            throw Error(ErrorKind::input, top + ": VRT source " + src + " does not exist");
          }
          const std::string canon = src.rfind("/vsimem/", 0) == 0 ? src : fs::weakly_canonical(src, ec).string();
          if (std::find(chain.begin(), chain.end(), canon) != chain.end()) {
            throw Error(ErrorKind::input, top + ": VRT references itself (source " + src + ")");
          }
          const std::string drv = allowed_driver_of(top + ": VRT source " + src, src, config);
          if (drv == "VRT") {
            chain.push_back(canon);
            check_vrt_sources(top, src, config, chain);
            chain.pop_back();
          }
        } else {
          allowed_driver_of(top + ": VRT source " + src, src, config);
        }
      }
      self(self, node->psChild);
    }
  };
  walk(walk, root.get());
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// init, CRS helpers
// ------------------------------------------------------------------------------------------------

void init_gdal() {
  static std::once_flag once;
  std::call_once(once, [] {
    GDALAllRegister();
    // GDAL never prints: every call that matters captures its own errors (ErrorCapture).
    CPLSetErrorHandler(CPLQuietErrorHandler);
    // A bounded block cache: memory must follow the tile size, not the scene (GDAL's default is
    // 5% of RAM, which a large scene fills). Tile rows overlap by the halo, so a cache of a few
    // block rows of both scenes is all the reads need. The user's GDAL_CACHEMAX wins.
    if (CPLGetConfigOption("GDAL_CACHEMAX", nullptr) == nullptr) GDALSetCacheMax64(256LL << 20);
    // VRT raw raster bands read any file's bytes as pixels: off (defence in depth; open_scene
    // also refuses them and checks every VRT source against input.allowed_drivers).
    if (CPLGetConfigOption("GDAL_VRT_ENABLE_RAWRASTERBAND", nullptr) == nullptr) {
      CPLSetConfigOption("GDAL_VRT_ENABLE_RAWRASTERBAND", "NO");
    }
    // Decompression threads are not enabled (GDAL_NUM_THREADS is left to the user): the engine
    // reads tiles in parallel with one reader per thread, and errors raised in GDAL's own worker
    // threads would escape the per-thread capture.
  });
}

std::string crs_to_wkt(const std::string& user_crs) {
  init_gdal();
  auto srs = io_detail::srs_from(user_crs);
  if (!srs) throw Error(ErrorKind::usage, "unknown CRS '" + user_crs + "'");
  auto wkt = io_detail::srs_to_wkt2(*srs);
  if (wkt.empty()) throw Error(ErrorKind::usage, "CRS '" + user_crs + "' cannot be written as WKT");
  return wkt;
}

bool same_crs(const std::string& wkt_a, const std::string& wkt_b) {
  if (wkt_a.empty() || wkt_b.empty()) return wkt_a.empty() && wkt_b.empty();
  if (wkt_a == wkt_b) return true;
  init_gdal();
  auto a = io_detail::srs_from(wkt_a);
  auto b = io_detail::srs_from(wkt_b);
  if (!a || !b) return false;
  return a->IsSame(b.get()) != 0;
}

double linear_units_in_metres(const std::string& crs_wkt) {
  if (crs_wkt.empty()) return 0;
  init_gdal();
  auto srs = io_detail::srs_from(crs_wkt);
  if (!srs) throw Error(ErrorKind::usage, "unknown CRS in linear_units_in_metres");
  if (!srs->IsProjected()) return 0;
  return srs->GetLinearUnits();
}

double pixel_size_in_metres(const Grid& grid) {
  if (grid.crs_wkt.empty()) return 0;
  init_gdal();
  auto srs = io_detail::srs_from(grid.crs_wkt);
  if (!srs) throw Error(ErrorKind::usage, "unknown CRS in pixel_size_in_metres");
  const double side = std::sqrt(grid.pixel_area());
  if (srs->IsProjected()) return side * srs->GetLinearUnits();
  if (!srs->IsGeographic()) return 0;
  // Degrees: metres per degree of latitude and longitude at the centre latitude.
  const double to_rad = srs->GetAngularUnits() * 1.0;  // radians per unit
  const cv::Point2d c = grid.pixel_to_map(grid.width / 2.0, grid.height / 2.0);
  // With the traditional GIS axis order the map y is the latitude.
  const double lat = c.y * to_rad;
  const double m_per_rad_lat = 6367449.0;  // mean meridional radius of WGS 84
  const double m_per_rad_lon = 6378137.0 * std::cos(lat);
  return side * to_rad * std::sqrt(m_per_rad_lat * std::max(m_per_rad_lon, 1.0));
}

// ------------------------------------------------------------------------------------------------
// open_scene
// ------------------------------------------------------------------------------------------------

SceneInfo open_scene(const std::string& path, const InputConfig& config) {
  init_gdal();
  SceneInfo info;
  info.path = path;

  // 1. File-system checks (skipped for /vsi paths and subdataset names).
  std::error_code ec;
  const auto lst = fs::symlink_status(path, ec);
  const bool on_disk = !ec && lst.type() != fs::file_type::not_found;
  if (!on_disk && !is_gdal_special_name(path)) {
    throw Error(ErrorKind::input, path + ": does not exist");
  }
  if (on_disk) {
    if (fs::is_symlink(lst) && !fs::exists(path, ec)) {
      std::error_code ec2;
      const auto target = fs::read_symlink(path, ec2);
      throw Error(ErrorKind::input,
                  path + ": dangling symbolic link (target '" + target.string() + "' does not exist)");
    }
    if (fs::is_directory(path, ec)) throw Error(ErrorKind::input, path + ": is a directory");
    if (::access(path.c_str(), R_OK) != 0) {
      throw Error(ErrorKind::input, path + ": permission denied (not readable)");
    }
    if (fs::is_regular_file(path, ec)) {
      const auto size = fs::file_size(path, ec);
      if (!ec) info.file_size = static_cast<std::int64_t>(size);
      if (!ec && size == 0) throw Error(ErrorKind::input, path + ": empty file (0 bytes)");
    }
  }

  // 2. Driver identification, then the allow-list (for a VRT, also every source it names).
  const auto allowed = c_list(config.allowed_drivers);
  if (allowed_driver_of(path, path, config) == "VRT") {
    std::error_code ec2;
    std::vector<std::string> chain{fs::weakly_canonical(path, ec2).string()};
    check_vrt_sources(path, path, config, chain);
  }

  // 3. Open with the allow-list.
  DatasetPtr ds;
  {
    ErrorCapture cap;
    ds.reset(GDALOpenEx(path.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY | GDAL_OF_VERBOSE_ERROR,
                        allowed.data(), nullptr, nullptr));
    if (!ds) {
      throw Error(ErrorKind::input,
                  with_reason(path + ": cannot be opened as a raster", cap.message()));
    }
  }
  GDALDatasetH h = io_detail::get(ds);
  info.driver = GDALGetDriverShortName(GDALGetDatasetDriver(h));

  // 4. Bands.
  info.band_count = GDALGetRasterCount(h);
  if (info.band_count == 0) {
    std::vector<std::string> names;
    char** md = GDALGetMetadata(h, "SUBDATASETS");
    for (int i = 0; md && md[i]; ++i) {
      const std::string item = md[i];
      const auto eq = item.find('=');
      if (eq != std::string::npos && eq >= 5 && item.compare(eq - 5, 5, "_NAME") == 0) {
        names.push_back(item.substr(eq + 1));
      }
    }
    std::vector<std::string> first(names.begin(), names.begin() + std::min<std::size_t>(names.size(), 4));
    std::string msg = path + ": no raster bands; " + std::to_string(names.size()) + " subdatasets";
    if (!names.empty()) {
      msg += ", choose one: " + join(first, ", ");
      if (names.size() > first.size()) msg += ", ...";
    }
    throw Error(ErrorKind::input, msg);
  }

  // 5. Size.
  const int w = GDALGetRasterXSize(h), ht = GDALGetRasterYSize(h);
  std::int64_t pixels = 0;
  if (w <= 0 || ht <= 0 || __builtin_mul_overflow(std::int64_t(w), std::int64_t(ht), &pixels) ||
      pixels > config.max_pixels) {
    throw Error(ErrorKind::input, path + ": size " + std::to_string(w) + " x " + std::to_string(ht) +
                                      " exceeds input.max_pixels (" +
                                      std::to_string(config.max_pixels) + ")");
  }
  info.grid.width = w;
  info.grid.height = ht;

  // 6. Georeferencing.
  std::array<double, 6> gt{0, 1, 0, 0, 0, 1};
  const bool has_gt = GDALGetGeoTransform(h, gt.data()) == CE_None;
  OGRSpatialReferenceH srs = GDALGetSpatialRef(h);
  const bool has_crs = srs != nullptr && !OGRSpatialReference::FromHandle(srs)->IsEmpty();
  if (has_gt && has_crs) {
    const double det = gt[1] * gt[5] - gt[2] * gt[4];
    if (!std::isfinite(det) || det == 0 ||
        !std::all_of(gt.begin(), gt.end(), [](double v) { return std::isfinite(v); })) {
      throw Error(ErrorKind::input, path + ": invalid geotransform (singular or not finite)");
    }
    char* wkt = nullptr;
    const char* const opts[] = {"FORMAT=WKT2_2018", nullptr};
    ErrorCapture cap;
    if (OSRExportToWktEx(srs, &wkt, opts) != OGRERR_NONE || !wkt) {
      CPLFree(wkt);
      throw Error(ErrorKind::input, with_reason(path + ": CRS cannot be exported as WKT", cap.message()));
    }
    info.grid.crs_wkt = wkt;
    CPLFree(wkt);
    info.grid.geotransform = gt;
    info.georeferenced = true;
  } else if (has_gt && !has_crs) {
    throw Error(ErrorKind::input, path + ": has a geotransform but no CRS");
  } else if (!has_gt && has_crs) {
    throw Error(ErrorKind::input, path + ": has a CRS but no geotransform");
  } else if (GDALGetGCPCount(h) > 0) {
    throw Error(ErrorKind::input,
                path + ": georeferenced by ground control points only; warp it first (gdalwarp)");
  } else {
    info.georeferenced = false;  // plain pixel grid: empty CRS, identity geotransform
  }

  // 7. Band 1 description and masks.
  GDALRasterBandH b1 = GDALGetRasterBand(h, 1);
  info.data_type = GDALGetDataTypeName(GDALGetRasterDataType(b1));
  int has_nd = 0;
  const double nd = GDALGetRasterNoDataValue(b1, &has_nd);
  if (has_nd) info.nodata = nd;
  bool alpha = false;
  info.data_band_count = info.band_count;
  for (int i = 1; i <= info.band_count; ++i) {
    if (GDALGetRasterColorInterpretation(GDALGetRasterBand(h, i)) == GCI_AlphaBand) {
      alpha = true;
      --info.data_band_count;
    }
  }
  const int flags = GDALGetMaskFlags(b1);
  // A nodata value alone is reported through `nodata`, not as a mask.
  info.has_mask = alpha || (flags != GMF_ALL_VALID && !(flags & GMF_NODATA));
  return info;
}

// ------------------------------------------------------------------------------------------------
// zero_border_warning
// ------------------------------------------------------------------------------------------------

std::optional<std::string> zero_border_warning(const SceneInfo& scene) {
  if (scene.nodata || scene.has_mask) return std::nullopt;
  init_gdal();
  ErrorCapture cap;
  DatasetPtr ds(GDALOpenEx(scene.path.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY, nullptr, nullptr, nullptr));
  if (!ds) return std::nullopt;  // open_scene succeeded; a later read reports any problem
  GDALDatasetH h = io_detail::get(ds);
  const int w = GDALGetRasterXSize(h), ht = GDALGetRasterYSize(h);
  // The first and last rows of every band, one block width at a time: image data shows in the
  // first block, so a scene without a collar decodes one block (the whole rows took ~60 ms of
  // serial decoding at 8192 px wide).
  for (int b = 1; b <= GDALGetRasterCount(h); ++b) {
    GDALRasterBandH band = GDALGetRasterBand(h, b);
    if (GDALGetRasterColorInterpretation(band) == GCI_AlphaBand) continue;
    int block_w = 0, block_h = 0;
    GDALGetBlockSize(band, &block_w, &block_h);
    const int step = std::clamp(block_w, 256, 4096);
    std::vector<float> row(static_cast<std::size_t>(std::min(w, step)));
    for (int y : {0, ht - 1}) {
      for (int x = 0; x < w; x += step) {
        const int n = std::min(step, w - x);
        if (GDALRasterIO(band, GF_Read, x, y, n, 1, row.data(), n, 1, GDT_Float32, 0, 0) !=
            CE_None) {
          return std::nullopt;
        }
        if (std::any_of(row.begin(), row.begin() + n, [](float v) { return v != 0.f; }))
          return std::nullopt;
      }
    }
  }
  return scene.path + ": no nodata value is set, but its first and last rows are 0-valued in every "
                      "band (a collar?); 0 is analysed as image data unless input.pre_nodata / "
                      "input.post_nodata is set to 0";
}

// ------------------------------------------------------------------------------------------------
// scene_bounds_in
// ------------------------------------------------------------------------------------------------

cv::Rect2d scene_bounds_in(const SceneInfo& scene, const std::string& crs_wkt) {
  const Grid& g = scene.grid;
  const bool plain_scene = !scene.georeferenced || g.crs_wkt.empty();
  if (plain_scene != crs_wkt.empty()) {
    throw Error(ErrorKind::input, scene.path + ": cannot compare a " +
                                      (plain_scene ? "non-georeferenced scene with a CRS"
                                                   : "georeferenced scene with a plain pixel grid"));
  }
  constexpr int kSteps = 20;  // 21 points per edge
  std::vector<double> xs, ys;
  for (int i = 0; i <= kSteps; ++i) {
    const double t = double(i) / kSteps;
    const std::array<cv::Point2d, 4> px{cv::Point2d{t * g.width, 0}, {t * g.width, double(g.height)},
                                        {0, t * g.height}, {double(g.width), t * g.height}};
    for (const auto& p : px) {
      const auto m = g.pixel_to_map(p.x, p.y);
      xs.push_back(m.x);
      ys.push_back(m.y);
    }
  }
  if (!plain_scene && !same_crs(g.crs_wkt, crs_wkt)) {
    auto src = io_detail::srs_from(g.crs_wkt);
    auto dst = io_detail::srs_from(crs_wkt);
    if (!src || !dst) throw Error(ErrorKind::input, scene.path + ": unreadable CRS");
    ErrorCapture cap;
    io_detail::TransformPtr ct(OGRCreateCoordinateTransformation(src.get(), dst.get()));
    if (!ct) {
      throw Error(ErrorKind::input,
                  with_reason(scene.path + ": no coordinate transformation to the target CRS", cap.message()));
    }
    std::vector<int> ok(xs.size(), 0);
    ct->Transform(xs.size(), xs.data(), ys.data(), nullptr, ok.data());
    std::vector<double> x2, y2;
    for (std::size_t i = 0; i < xs.size(); ++i) {
      if (ok[i] && std::isfinite(xs[i]) && std::isfinite(ys[i])) {
        x2.push_back(xs[i]);
        y2.push_back(ys[i]);
      }
    }
    if (x2.empty()) {
      throw Error(ErrorKind::input,
                  with_reason(scene.path + ": bounds cannot be transformed to the target CRS", cap.message()));
    }
    xs.swap(x2);
    ys.swap(y2);
  }
  const auto [x0, x1] = std::minmax_element(xs.begin(), xs.end());
  const auto [y0, y1] = std::minmax_element(ys.begin(), ys.end());
  return {*x0, *y0, *x1 - *x0, *y1 - *y0};
}

// ------------------------------------------------------------------------------------------------
// SceneBlockCache, SceneReader
// ------------------------------------------------------------------------------------------------

// Warp strategy: a GDAL warped VRT (GDALCreateWarpedVRT) is built once per reader, covering
// exactly the analysis grid (its geotransform and size), with the selected source bands, the
// source nodata / alpha / per-dataset mask honoured by the warper and a destination alpha band.
// Windows are then plain RasterIO calls on that VRT: the warper works block by block
// (512 x 128) on demand, so only the source pixels needed are read, the transformer (with a
// 0.125 px approximation, as gdalwarp) is set up once, and nothing is copied whole. The
// alternative, GDALWarp into a MEM dataset per window, re-creates the transformer every call and
// cannot select bands in GDAL 3.6.
// Validity rule on the warp path: a pixel is valid when the destination alpha is >= 254.5 of 255,
// i.e. it was fully covered by valid source pixels; partially covered edge pixels (alpha < 255
// after bilinear/cubic) are invalid.
// Block cache (direct path): each thread has its own dataset handle, so GDAL's block cache is per
// handle and the blocks under a tile's halo were decoded again by every thread that needed them
// (about 2x the decoding of the tile cores at 512 px tiles and a 32 px halo). Blocks are
// decoded once into a SceneBlockCache shared by the scene's readers and windows assembled from
// them; RasterIO of a block window then a float conversion gives exactly the values of RasterIO
// of the whole window (no resampling on this path).

namespace {

/// One decoded block: each selected band in the file's own type (or float32), and its validity
/// from the file's masks (255 valid), both block-sized (clipped at the scene's edges).
struct DecodedBlock {
  std::vector<cv::Mat> planes;
  cv::Mat valid;
  /// The bytes the planes and `valid` view (a buffer of the cache's pool, returned to it when
  /// the block goes); mutable so the pool can take it back from a const block.
  mutable std::vector<std::uint8_t> storage;
};

}  // namespace

struct SceneBlockCache::Impl {
  struct Slot {
    std::mutex decoding;  // held while one thread decodes; the others wait on it
    std::shared_ptr<const DecodedBlock> block;
    std::size_t bytes = 0;  // counted in `bytes` (guarded by Impl::mutex)
    bool listed = true;     // still in the map (guarded by Impl::mutex)
    std::list<std::int64_t>::iterator lru;
  };
  std::size_t capacity = 0;
  mutable std::mutex mutex;
  std::unordered_map<std::int64_t, std::shared_ptr<Slot>> slots;
  std::list<std::int64_t> lru;  // most recently used first
  std::size_t bytes = 0;
  std::unordered_map<std::int64_t, std::int64_t> announced;  // reads still to come (expect_reads)
  std::atomic<std::int64_t> decoded{0}, reused{0};
  // Buffers of dropped blocks, reused by the next decodes: blocks live for a while and go in LRU
  // order, so allocating each anew left holes among the tiles' buffers that the heap could not
  // reuse (peak memory grew with the scene). The destructor drops the blocks before the pool.
  std::mutex pool_mutex;
  std::vector<std::vector<std::uint8_t>> pool;

  /// A buffer of at least `n` bytes (from the pool when one is there).
  std::vector<std::uint8_t> take_buffer(std::size_t n) {
    {
      std::lock_guard lock(pool_mutex);
      if (!pool.empty()) {
        std::vector<std::uint8_t> b = std::move(pool.back());
        pool.pop_back();
        if (b.size() < n) b.resize(n);
        return b;
      }
    }
    return std::vector<std::uint8_t>(n);
  }
  void give_back(std::vector<std::uint8_t> b) {
    std::lock_guard lock(pool_mutex);
    pool.push_back(std::move(b));
  }
  ~Impl() {
    slots.clear();  // blocks return their buffers to the pool, which goes last
    lru.clear();
  }

  /// The block `key`, decoded by this thread if no other has it. With `wait` false, returns
  /// null instead of waiting while another thread decodes it (the caller does other blocks
  /// first).
  template <class Decode>
  std::shared_ptr<const DecodedBlock> get(std::int64_t key, Decode&& decode, bool wait = true) {
    std::shared_ptr<Slot> slot;
    {
      std::lock_guard lock(mutex);
      auto [it, inserted] = slots.try_emplace(key);
      if (inserted) {
        it->second = std::make_shared<Slot>();
        lru.push_front(key);
      } else {
        lru.splice(lru.begin(), lru, it->second->lru);
      }
      it->second->lru = lru.begin();
      slot = it->second;
    }
    std::unique_lock hold(slot->decoding, std::defer_lock);
    if (wait) {
      hold.lock();
    } else if (!hold.try_lock()) {
      return nullptr;
    }
    if (slot->block) {
      reused.fetch_add(1, std::memory_order_relaxed);
      std::lock_guard lock(mutex);
      count_read(key, *slot);
      return slot->block;
    }
    // Throws: the next reader retries. When the block goes, its buffer returns to the pool
    // (every block lives inside the cache or a read of a reader that holds the cache).
    auto block = std::shared_ptr<const DecodedBlock>(new DecodedBlock(decode()),
                                                     [this](const DecodedBlock* b) {
                                                       give_back(std::move(b->storage));
                                                       delete b;
                                                     });
    decoded.fetch_add(1, std::memory_order_relaxed);
    slot->block = block;
    std::lock_guard lock(mutex);
    if (slot->listed) {
      slot->bytes = block->storage.size();
      bytes += slot->bytes;
      // Drop the least recently used blocks (never the one just decoded) beyond the capacity.
      while (bytes > capacity && lru.size() > 1) {
        const std::int64_t victim = lru.back();
        lru.pop_back();
        auto it = slots.find(victim);
        bytes -= it->second->bytes;
        it->second->listed = false;
        slots.erase(it);
      }
    }
    count_read(key, *slot);
    return block;
  }

  /// One announced read of `key` done (mutex held): after its last one the block leaves the
  /// cache (the readers holding it keep it until they are done).
  void count_read(std::int64_t key, Slot& slot) {
    const auto it = announced.find(key);
    if (it == announced.end() || --it->second > 0) return;
    announced.erase(it);
    if (!slot.listed) return;
    const auto s = slots.find(key);
    if (s == slots.end() || s->second.get() != &slot) return;
    lru.erase(slot.lru);
    bytes -= slot.bytes;
    slot.listed = false;
    slots.erase(s);
  }
};

SceneBlockCache::SceneBlockCache(std::size_t capacity_bytes) : impl_(std::make_unique<Impl>()) {
  impl_->capacity = capacity_bytes;
}
SceneBlockCache::~SceneBlockCache() = default;
SceneBlockCache::Stats SceneBlockCache::stats() const {
  return {impl_->decoded.load(), impl_->reused.load()};
}
void SceneBlockCache::expect_reads(const std::vector<std::int64_t>& keys) {
  std::lock_guard lock(impl_->mutex);
  for (const std::int64_t k : keys) ++impl_->announced[k];
}

struct SceneReader::Impl {
  SceneInfo scene;
  Grid grid;
  ReadOptions options;
  DatasetPtr src;
  DatasetPtr vrt;  // warp path only; closed before `src` (it holds a reference to it)
  std::vector<int> bands;
  bool direct = false;
  bool integer_source = false;  ///< every band read has an integer data type (never NaN/Inf)
  int off_x = 0, off_y = 0;  // file pixel = analysis pixel + offset (direct path)
  // Shared decoded blocks (direct path of a tiled file; null otherwise), their size and the type
  // they are kept in (the bands' own type when OpenCV has it, else float32).
  std::shared_ptr<SceneBlockCache> blocks;
  int block_w = 0, block_h = 0;
  GDALDataType block_type = GDT_Float32;
  int block_cv_type = CV_32F;

  ~Impl() {
    vrt.reset();
    src.reset();
  }

  std::string where(const Window& w) const { return scene.path + ": " + window_str(w); }

  void decide_direct() {
    const bool plain_a = scene.grid.crs_wkt.empty(), plain_b = grid.crs_wkt.empty();
    if (plain_a != plain_b) {
      throw Error(ErrorKind::input,
                  scene.path + (plain_a ? ": is not georeferenced but the analysis grid is"
                                        : ": is georeferenced but the analysis grid is a plain pixel grid"));
    }
    if (!same_crs(scene.grid.crs_wkt, grid.crs_wkt)) return;
    const auto& f = scene.grid.geotransform;
    const auto& a = grid.geotransform;
    constexpr double rel = 1e-9;
    if (!close_rel(f[1], a[1], rel) || !close_rel(f[5], a[5], rel)) return;
    const double scale = std::max(std::abs(f[1]), std::abs(f[5]));
    if (std::abs(f[2]) > rel * scale || std::abs(f[4]) > rel * scale ||
        std::abs(a[2]) > rel * scale || std::abs(a[4]) > rel * scale) {
      return;
    }
    const double ox = (a[0] - f[0]) / f[1], oy = (a[3] - f[3]) / f[5];
    const double rx = std::round(ox), ry = std::round(oy);
    if (std::abs(ox - rx) > 1e-6 || std::abs(oy - ry) > 1e-6) return;
    if (std::abs(rx) > 1e9 || std::abs(ry) > 1e9) return;
    off_x = static_cast<int>(rx);
    off_y = static_cast<int>(ry);
    direct = true;
  }

  void build_vrt() {
    GDALDatasetH h = io_detail::get(src);
    ErrorCapture cap;
    GDALWarpOptions* wo = GDALCreateWarpOptions();
    wo->hSrcDS = h;
    wo->eResampleAlg = resample_alg(options.resampling);
    wo->eWorkingDataType = GDT_Float32;
    const int n = static_cast<int>(bands.size());
    wo->nBandCount = n;
    wo->panSrcBands = static_cast<int*>(CPLMalloc(sizeof(int) * n));
    wo->panDstBands = static_cast<int*>(CPLMalloc(sizeof(int) * n));
    for (int i = 0; i < n; ++i) {
      wo->panSrcBands[i] = bands[i];
      wo->panDstBands[i] = i + 1;
    }
    // Source alpha (if the file has one): the warper then ignores masked source pixels.
    for (int i = 1; i <= GDALGetRasterCount(h); ++i) {
      GDALRasterBandH b = GDALGetRasterBand(h, i);
      if (GDALGetRasterColorInterpretation(b) == GCI_AlphaBand) {
        wo->nSrcAlphaBand = i;
        if (GDALGetRasterDataType(b) == GDT_UInt16) {
          wo->papszWarpOptions = CSLSetNameValue(wo->papszWarpOptions, "SRC_ALPHA_MAX", "65535");
        }
        break;
      }
    }
    // Source nodata: the override, else each band's own.
    std::vector<double> nd(n, 0.0);
    std::vector<bool> has_nd(n, false);
    int first = -1;
    for (int i = 0; i < n; ++i) {
      int has = 0;
      const double v = GDALGetRasterNoDataValue(GDALGetRasterBand(h, bands[i]), &has);
      if (options.nodata) {
        nd[i] = *options.nodata;
        has_nd[i] = true;
      } else if (has) {
        nd[i] = v;
        has_nd[i] = true;
      }
      if (has_nd[i] && first < 0) first = i;
    }
    if (first >= 0) {
      // Bands without a nodata value take the first declared one (files rarely mix).
      wo->padfSrcNoDataReal = static_cast<double*>(CPLMalloc(sizeof(double) * n));
      for (int i = 0; i < n; ++i) wo->padfSrcNoDataReal[i] = has_nd[i] ? nd[i] : nd[first];
    }
    wo->nDstAlphaBand = n + 1;
    wo->papszWarpOptions = CSLSetNameValue(wo->papszWarpOptions, "DST_ALPHA_MAX", "255");
    wo->papszWarpOptions = CSLSetNameValue(wo->papszWarpOptions, "INIT_DEST", "0");

    const std::string dst_srs = "DST_SRS=" + grid.crs_wkt;
    const char* const topts[] = {dst_srs.c_str(), nullptr};
    void* gen = GDALCreateGenImgProjTransformer2(h, nullptr, const_cast<char**>(topts));
    if (!gen) {
      GDALDestroyWarpOptions(wo);
      throw Error(ErrorKind::input, with_reason(scene.path + ": cannot transform to the analysis grid CRS",
                                                cap.message()));
    }
    std::array<double, 6> gt = grid.geotransform;
    GDALSetGenImgProjTransformerDstGeoTransform(gen, gt.data());
    void* approx = GDALCreateApproxTransformer(GDALGenImgProjTransform, gen, 0.125);
    GDALApproxTransformerOwnsSubtransformer(approx, TRUE);
    wo->pfnTransformer = GDALApproxTransform;
    wo->pTransformerArg = approx;

    GDALDatasetH v = GDALCreateWarpedVRT(h, grid.width, grid.height, gt.data(), wo);
    if (!v) {
      GDALDestroyTransformer(approx);
      GDALDestroyWarpOptions(wo);
      throw Error(ErrorKind::input, with_reason(scene.path + ": cannot set up the warp onto the analysis grid",
                                                cap.message()));
    }
    GDALDestroyWarpOptions(wo);  // the VRT keeps a copy and owns the transformer
    vrt.reset(v);
    cap.check(ErrorKind::input, scene.path + ": cannot set up the warp onto the analysis grid");
  }

  /// Reads `fw` (in the pixel space of `ds`) into the band views at (dx, dy) of `buf` (band k =
  /// rows [k*win_h, (k+1)*win_h)), as `type` (GDAL's name for the type of `buf`).
  void raster_io(GDALDatasetH ds, const std::vector<int>& band_map, const Window& fw, cv::Mat& buf,
                 int dx, int dy, int win_h, const Window& requested,
                 GDALDataType type = GDT_Float32) {
    ErrorCapture cap;
    void* first = buf.ptr(dy) + static_cast<std::size_t>(dx) * buf.elemSize();
    const GSpacing line = static_cast<GSpacing>(buf.step[0]);
    const GSpacing band_space = line * win_h;
    std::vector<int> bm = band_map;
    const CPLErr err =
        GDALDatasetRasterIOEx(ds, GF_Read, fw.x, fw.y, fw.width, fw.height, first, fw.width,
                              fw.height, type, static_cast<int>(bm.size()), bm.data(),
                              static_cast<GSpacing>(buf.elemSize()), line, band_space, nullptr);
    if (err != CE_None || cap.failed()) {
      throw Error(ErrorKind::input,
                  with_reason(where(requested) + ": read failed", cap.message()));
    }
  }

  /// ANDs the file's masks over `fw` (file pixels) into `valid` (fw-sized): alpha / per-dataset /
  /// per-band masks, and the file's nodata unless overridden.
  void and_file_masks(GDALDatasetH h, const Window& fw, cv::Mat valid, const Window& requested) {
    cv::Mat m(fw.height, fw.width, CV_8U);
    bool per_dataset_done = false;
    for (int b : bands) {
      GDALRasterBandH band = GDALGetRasterBand(h, b);
      const int flags = GDALGetMaskFlags(band);
      if (flags == GMF_ALL_VALID) continue;
      if ((flags & GMF_NODATA) && options.nodata) continue;  // the override replaces it
      if (flags & GMF_PER_DATASET) {
        if (per_dataset_done) continue;
        per_dataset_done = true;
      }
      ErrorCapture cap;
      const CPLErr err =
          GDALRasterIO(GDALGetMaskBand(band), GF_Read, fw.x, fw.y, fw.width, fw.height, m.data,
                       fw.width, fw.height, GDT_Byte, 0, static_cast<int>(m.step[0]));
      if (err != CE_None || cap.failed()) {
        throw Error(ErrorKind::input,
                    with_reason(where(requested) + ": mask read failed", cap.message()));
      }
      cv::Mat ok;
      cv::compare(m, 0, ok, cv::CMP_NE);
      cv::bitwise_and(valid, ok, valid);
    }
  }

  /// Decides whether reads go through `blocks`: the direct path of a file tiled in blocks of at
  /// most 1024 px a side and 16 MB (all bands read), the same for every band read (strips and
  /// huge blocks read directly).
  void decide_blocks(std::shared_ptr<SceneBlockCache> cache) {
    if (!cache || !direct) return;
    GDALDatasetH h = io_detail::get(src);
    int bw = 0, bh = 0;
    GDALGetBlockSize(GDALGetRasterBand(h, bands[0]), &bw, &bh);
    if (bw <= 0 || bh <= 0 || bw > 1024 || bh > 1024) return;
    const GDALDataType t0 = GDALGetRasterDataType(GDALGetRasterBand(h, bands[0]));
    bool same_type = true;
    for (int b : bands) {
      int x = 0, y = 0;
      GDALGetBlockSize(GDALGetRasterBand(h, b), &x, &y);
      if (x != bw || y != bh) return;
      same_type = same_type && GDALGetRasterDataType(GDALGetRasterBand(h, b)) == t0;
    }
    block_type = GDT_Float32;
    block_cv_type = CV_32F;
    if (same_type) {
      switch (t0) {
        case GDT_Byte:
          block_type = t0;
          block_cv_type = CV_8U;
          break;
        case GDT_UInt16:
          block_type = t0;
          block_cv_type = CV_16U;
          break;
        case GDT_Int16:
          block_type = t0;
          block_cv_type = CV_16S;
          break;
        default:
          break;  // float32 (exact for the integer types above, GDAL's own conversion otherwise)
      }
    }
    // A block of many bands can be larger than the window a tile needs: such files are read
    // directly, as before (a cache of them would hold more than the tiles do).
    const std::size_t block_bytes =
        static_cast<std::size_t>(bw) * bh * bands.size() * CV_ELEM_SIZE(block_cv_type);
    if (block_bytes > (std::size_t{16} << 20)) return;
    block_w = bw;
    block_h = bh;
    blocks = std::move(cache);
  }

  /// Decodes block (bx, by) of the file with this reader's handle.
  DecodedBlock decode_block(int bx, int by) {
    GDALDatasetH h = io_detail::get(src);
    const Window fw = Window{bx * block_w, by * block_h, block_w, block_h}.intersect(
        Window{0, 0, scene.grid.width, scene.grid.height});
    const int n = static_cast<int>(bands.size());
    DecodedBlock out;
    const std::size_t elem = CV_ELEM_SIZE(block_cv_type);
    const std::size_t plane_bytes = static_cast<std::size_t>(n) * fw.height * fw.width * elem;
    // Sized for a whole block, so any buffer of the pool fits any block of the scene.
    const std::size_t full = static_cast<std::size_t>(block_w) * block_h;
    out.storage = blocks->impl_->take_buffer(full * (static_cast<std::size_t>(n) * elem + 1));
    cv::Mat buf(n * fw.height, fw.width, block_cv_type, out.storage.data());
    raster_io(h, bands, fw, buf, 0, 0, fw.height, fw, block_type);
    for (int k = 0; k < n; ++k)
      out.planes.push_back(buf.rowRange(k * fw.height, (k + 1) * fw.height));
    out.valid = cv::Mat(fw.height, fw.width, CV_8U, out.storage.data() + plane_bytes);
    out.valid.setTo(255);
    and_file_masks(h, fw, out.valid, fw);
    // The block is kept here now: GDAL's copy in its own cache would only hold memory (a
    // read-only dataset has nothing to write back).
    GDALFlushCache(h);
    return out;
  }

  /// Fills `fw` (file pixels) of the window from shared blocks: bands (float32) at (dx, dy) of
  /// `out.bands` and the file's validity into `out.valid`.
  void read_blocks(const Window& fw, int dx, int dy, SceneWindow& out) {
    const int n = static_cast<int>(bands.size());
    const int nbx = (scene.grid.width + block_w - 1) / block_w;
    // First the blocks no other thread is decoding, then (waiting) the others: a thread whose
    // neighbour is decoding a shared halo block does its own blocks meanwhile.
    std::vector<cv::Point> pending;
    for (int by = fw.y / block_h; by <= (fw.y + fw.height - 1) / block_h; ++by) {
      for (int bx = fw.x / block_w; bx <= (fw.x + fw.width - 1) / block_w; ++bx)
        pending.emplace_back(bx, by);
    }
    for (const bool wait : {false, true}) {
      std::vector<cv::Point> later;
      for (const cv::Point& b : pending) {
        const int bx = b.x, by = b.y;
        const auto block = blocks->impl_->get(
            static_cast<std::int64_t>(by) * nbx + bx, [&] { return decode_block(bx, by); }, wait);
        if (!block) {
          later.push_back(b);
          continue;
        }
        const Window bwin = Window{bx * block_w, by * block_h, block_w, block_h}.intersect(fw);
        const cv::Rect in_block(bwin.x - bx * block_w, bwin.y - by * block_h, bwin.width,
                                bwin.height);
        const cv::Rect in_window(bwin.x - fw.x + dx, bwin.y - fw.y + dy, bwin.width, bwin.height);
        for (int k = 0; k < n; ++k) {
          cv::Mat dst = out.bands[k](in_window);
          block->planes[k](in_block).convertTo(dst, dst.type());  // a copy when read_native
        }
        block->valid(in_block).copyTo(out.valid(in_window));
      }
      pending = std::move(later);
    }
  }

  /// The file window read() decodes for `w` on the direct path (empty when none).
  Window file_window(const Window& w) const {
    const Window in_grid = w.intersect(Window{0, 0, grid.width, grid.height});
    if (in_grid.empty()) return {};
    return Window{in_grid.x + off_x, in_grid.y + off_y, in_grid.width, in_grid.height}.intersect(
        Window{0, 0, scene.grid.width, scene.grid.height});
  }

  std::vector<std::int64_t> block_keys(const Window& w) const {
    std::vector<std::int64_t> keys;
    if (!direct || !blocks || w.empty()) return keys;
    const Window fw = file_window(w);
    if (fw.empty()) return keys;
    const int nbx = (scene.grid.width + block_w - 1) / block_w;
    for (int by = fw.y / block_h; by <= (fw.y + fw.height - 1) / block_h; ++by) {
      for (int bx = fw.x / block_w; bx <= (fw.x + fw.width - 1) / block_w; ++bx)
        keys.push_back(static_cast<std::int64_t>(by) * nbx + bx);
    }
    return keys;
  }

  SceneWindow read(const Window& w, bool native = false) {
    if (w.empty()) throw Error(ErrorKind::internal, scene.path + ": empty read " + window_str(w));
    const int n = static_cast<int>(bands.size());
    SceneWindow out;
    // One buffer for all bands (band k = rows [k*h, (k+1)*h)), so one RasterIO call fills all.
    // Zeroed below only when the read does not cover the whole window (the usual tile is inside).
    // read_native keeps the blocks' type, on the direct path through shared blocks only.
    cv::Mat buf(n * w.height, w.width, native && direct && blocks ? block_cv_type : CV_32F);
    out.valid = cv::Mat(w.height, w.width, CV_8U, cv::Scalar(0));
    for (int k = 0; k < n; ++k) out.bands.push_back(buf.rowRange(k * w.height, (k + 1) * w.height));

    // Pixels outside the analysis grid are invalid on both paths.
    const Window in_grid = w.intersect(Window{0, 0, grid.width, grid.height});
    auto zero_unless_covered = [&](const Window& covered) {
      if (!(covered == w)) buf.setTo(0);
    };
    if (in_grid.empty()) {
      buf.setTo(0);
      return out;
    }

    if (direct) {
      GDALDatasetH h = io_detail::get(src);
      const Window fw = file_window(w);
      zero_unless_covered(fw.empty() ? Window{}
                                     : Window{fw.x - off_x, fw.y - off_y, fw.width, fw.height});
      if (fw.empty()) return out;
      const int dx = fw.x - off_x - w.x, dy = fw.y - off_y - w.y;
      if (blocks) {
        read_blocks(fw, dx, dy, out);
      } else {
        raster_io(h, bands, fw, buf, dx, dy, w.height, w);
        cv::Mat valid_roi = out.valid(cv::Rect(dx, dy, fw.width, fw.height));
        valid_roi.setTo(255);
        and_file_masks(h, fw, valid_roi, w);
      }
    } else {
      GDALDatasetH v = io_detail::get(vrt);
      zero_unless_covered(in_grid);
      const int dx = in_grid.x - w.x, dy = in_grid.y - w.y;
      raster_io(v, [&] {
        std::vector<int> bm(n);
        for (int i = 0; i < n; ++i) bm[i] = i + 1;
        return bm;
      }(), in_grid, buf, dx, dy, w.height, w);
      cv::Mat alpha(in_grid.height, in_grid.width, CV_32F);
      {
        ErrorCapture cap;
        const CPLErr err = GDALRasterIO(GDALGetRasterBand(v, n + 1), GF_Read, in_grid.x, in_grid.y,
                                        in_grid.width, in_grid.height, alpha.data, in_grid.width,
                                        in_grid.height, GDT_Float32, 0,
                                        static_cast<int>(alpha.step[0]));
        if (err != CE_None || cap.failed()) {
          throw Error(ErrorKind::input, with_reason(where(w) + ": read failed", cap.message()));
        }
      }
      cv::Mat ok;
      cv::compare(alpha, 254.5, ok, cv::CMP_GE);
      ok.copyTo(out.valid(cv::Rect(dx, dy, in_grid.width, in_grid.height)));
    }
    and_finite_and_value(out.bands, options.nodata, out.valid, out.non_finite, !integer_source);
    zero_invalid(out.bands, out.valid);
    return out;
  }
};

SceneReader::SceneReader(const SceneInfo& scene, const Grid& analysis_grid,
                         const ReadOptions& options, std::shared_ptr<SceneBlockCache> blocks)
    : impl_(std::make_unique<Impl>()) {
  init_gdal();
  auto& s = *impl_;
  s.scene = scene;
  s.grid = analysis_grid;
  s.options = options;
  if (analysis_grid.width <= 0 || analysis_grid.height <= 0) {
    throw Error(ErrorKind::internal, scene.path + ": empty analysis grid");
  }
  resample_alg(options.resampling);  // validate early
  {
    ErrorCapture cap;
    std::vector<std::string> drv{scene.driver};
    auto allowed = c_list(drv);
    s.src.reset(GDALOpenEx(scene.path.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY | GDAL_OF_VERBOSE_ERROR,
                           scene.driver.empty() ? nullptr : allowed.data(), nullptr, nullptr));
    if (!s.src) {
      throw Error(ErrorKind::input, with_reason(scene.path + ": cannot be opened as a raster", cap.message()));
    }
  }
  GDALDatasetH h = io_detail::get(s.src);
  const int count = GDALGetRasterCount(h);
  if (GDALGetRasterXSize(h) != scene.grid.width || GDALGetRasterYSize(h) != scene.grid.height) {
    throw Error(ErrorKind::input, scene.path + ": changed since it was opened (size differs)");
  }
  if (options.bands.empty()) {
    for (int i = 1; i <= count; ++i) {
      if (GDALGetRasterColorInterpretation(GDALGetRasterBand(h, i)) != GCI_AlphaBand) s.bands.push_back(i);
    }
    if (s.bands.empty()) throw Error(ErrorKind::input, scene.path + ": has only alpha bands");
  } else {
    for (int b : options.bands) {
      if (b < 1 || b > count) {
        throw Error(ErrorKind::input, scene.path + ": band " + std::to_string(b) + " does not exist (" +
                                          std::to_string(count) + " bands)");
      }
    }
    s.bands = options.bands;
  }
  s.integer_source = true;
  for (int b : s.bands) {
    if (GDALDataTypeIsInteger(GDALGetRasterDataType(GDALGetRasterBand(h, b))) == 0) s.integer_source = false;
  }
  s.decide_direct();
  if (!s.direct) s.build_vrt();
  s.decide_blocks(std::move(blocks));
}

SceneReader::~SceneReader() = default;
SceneReader::SceneReader(SceneReader&&) noexcept = default;
SceneReader& SceneReader::operator=(SceneReader&&) noexcept = default;

SceneWindow SceneReader::read(const Window& window) { return impl_->read(window); }
SceneWindow SceneReader::read_native(const Window& window) { return impl_->read(window, true); }
std::vector<std::int64_t> SceneReader::block_keys(const Window& window) const {
  return impl_->block_keys(window);
}
bool SceneReader::direct() const { return impl_->direct; }

// ------------------------------------------------------------------------------------------------
// write_geotiff, sha256_file
// ------------------------------------------------------------------------------------------------

void write_geotiff(const std::string& path, const Grid& grid, const std::vector<cv::Mat>& bands,
                   std::optional<double> nodata) {
  init_gdal();
  if (bands.empty()) throw Error(ErrorKind::output, path + ": no bands to write");
  const cv::Mat& b0 = bands.front();
  GDALDataType type = GDT_Unknown;
  switch (b0.type()) {
    case CV_8UC1: type = GDT_Byte; break;
    case CV_16UC1: type = GDT_UInt16; break;
    case CV_32FC1: type = GDT_Float32; break;
    default: throw Error(ErrorKind::output, path + ": unsupported band type (CV_8U, CV_16U or CV_32F, 1 channel)");
  }
  for (const auto& b : bands) {
    if (b.type() != b0.type() || b.size() != b0.size()) {
      throw Error(ErrorKind::output, path + ": bands differ in size or type");
    }
  }
  if (b0.cols != grid.width || b0.rows != grid.height) {
    throw Error(ErrorKind::output, path + ": band size differs from the grid size");
  }
  ErrorCapture cap;
  GDALDriverH drv = GDALGetDriverByName("GTiff");
  if (!drv) throw Error(ErrorKind::output, path + ": GTiff driver not available");
  const char* const opts[] = {"TILED=YES", "COMPRESS=DEFLATE", "BIGTIFF=IF_SAFER", nullptr};
  DatasetPtr ds(GDALCreate(drv, path.c_str(), b0.cols, b0.rows, static_cast<int>(bands.size()), type,
                           const_cast<char**>(opts)));
  if (!ds) throw Error(ErrorKind::output, with_reason(path + ": cannot be created", cap.message()));
  GDALDatasetH h = io_detail::get(ds);
  if (!grid.crs_wkt.empty()) {
    auto srs = io_detail::srs_from(grid.crs_wkt);
    if (!srs) throw Error(ErrorKind::output, path + ": invalid CRS");
    std::array<double, 6> gt = grid.geotransform;
    if (GDALSetGeoTransform(h, gt.data()) != CE_None ||
        GDALSetSpatialRef(h, OGRSpatialReference::ToHandle(srs.get())) != CE_None) {
      throw Error(ErrorKind::output, with_reason(path + ": cannot set georeferencing", cap.message()));
    }
  }
  for (std::size_t i = 0; i < bands.size(); ++i) {
    GDALRasterBandH band = GDALGetRasterBand(h, static_cast<int>(i) + 1);
    if (nodata) GDALSetRasterNoDataValue(band, *nodata);
    const cv::Mat& m = bands[i];
    if (GDALRasterIO(band, GF_Write, 0, 0, m.cols, m.rows, const_cast<uchar*>(m.data), m.cols, m.rows,
                     type, 0, static_cast<int>(m.step[0])) != CE_None) {
      throw Error(ErrorKind::output, with_reason(path + ": write failed", cap.message()));
    }
  }
  ds.reset();  // flush and close
  cap.check(ErrorKind::output, path + ": write failed");
}

namespace {

// Streams bytes through SHA-256; `feed` calls the given updater until the input is exhausted.
template <typename Feed>
std::string sha256_hex(Feed&& feed) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    throw Error(ErrorKind::internal, "SHA-256 initialisation failed");
  }
  feed([&](const char* data, std::size_t n) {
    if (n > 0 && EVP_DigestUpdate(ctx.get(), data, n) != 1) throw Error(ErrorKind::internal, "SHA-256 update failed");
  });
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx.get(), md, &len) != 1) throw Error(ErrorKind::internal, "SHA-256 failed");
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned i = 0; i < len; ++i) {
    out.push_back(hex[md[i] >> 4]);
    out.push_back(hex[md[i] & 15]);
  }
  return out;
}

}  // namespace

std::string sha256_file(const std::string& path, const std::function<bool()>& keep_going) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorKind::input, path + ": cannot be read for hashing");
  std::string digest = sha256_hex([&](auto&& update) {
    std::vector<char> block(1 << 20);
    while (in) {
      if (keep_going && !keep_going()) {
        throw Error(ErrorKind::internal, path + ": hashing stopped");
      }
      in.read(block.data(), static_cast<std::streamsize>(block.size()));
      update(block.data(), static_cast<std::size_t>(in.gcount()));
    }
  });
  if (in.bad()) throw Error(ErrorKind::input, path + ": read error while hashing");
  return digest;
}

std::string sha256_text(const std::string& text) {
  return sha256_hex([&](auto&& update) { update(text.data(), text.size()); });
}

}  // namespace aftermath
