#include "aftermath/io/xbd.hpp"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include <cpl_conv.h>
#include <gdal.h>
#include <nlohmann/json.hpp>
#include <ogr_geometry.h>
#include <opencv2/core.hpp>

#include "aftermath/core/error.hpp"
#include "aftermath/io/scene.hpp"
#include "gdal_util.hpp"

namespace aftermath {

using io_detail::DatasetPtr;
using io_detail::ErrorCapture;
using io_detail::with_reason;
namespace fs = std::filesystem;

namespace {

/// All vertices of every ring of a (multi)polygon WKT, closing duplicates dropped, in order.
std::vector<cv::Point2d> wkt_vertices(const std::string& wkt, const std::string& what) {
  ErrorCapture cap;
  OGRGeometry* raw = nullptr;
  if (OGRGeometryFactory::createFromWkt(wkt.c_str(), nullptr, &raw) != OGRERR_NONE || !raw) {
    delete raw;
    throw Error(ErrorKind::input, with_reason(what + ": unreadable WKT", cap.message()));
  }
  std::unique_ptr<OGRGeometry> g(raw);
  std::vector<cv::Point2d> out;
  auto add_poly = [&](const OGRPolygon* p) {
    for (int r = -1; r < p->getNumInteriorRings(); ++r) {
      const OGRLinearRing* ring = r < 0 ? p->getExteriorRing() : p->getInteriorRing(r);
      if (!ring) continue;
      std::vector<cv::Point2d> pts;
      for (int k = 0; k < ring->getNumPoints(); ++k) pts.emplace_back(ring->getX(k), ring->getY(k));
      if (pts.size() > 1 && pts.front() == pts.back()) pts.pop_back();
      out.insert(out.end(), pts.begin(), pts.end());
    }
  };
  const auto type = wkbFlatten(g->getGeometryType());
  if (type == wkbPolygon) {
    add_poly(g->toPolygon());
  } else if (type == wkbMultiPolygon) {
    for (const auto* p : *g->toMultiPolygon()) add_poly(p);
  } else {
    throw Error(ErrorKind::input, what + ": not a polygon (" + OGRGeometryTypeToName(g->getGeometryType()) + ")");
  }
  return out;
}

std::string str_of(const nlohmann::json& obj, const char* key) {
  if (!obj.is_object()) return {};
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string{};
}

/// Writes `png` as a GeoTIFF with the given georeferencing (bands and colour interpretation kept).
void png_to_geotiff(const std::string& png, const std::string& tif, const std::array<double, 6>& gt,
                    int expect_w, int expect_h) {
  ErrorCapture cap;
  DatasetPtr src(GDALOpenEx(png.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY | GDAL_OF_VERBOSE_ERROR,
                            nullptr, nullptr, nullptr));
  if (!src) throw Error(ErrorKind::input, with_reason(png + ": cannot be opened as a raster", cap.message()));
  const int w = GDALGetRasterXSize(io_detail::get(src)), h = GDALGetRasterYSize(io_detail::get(src));
  if (w != expect_w || h != expect_h) {
    throw Error(ErrorKind::input, png + ": size " + std::to_string(w) + " x " + std::to_string(h) +
                                      " differs from the labelled image (" + std::to_string(expect_w) +
                                      " x " + std::to_string(expect_h) + ")");
  }
  DatasetPtr mem(GDALCreateCopy(GDALGetDriverByName("MEM"), "", io_detail::get(src), FALSE, nullptr,
                                nullptr, nullptr));
  if (!mem || cap.failed()) throw Error(ErrorKind::input, with_reason(png + ": cannot be read", cap.message()));
  auto srs = io_detail::srs_from("EPSG:4326");
  std::array<double, 6> g = gt;
  GDALSetGeoTransform(io_detail::get(mem), g.data());
  GDALSetSpatialRef(io_detail::get(mem), OGRSpatialReference::ToHandle(srs.get()));
  const char* const opts[] = {"TILED=YES", "COMPRESS=DEFLATE", "BIGTIFF=IF_SAFER", nullptr};
  DatasetPtr out(GDALCreateCopy(GDALGetDriverByName("GTiff"), tif.c_str(), io_detail::get(mem), FALSE,
                                const_cast<char**>(opts), nullptr, nullptr));
  if (!out) throw Error(ErrorKind::output, with_reason(tif + ": cannot be written", cap.message()));
  out.reset();
  cap.check(ErrorKind::output, tif + ": write failed");
}

}  // namespace

XbdImportResult xbd_import(const std::string& pre_image, const std::string& post_image,
                           const std::string& post_labels, const std::string& out_dir,
                           const std::string& stem) {
  init_gdal();
  nlohmann::json j;
  {
    std::ifstream in(post_labels, std::ios::binary);
    if (!in) throw Error(ErrorKind::input, post_labels + ": cannot be read");
    try {
      j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      throw Error(ErrorKind::input, post_labels + ": malformed JSON (" + std::string(e.what()) + ")");
    }
  }
  const auto feats = j.is_object() ? j.find("features") : j.end();
  if (!j.is_object() || feats == j.end() || !feats->is_object() || !feats->contains("xy") ||
      !feats->contains("lng_lat") || !(*feats)["xy"].is_array() || !(*feats)["lng_lat"].is_array()) {
    throw Error(ErrorKind::input, post_labels + ": not an xBD label file (features.xy / features.lng_lat)");
  }
  const auto& xy = (*feats)["xy"];
  const auto& ll = (*feats)["lng_lat"];
  if (xy.size() != ll.size()) {
    throw Error(ErrorKind::input, post_labels + ": " + std::to_string(xy.size()) + " xy features but " +
                                      std::to_string(ll.size()) + " lng_lat features");
  }

  // Vertex pairs for the fit.
  std::vector<cv::Point2d> px, geo;
  for (std::size_t i = 0; i < xy.size(); ++i) {
    const std::string what = post_labels + ": feature " + std::to_string(i);
    const auto& a = xy[i];
    const auto& b = ll[i];
    const std::string ua = str_of(a.value("properties", nlohmann::json::object()), "uid");
    const std::string ub = str_of(b.value("properties", nlohmann::json::object()), "uid");
    if (ua != ub) throw Error(ErrorKind::input, what + ": uid differs between xy (" + ua + ") and lng_lat (" + ub + ")");
    const auto va = wkt_vertices(str_of(a, "wkt"), what + " xy");
    const auto vb = wkt_vertices(str_of(b, "wkt"), what + " lng_lat");
    if (va.size() != vb.size()) {
      throw Error(ErrorKind::input, what + ": xy and lng_lat polygons have different vertex counts");
    }
    px.insert(px.end(), va.begin(), va.end());
    geo.insert(geo.end(), vb.begin(), vb.end());
  }
  const int n = static_cast<int>(px.size());
  if (n < 3) throw Error(ErrorKind::input, post_labels + ": too few polygon vertices to fit the georeferencing");

  // Least squares lon = a0 + a1 x + a2 y, lat = b0 + b1 x + b2 y (pixel coordinates centred for
  // conditioning).
  cv::Point2d c0(0, 0);
  for (const auto& p : px) c0 += p;
  c0 *= 1.0 / n;
  cv::Mat A(n, 3, CV_64F), B(n, 2, CV_64F);
  for (int i = 0; i < n; ++i) {
    A.at<double>(i, 0) = 1;
    A.at<double>(i, 1) = px[i].x - c0.x;
    A.at<double>(i, 2) = px[i].y - c0.y;
    B.at<double>(i, 0) = geo[i].x;
    B.at<double>(i, 1) = geo[i].y;
  }
  cv::Mat w;
  cv::SVD::compute(A, w);
  if (w.at<double>(2) <= 1e-9 * w.at<double>(0)) {
    throw Error(ErrorKind::input, post_labels + ": polygon vertices are collinear; cannot fit the georeferencing");
  }
  cv::Mat X;
  cv::solve(A, B, X, cv::DECOMP_SVD);
  const double a1 = X.at<double>(1, 0), a2 = X.at<double>(2, 0);
  const double b1 = X.at<double>(1, 1), b2 = X.at<double>(2, 1);
  const double a0 = X.at<double>(0, 0) - a1 * c0.x - a2 * c0.y;
  const double b0 = X.at<double>(0, 1) - b1 * c0.x - b2 * c0.y;
  const double det = a1 * b2 - a2 * b1;
  if (!std::isfinite(det) || det == 0) throw Error(ErrorKind::input, post_labels + ": degenerate georeferencing fit");

  XbdImportResult res;
  res.geotransform = {a0, a1, a2, b0, b1, b2};
  double ss = 0;
  for (int i = 0; i < n; ++i) {
    const double rx = geo[i].x - (a0 + a1 * px[i].x + a2 * px[i].y);
    const double ry = geo[i].y - (b0 + b1 * px[i].x + b2 * px[i].y);
    const double ex = (b2 * rx - a2 * ry) / det, ey = (-b1 * rx + a1 * ry) / det;  // map -> pixel
    ss += ex * ex + ey * ey;
  }
  res.fit_rmse_px = std::sqrt(ss / n);

  // Outputs.
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) throw Error(ErrorKind::output, out_dir + ": cannot create directory (" + ec.message() + ")");
  const fs::path dir(out_dir);
  res.pre_tif = (dir / (stem + "_pre.tif")).string();
  res.post_tif = (dir / (stem + "_post.tif")).string();
  res.footprints_geojson = (dir / (stem + "_footprints.geojson")).string();

  int width = 0, height = 0;
  {
    ErrorCapture cap;
    DatasetPtr post(GDALOpenEx(post_image.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY, nullptr, nullptr, nullptr));
    if (!post) throw Error(ErrorKind::input, with_reason(post_image + ": cannot be opened as a raster", cap.message()));
    width = GDALGetRasterXSize(io_detail::get(post));
    height = GDALGetRasterYSize(io_detail::get(post));
  }
  if (j.contains("metadata") && j["metadata"].is_object()) {
    const auto& md = j["metadata"];
    if (md.contains("width") && md["width"].is_number() && md.contains("height") && md["height"].is_number() &&
        (md["width"].get<int>() != width || md["height"].get<int>() != height)) {
      throw Error(ErrorKind::input, post_labels + ": metadata size differs from " + post_image);
    }
  }
  png_to_geotiff(pre_image, res.pre_tif, res.geotransform, width, height);
  png_to_geotiff(post_image, res.post_tif, res.geotransform, width, height);

  nlohmann::json fc = {{"type", "FeatureCollection"}, {"features", nlohmann::json::array()}};
  for (std::size_t i = 0; i < ll.size(); ++i) {
    const auto& item = ll[i];
    const auto props = item.value("properties", nlohmann::json::object());
    const std::string ftype = str_of(props, "feature_type");
    if (!ftype.empty() && ftype != "building") continue;
    ErrorCapture cap;
    OGRGeometry* raw = nullptr;
    const std::string wkt = str_of(item, "wkt");
    if (OGRGeometryFactory::createFromWkt(wkt.c_str(), nullptr, &raw) != OGRERR_NONE || !raw) {
      delete raw;
      throw Error(ErrorKind::input, post_labels + ": feature " + std::to_string(i) + ": unreadable WKT");
    }
    std::unique_ptr<OGRGeometry> g(raw);
    char* gj = g->exportToJson();
    nlohmann::json geom = nlohmann::json::parse(gj ? gj : "null", nullptr, false);
    CPLFree(gj);
    nlohmann::json p = {{"uid", str_of(props, "uid")}};
    const std::string sub = str_of(props, "subtype");
    p["subtype"] = sub.empty() ? nlohmann::json(nullptr) : nlohmann::json(sub);
    fc["features"].push_back({{"type", "Feature"}, {"properties", p}, {"geometry", geom}});
    ++res.buildings;
  }
  {
    std::ofstream out(res.footprints_geojson, std::ios::binary | std::ios::trunc);
    out << fc.dump() << "\n";
    if (!out) throw Error(ErrorKind::output, res.footprints_geojson + ": write failed");
  }
  return res;
}

}  // namespace aftermath
