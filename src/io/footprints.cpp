#include "aftermath/io/footprints.hpp"

#include <cpl_conv.h>
#include <gdal.h>
#include <gdal_priv.h>
#include <ogr_geometry.h>
#include <ogrsf_frmts.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <unordered_map>

#include "aftermath/core/error.hpp"
#include "aftermath/io/scene.hpp"
#include "gdal_util.hpp"

namespace aftermath {

using io_detail::ErrorCapture;
using io_detail::with_reason;
namespace fs = std::filesystem;

namespace {

using GeomPtr = std::unique_ptr<OGRGeometry>;

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (std::size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + v[i];
  return out;
}

/// Shortest decimal form that reads back as the same double (std::to_chars): the stored WKT gives
/// back exactly the coordinates scored, so rescore rebuilds identical rings; and it is several
/// times faster than OGR's WKT export, which dominated reading a million footprints.
void append_number(std::string& out, double v) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void append_ring(std::string& out, const OGRLinearRing* ring) {
  out += '(';
  for (int k = 0; k < ring->getNumPoints(); ++k) {
    if (k) out += ',';
    append_number(out, ring->getX(k));
    out += ' ';
    append_number(out, ring->getY(k));
  }
  out += ')';
}

void append_polygon(std::string& out, const OGRPolygon* poly) {
  out += '(';
  append_ring(out, poly->getExteriorRing());
  for (int r = 0; r < poly->getNumInteriorRings(); ++r) {
    out += ',';
    append_ring(out, poly->getInteriorRing(r));
  }
  out += ')';
}

/// One polygon as POLYGON, several as MULTIPOLYGON.
std::string polygons_wkt(const OGRMultiPolygon& multi) {
  std::string out;
  if (multi.getNumGeometries() == 1) {
    out = "POLYGON ";
    append_polygon(out, multi.getGeometryRef(0));
    return out;
  }
  out = "MULTIPOLYGON (";
  for (int i = 0; i < multi.getNumGeometries(); ++i) {
    if (i) out += ',';
    append_polygon(out, multi.getGeometryRef(i));
  }
  return out + ")";
}

/// Appends clones of the polygon parts of `g` to `out`; counts the non-polygon parts dropped.
void collect_polygons(const OGRGeometry* g, std::vector<std::unique_ptr<OGRPolygon>>& out,
                      int& dropped) {
  if (!g || g->IsEmpty()) return;
  switch (wkbFlatten(g->getGeometryType())) {
    case wkbPolygon:
      out.emplace_back(g->toPolygon()->clone());
      break;
    case wkbMultiPolygon:
    case wkbGeometryCollection:
    case wkbMultiLineString:
    case wkbMultiPoint: {
      const auto* gc = g->toGeometryCollection();
      for (int i = 0; i < gc->getNumGeometries(); ++i)
        collect_polygons(gc->getGeometryRef(i), out, dropped);
      break;
    }
    default:
      ++dropped;
  }
}

/// Turns one geometry (already in the grid's map coordinates) into a Footprint, or returns false
/// with a warning. Never throws for geometry problems.
bool to_footprint(GeomPtr geom, const std::string& sid, const Grid& grid, Footprint& fp,
                  std::vector<std::string>& warnings) {
  const std::string who = "feature " + sid;
  if (!geom) {
    warnings.push_back(who + ": null geometry, skipped");
    return false;
  }
  if (geom->IsEmpty()) {
    warnings.push_back(who + ": empty geometry, skipped");
    return false;
  }
  try {
    ErrorCapture cap;  // GEOS/OGR messages stay here; the outcome is judged by results
    if (geom->hasCurveGeometry()) geom.reset(geom->getLinearGeometry());
    if (!geom) {
      warnings.push_back(who + ": curved geometry cannot be linearised, skipped");
      return false;
    }
    const auto type = wkbFlatten(geom->getGeometryType());
    std::vector<std::unique_ptr<OGRPolygon>> polys;
    int dropped = 0;
    if (type == wkbPolygon || type == wkbMultiPolygon) {
      collect_polygons(geom.get(), polys, dropped);
    } else if (type == wkbGeometryCollection) {
      collect_polygons(geom.get(), polys, dropped);
      if (polys.empty()) {
        warnings.push_back(who + ": geometry collection without polygons, skipped");
        return false;
      }
      if (dropped > 0) {
        warnings.push_back(who + ": " + std::to_string(dropped) +
                           " non-polygon part(s) of a geometry collection dropped");
      }
    } else {
      warnings.push_back(who + ": " + OGRGeometryTypeToName(geom->getGeometryType()) +
                         " skipped (only polygons are supported)");
      return false;
    }
    if (polys.empty()) {
      warnings.push_back(who + ": no polygon, skipped");
      return false;
    }
    // Validity on the polygon parts as one multipolygon.
    auto multi = std::make_unique<OGRMultiPolygon>();
    for (auto& p : polys) multi->addGeometryDirectly(p.release());
    polys.clear();
    if (!multi->IsValid()) {
      GeomPtr fixed(multi->MakeValid());
      int d2 = 0;
      collect_polygons(fixed.get(), polys, d2);
      if (polys.empty()) {
        warnings.push_back(who + ": invalid geometry that cannot be repaired, skipped" +
                           (cap.message().empty() ? "" : " (" + cap.message() + ")"));
        return false;
      }
      warnings.push_back(who + ": invalid geometry repaired (MakeValid)");
      multi = std::make_unique<OGRMultiPolygon>();
      for (auto& p : polys) multi->addGeometryDirectly(p.release());
    }
    // The geometry for outputs, in the grid's CRS (pixel units for a plain pixel grid): one
    // polygon as POLYGON, several as MULTIPOLYGON.
    fp.wkt = polygons_wkt(*multi);
    fp.rings.clear();
    for (int i = 0; i < multi->getNumGeometries(); ++i) {
      const OGRPolygon* poly = multi->getGeometryRef(i);
      for (int r = -1; r < poly->getNumInteriorRings(); ++r) {
        const OGRLinearRing* ring = r < 0 ? poly->getExteriorRing() : poly->getInteriorRing(r);
        if (!ring) continue;
        std::vector<cv::Point2d> pts;
        const int n = ring->getNumPoints();
        pts.reserve(n);
        for (int k = 0; k < n; ++k) pts.push_back(grid.map_to_pixel(ring->getX(k), ring->getY(k)));
        if (pts.size() > 1 && pts.front() == pts.back()) pts.pop_back();
        if (pts.size() >= 3) fp.rings.push_back(std::move(pts));
      }
    }
    if (fp.rings.empty()) {
      warnings.push_back(who + ": degenerate polygon, skipped");
      return false;
    }
    fp.source_id = sid;
    finalize_geometry(fp);
    return true;
  } catch (const std::exception& e) {
    warnings.push_back(who + ": geometry error, skipped (" + e.what() + ")");
    return false;
  }
}

/// A pixel-space polygonal geometry (a buffer) -> its WKT in the grid's map coordinates (the pixel
/// -> map mapping is affine, so shapes are kept) and the feature's rings from those map
/// coordinates, as rescore rebuilds them from the WKT.
bool pixel_polygons_to_footprint(const OGRGeometry* g, const Grid& grid, Footprint& fp) {
  std::vector<std::unique_ptr<OGRPolygon>> polys;
  int dropped = 0;
  collect_polygons(g, polys, dropped);
  fp.rings.clear();
  auto map_multi = std::make_unique<OGRMultiPolygon>();
  for (const auto& poly : polys) {
    auto map_poly = std::make_unique<OGRPolygon>();
    for (int r = -1; r < poly->getNumInteriorRings(); ++r) {
      const OGRLinearRing* ring = r < 0 ? poly->getExteriorRing() : poly->getInteriorRing(r);
      if (!ring) continue;
      std::vector<cv::Point2d> pts;
      OGRLinearRing map_ring;
      for (int k = 0; k < ring->getNumPoints(); ++k) {
        const cv::Point2d m = grid.pixel_to_map(ring->getX(k), ring->getY(k));
        map_ring.addPoint(m.x, m.y);
        pts.push_back(grid.map_to_pixel(m.x, m.y));
      }
      map_poly->addRing(&map_ring);
      if (pts.size() > 1 && pts.front() == pts.back()) pts.pop_back();
      if (pts.size() >= 3) fp.rings.push_back(std::move(pts));
    }
    map_multi->addGeometryDirectly(map_poly.release());
  }
  if (fp.rings.empty()) return false;
  fp.wkt = polygons_wkt(*map_multi);
  return true;
}

/// The parts of a (multi)line geometry in map coordinates, as pixel-space polylines.
std::vector<std::vector<cv::Point2d>> line_parts_in_pixels(const OGRGeometry* g, const Grid& grid) {
  std::vector<std::vector<cv::Point2d>> parts;
  const auto add = [&](const OGRLineString* line) {
    std::vector<cv::Point2d> pts;
    for (int k = 0; k < line->getNumPoints(); ++k) {
      const cv::Point2d p = grid.map_to_pixel(line->getX(k), line->getY(k));
      if (pts.empty() || pts.back() != p) pts.push_back(p);
    }
    if (pts.size() >= 2) parts.push_back(std::move(pts));
  };
  const auto t = wkbFlatten(g->getGeometryType());
  if (t == wkbLineString) {
    add(g->toLineString());
  } else if (t == wkbMultiLineString) {
    const auto* m = g->toMultiLineString();
    for (int i = 0; i < m->getNumGeometries(); ++i) add(m->getGeometryRef(i));
  }
  return parts;
}

/// Cuts a polyline into `pieces` pieces of equal length.
std::vector<std::vector<cv::Point2d>> cut_polyline(const std::vector<cv::Point2d>& line,
                                                   int pieces) {
  std::vector<double> cum{0.0};
  for (std::size_t i = 1; i < line.size(); ++i)
    cum.push_back(cum.back() + cv::norm(line[i] - line[i - 1]));
  const double length = cum.back();
  const auto at = [&](double s, std::size_t& j) {
    while (j + 2 < cum.size() && cum[j + 1] < s) ++j;
    const double seg = cum[j + 1] - cum[j];
    const double t = seg > 0 ? std::clamp((s - cum[j]) / seg, 0.0, 1.0) : 0.0;
    return line[j] + t * (line[j + 1] - line[j]);
  };
  std::vector<std::vector<cv::Point2d>> out;
  std::size_t j = 0;
  for (int p = 0; p < pieces; ++p) {
    const double s0 = length * p / pieces, s1 = length * (p + 1) / pieces;
    std::vector<cv::Point2d> piece;
    piece.push_back(p == 0 ? line.front() : at(s0, j));
    for (std::size_t k = 1; k + 1 < line.size(); ++k) {
      if (cum[k] > s0 && cum[k] < s1) piece.push_back(line[k]);
    }
    piece.push_back(p == pieces - 1 ? line.back() : at(s1, j));
    out.push_back(std::move(piece));
  }
  return out;
}

/// A pixel-space polyline -> its WKT in map coordinates, and (in place) the polyline as rescore
/// rebuilds it from that WKT.
std::string polyline_wkt(std::vector<cv::Point2d>& pixel_line, const Grid& grid) {
  std::string out = "LINESTRING (";
  for (std::size_t k = 0; k < pixel_line.size(); ++k) {
    const cv::Point2d m = grid.pixel_to_map(pixel_line[k].x, pixel_line[k].y);
    if (k) out += ',';
    append_number(out, m.x);
    out += ' ';
    append_number(out, m.y);
    pixel_line[k] = grid.map_to_pixel(m.x, m.y);
  }
  return out + ")";
}

/// How features become kinds and areas: the rules, parsed once, and sizes in pixels.
struct FeatureRules {
  std::vector<KindRule> rules;
  double px_per_m = 1;  ///< 1 on a plain pixel grid (sizes are then in pixels)
  FeaturesConfig config;

  FeatureRules(const FeaturesConfig& c, const Grid& grid) : config(c) {
    for (const auto& text : c.kinds) {
      std::string problem;
      if (auto r = parse_kind_rule(text, problem)) {
        rules.push_back(std::move(*r));
      } else {
        throw Error(ErrorKind::usage, "features.kinds: rule '" + text + "': " + problem);
      }
    }
    const double m = pixel_size_in_metres(grid);
    px_per_m = m > 0 ? 1.0 / m : 1.0;
  }
  double default_width_m(FeatureKind k) const {
    switch (k) {
      case FeatureKind::road:
        return config.road_width_m;
      case FeatureKind::rail:
        return config.rail_width_m;
      default:
        return config.line_width_m;
    }
  }
};

/// Lines: one feature per segment (corridor rings + centerline). Returns how many were added.
int add_line_segments(const OGRGeometry* g, const std::string& sid, FeatureKind kind,
                      double width_m, const FeatureRules& rules, const Grid& grid,
                      FootprintSet& set) {
  const auto parts = line_parts_in_pixels(g, grid);
  const double seg_px = rules.config.segment_length_m * rules.px_per_m;
  const double half_width_px = 0.5 * width_m * rules.px_per_m;
  int segment = 0;
  for (const auto& part : parts) {
    double length = 0;
    for (std::size_t i = 1; i < part.size(); ++i) length += cv::norm(part[i] - part[i - 1]);
    if (!(length > 0) || !std::isfinite(length)) continue;
    const int pieces = std::max(1, static_cast<int>(std::ceil(length / seg_px - 1e-9)));
    for (auto& piece : cut_polyline(part, pieces)) {
      OGRLineString line;
      for (const auto& p : piece) line.addPoint(p.x, p.y);
      ErrorCapture cap;
      GeomPtr corridor(line.Buffer(half_width_px, 8));
      Footprint fp;
      if (!corridor || !pixel_polygons_to_footprint(corridor.get(), grid, fp)) {
        set.warnings.push_back("feature " + sid + ": segment " + std::to_string(segment) +
                               " cannot be buffered, skipped");
        ++segment;
        continue;
      }
      fp.source_id = sid;
      fp.kind = kind;
      fp.source_geometry = SourceGeometry::line;
      fp.segment = segment++;
      fp.centerline_wkt = polyline_wkt(piece, grid);  // rounds `piece` through the map coordinates
      fp.centerline = {piece};
      finalize_geometry(fp);
      fp.id = static_cast<std::int64_t>(set.features.size());
      set.features.push_back(std::move(fp));
    }
  }
  return segment;
}

/// Points: one disc per point of the geometry (a multipoint gives one feature of several discs).
bool add_point(const OGRGeometry* g, const std::string& sid, FeatureKind kind,
               const FeatureRules& rules, const Grid& grid, FootprintSet& set) {
  OGRMultiPolygon discs;
  const auto add = [&](const OGRPoint* p) {
    const cv::Point2d px = grid.map_to_pixel(p->getX(), p->getY());
    OGRPoint centre(px.x, px.y);
    ErrorCapture cap;
    GeomPtr disc(centre.Buffer(rules.config.point_radius_m * rules.px_per_m, 8));
    if (disc && wkbFlatten(disc->getGeometryType()) == wkbPolygon)
      discs.addGeometryDirectly(disc.release());
  };
  if (wkbFlatten(g->getGeometryType()) == wkbPoint) {
    add(g->toPoint());
  } else {
    const auto* m = g->toMultiPoint();
    for (int i = 0; i < m->getNumGeometries(); ++i) add(m->getGeometryRef(i));
  }
  // Overlapping discs of one multipoint are one area.
  GeomPtr area(discs.getNumGeometries() > 1 ? discs.UnionCascaded() : discs.clone());
  Footprint fp;
  if (!area || !pixel_polygons_to_footprint(area.get(), grid, fp)) {
    set.warnings.push_back("feature " + sid + ": point cannot be buffered, skipped");
    return false;
  }
  fp.source_id = sid;
  fp.kind = kind;
  fp.source_geometry = SourceGeometry::point;
  finalize_geometry(fp);
  fp.id = static_cast<std::int64_t>(set.features.size());
  set.features.push_back(std::move(fp));
  return true;
}

/// Leading number of an attribute such as "7", "7.5" or "7 m"; 0 if none.
double leading_number(const char* text) {
  if (!text) return 0;
  char* end = nullptr;
  const double v = std::strtod(text, &end);
  return end != text && std::isfinite(v) && v > 0 ? v : 0;
}

std::unique_ptr<OGRSpatialReference> wgs84() {
  auto srs = std::make_unique<OGRSpatialReference>();
  srs->importFromEPSG(4326);
  srs->SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  return srs;
}

/// A transformation from `from` to the grid CRS, or nullptr when they are the same.
io_detail::TransformPtr transform_to_grid(const OGRSpatialReference& from, const Grid& grid,
                                          const std::string& path) {
  auto to = io_detail::srs_from(grid.crs_wkt);
  if (!to) throw Error(ErrorKind::input, path + ": the analysis grid has an unreadable CRS");
  if (from.IsSame(to.get())) return nullptr;
  ErrorCapture cap;
  io_detail::TransformPtr ct(OGRCreateCoordinateTransformation(&from, to.get()));
  if (!ct) {
    throw Error(
        ErrorKind::input,
        with_reason(path + ": no coordinate transformation to the grid CRS", cap.message()));
  }
  return ct;
}

/// Reprojects in place; false (with a warning) if the transformation fails.
bool reproject(OGRGeometry* g, OGRCoordinateTransformation* ct, const std::string& sid,
               std::vector<std::string>& warnings) {
  if (!g || !ct || g->IsEmpty()) return true;
  ErrorCapture cap;
  if (g->transform(ct) != OGRERR_NONE) {
    warnings.push_back(with_reason(
        "feature " + sid + ": cannot be reprojected to the grid CRS, skipped", cap.message()));
    return false;
  }
  return true;
}

std::string read_head(const std::string& path, std::size_t n) {
  std::ifstream in(path, std::ios::binary);
  std::string s(n, '\0');
  in.read(s.data(), static_cast<std::streamsize>(n));
  s.resize(static_cast<std::size_t>(std::max<std::streamsize>(in.gcount(), 0)));
  return s;
}

bool looks_like_json(const std::string& head) {
  const auto p = head.find_first_not_of(" \t\r\n");
  return p != std::string::npos && head[p] == '{';
}

nlohmann::json parse_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorKind::input, path + ": cannot be read");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorKind::input, path + ": malformed JSON (" + std::string(e.what()) + ")");
  }
}

bool is_xbd(const nlohmann::json& j) {
  if (!j.is_object()) return false;
  auto f = j.find("features");
  if (f == j.end() || !f->is_object()) return false;
  auto xy = f->find("xy");
  auto ll = f->find("lng_lat");
  return xy != f->end() && ll != f->end() && xy->is_array() && ll->is_array();
}

std::string json_string(const nlohmann::json& obj, const char* key) {
  if (!obj.is_object()) return {};
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return {};
  if (it->is_string()) return it->get<std::string>();
  return it->dump();
}

FootprintSet read_xbd(const std::string& path, const nlohmann::json& j, const Grid& grid,
                      const FootprintOptions& options) {
  FootprintSet set;
  const bool geo = grid.georeferenced();
  const auto& items = j["features"][geo ? "lng_lat" : "xy"];
  std::unique_ptr<OGRSpatialReference> src;
  io_detail::TransformPtr ct;
  if (geo) {
    src = wgs84();
    ct = transform_to_grid(*src, grid, path);
  }
  int index = 0;
  for (const auto& item : items) {
    const int this_index = index++;
    if (!item.is_object()) continue;
    const nlohmann::json props =
        item.contains("properties") ? item["properties"] : nlohmann::json::object();
    const std::string ftype = json_string(props, "feature_type");
    if (!ftype.empty() && ftype != "building") continue;
    std::string sid = options.id_field.empty() ? json_string(props, "uid")
                                               : json_string(props, options.id_field.c_str());
    if (sid.empty()) sid = std::to_string(this_index);
    const std::string wkt = json_string(item, "wkt");
    GeomPtr geom;
    if (!wkt.empty()) {
      ErrorCapture cap;
      OGRGeometry* g = nullptr;
      if (OGRGeometryFactory::createFromWkt(wkt.c_str(), nullptr, &g) != OGRERR_NONE) {
        delete g;
        set.warnings.push_back("feature " + sid + ": unreadable WKT, skipped");
        continue;
      }
      geom.reset(g);
    }
    if (geom && geo) {
      const OGREnvelope env = [&] {
        OGREnvelope e;
        geom->getEnvelope(&e);
        return e;
      }();
      if (!geom->IsEmpty() &&
          (env.MinX < -180 || env.MaxX > 180 || env.MinY < -90 || env.MaxY > 90)) {
        throw Error(ErrorKind::input,
                    path + ": feature " + sid + ": lng_lat coordinates out of range for EPSG:4326");
      }
      if (!reproject(geom.get(), ct.get(), sid, set.warnings)) continue;
    }
    Footprint fp;
    if (!to_footprint(std::move(geom), sid, grid, fp, set.warnings)) continue;
    fp.kind = FeatureKind::building;
    fp.truth = damage_class_from_xbd(json_string(props, "subtype"));
    fp.id = static_cast<std::int64_t>(set.features.size());
    set.features.push_back(std::move(fp));
  }
  return set;
}

FootprintSet read_ogr(const std::string& path, const Grid& grid, const FootprintOptions& options,
                      bool json_like) {
  io_detail::DatasetPtr ds;
  {
    ErrorCapture cap;
    ds.reset(GDALOpenEx(path.c_str(), GDAL_OF_VECTOR | GDAL_OF_READONLY | GDAL_OF_VERBOSE_ERROR,
                        nullptr, nullptr, nullptr));
    if (!ds) {
      if (json_like) (void)parse_json_file(path);  // a JSON syntax error is the better reason
      throw Error(ErrorKind::input,
                  with_reason(path + ": cannot be read as a vector file", cap.message()));
    }
  }
  GDALDataset* d = GDALDataset::FromHandle(io_detail::get(ds));
  std::vector<std::string> names;
  for (int i = 0; i < d->GetLayerCount(); ++i) names.emplace_back(d->GetLayer(i)->GetName());
  OGRLayer* layer = nullptr;
  if (!options.layer.empty()) {
    layer = d->GetLayerByName(options.layer.c_str());
    if (!layer) {
      throw Error(ErrorKind::input,
                  path + ": no layer named '" + options.layer + "' (layers: " + join(names) + ")");
    }
  } else if (names.empty()) {
    throw Error(ErrorKind::input, path + ": no vector layers");
  } else if (names.size() > 1) {
    throw Error(ErrorKind::input, path + ": " + std::to_string(names.size()) +
                                      " layers, choose one (footprints layer): " + join(names));
  } else {
    layer = d->GetLayer(0);
  }

  // CRS handling.
  const OGRSpatialReference* lsrs = layer->GetSpatialRef();
  if (!grid.georeferenced()) {
    throw Error(ErrorKind::input,
                path +
                    ": footprints need a georeferenced scene (the analysis grid is a "
                    "plain pixel grid; only xBD label JSON can give pixel polygons)");
  }
  std::unique_ptr<OGRSpatialReference> src;
  const bool assumed_wgs84 = lsrs == nullptr || lsrs->IsEmpty();
  if (assumed_wgs84) {
    src = wgs84();
  } else {
    src.reset(lsrs->Clone());
    src->SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  }
  auto ct = transform_to_grid(*src, grid, path);
  // Geographic coordinates must be lon/lat; a GeoJSON without a crs member is EPSG:4326 by RFC 7946
  // (OGR reports it so), and projected coordinates there are the usual mistake.
  const bool check_range = assumed_wgs84 || src->IsGeographic();
  const char* auth = src->GetAuthorityCode(nullptr);
  const std::string crs_label =
      assumed_wgs84 || (auth && std::string(auth) == "4326")
          ? std::string("EPSG:4326")
          : "the geographic CRS " + std::string(src->GetName() ? src->GetName() : "");

  // Id and truth fields.
  OGRFeatureDefn* defn = layer->GetLayerDefn();
  int id_idx = -1;
  if (!options.id_field.empty()) {
    id_idx = defn->GetFieldIndex(options.id_field.c_str());
    if (id_idx < 0) {
      std::vector<std::string> fields;
      for (int i = 0; i < defn->GetFieldCount(); ++i)
        fields.emplace_back(defn->GetFieldDefn(i)->GetNameRef());
      throw Error(ErrorKind::input,
                  path + ": no field '" + options.id_field + "' (fields: " + join(fields) + ")");
    }
  } else {
    id_idx = defn->GetFieldIndex("id");
    if (id_idx < 0) id_idx = defn->GetFieldIndex("uid");
  }
  const int subtype_idx = defn->GetFieldIndex("subtype");
  const FeatureRules rules(options.features, grid);
  std::vector<int> rule_fields;
  for (const auto& r : rules.rules) rule_fields.push_back(defn->GetFieldIndex(r.attribute.c_str()));
  const int width_idx = options.features.width_attribute.empty()
                            ? -1
                            : defn->GetFieldIndex(options.features.width_attribute.c_str());

  FootprintSet set;
  ErrorCapture cap;
  // Room for every feature at once when the driver knows the count cheaply: growing by doubling
  // holds two copies at the moment it moves (28 MB at peak for 88k footprints) and leaves holes.
  // The count comes from the file (a FlatGeobuf header states it): never trust it beyond what
  // the file's size could hold (a feature takes well over 64 bytes in any format).
  if (const GIntBig count = layer->GetFeatureCount(FALSE); count > 0) {
    std::error_code ec;
    const auto bytes = std::filesystem::file_size(path, ec);
    if (!ec) {
      const auto most = static_cast<GIntBig>(std::min<std::uintmax_t>(bytes / 64, std::uintmax_t{1} << 22));
      set.features.reserve(static_cast<std::size_t>(std::min(count, most)));
    }
  }
  layer->ResetReading();
  std::int64_t n_read = 0, n_points_lines = 0;  // a file of points or lines only is an error
  std::string point_line_type;
  while (true) {
    OGRFeatureUniquePtr f(layer->GetNextFeature());
    if (!f) break;
    ++n_read;
    if (const OGRGeometry* g = f->GetGeometryRef(); g && !g->IsEmpty()) {
      const auto t = wkbFlatten(g->getGeometryType());
      if (t == wkbPoint || t == wkbMultiPoint || t == wkbLineString || t == wkbMultiLineString) {
        ++n_points_lines;
        if (point_line_type.empty()) point_line_type = OGRGeometryTypeToName(t);
      }
    }
    std::string sid;
    if (id_idx >= 0 && f->IsFieldSetAndNotNull(id_idx)) sid = f->GetFieldAsString(id_idx);
    if (sid.empty()) sid = std::to_string(f->GetFID());
    GeomPtr geom(f->StealGeometry());
    if (geom && !geom->IsEmpty() && check_range) {
      OGREnvelope e;
      geom->getEnvelope(&e);
      if (e.MinX < -180 || e.MaxX > 180 || e.MinY < -90 || e.MaxY > 90) {
        throw Error(ErrorKind::input, path + ": feature " + sid +
                                          ": coordinates out of range for " + crs_label +
                                          " (a projected CRS without a crs member?)");
      }
    }
    if (geom && !reproject(geom.get(), ct.get(), sid, set.warnings)) continue;
    // The first rule whose attribute has a matching value gives the kind.
    std::optional<FeatureKind> kind;
    for (std::size_t r = 0; r < rules.rules.size() && !kind; ++r) {
      const int field = rule_fields[r];
      if (field >= 0 && f->IsFieldSetAndNotNull(field) &&
          rules.rules[r].matches(f->GetFieldAsString(field))) {
        kind = rules.rules[r].kind;
      }
    }
    const auto gtype = geom && !geom->IsEmpty() ? wkbFlatten(geom->getGeometryType()) : wkbUnknown;
    if (gtype == wkbLineString || gtype == wkbMultiLineString || gtype == wkbPoint ||
        gtype == wkbMultiPoint) {
      const bool is_line = gtype == wkbLineString || gtype == wkbMultiLineString;
      if (!kind) {
        set.warnings.push_back("feature " + sid + ": " +
                               OGRGeometryTypeToName(geom->getGeometryType()) +
                               " skipped (no features.kinds rule matches its attributes; e.g. " +
                               (is_line ? "highway=*" : "amenity=hospital") + ")");
        continue;
      }
      ErrorCapture geom_cap;
      if (is_line) {
        double width = rules.default_width_m(*kind);
        if (width_idx >= 0 && f->IsFieldSetAndNotNull(width_idx)) {
          if (const double w = leading_number(f->GetFieldAsString(width_idx)); w > 0) width = w;
        }
        add_line_segments(geom.get(), sid, *kind, width, rules, grid, set);
      } else {
        add_point(geom.get(), sid, *kind, rules, grid, set);
      }
      continue;
    }
    Footprint fp;
    if (!to_footprint(std::move(geom), sid, grid, fp, set.warnings)) continue;
    fp.kind = kind.value_or(FeatureKind::building);
    if (subtype_idx >= 0 && f->IsFieldSetAndNotNull(subtype_idx)) {
      fp.truth = damage_class_from_xbd(f->GetFieldAsString(subtype_idx));
    }
    fp.id = static_cast<std::int64_t>(set.features.size());
    set.features.push_back(std::move(fp));
  }
  cap.check(ErrorKind::input, path + ": error while reading features");
  if (set.features.empty() && n_read > 0 && n_points_lines == n_read) {
    throw Error(ErrorKind::input, path + ": expected Polygon/MultiPolygon footprints, got " +
                                      point_line_type + " (all " + std::to_string(n_read) +
                                      " features are points or lines)");
  }
  return set;
}

}  // namespace

namespace {

/// Renumbers repeated (source id, segment) pairs: the second "a" becomes "a~2", and so on.
void renumber_duplicates(FootprintSet& set, const std::string& path) {
  std::unordered_map<std::string, int> seen;
  seen.reserve(set.features.size());
  std::vector<std::string> renamed;
  std::int64_t count = 0;
  for (auto& f : set.features) {
    const std::string key = f.source_id + '\x1f' + std::to_string(f.segment);
    int& n = seen[key];
    if (f.segment > 0) continue;  // later segments of one line share its id by design
    ++n;
    if (n == 1) continue;
    std::string fresh = f.source_id + "~" + std::to_string(n);
    while (seen.count(fresh + '\x1f' + std::to_string(f.segment))) fresh += "~";
    seen[fresh + '\x1f' + std::to_string(f.segment)] = 1;
    // The other segments of this line follow with the same source id: rename them too.
    const std::string old = f.source_id;
    for (auto* g = &f; g != set.features.data() + set.features.size() && g->source_id == old &&
                       (g == &f || g->segment > 0);
         ++g) {
      g->source_id = fresh;
    }
    if (renamed.size() < 5) renamed.push_back(old + " -> " + fresh);
    ++count;
  }
  if (count > 0) {
    set.warnings.push_back(path + ": " + std::to_string(count) +
                           " duplicate feature id(s) renumbered (" + join(renamed) +
                           (count > 5 ? ", ..." : "") + ")");
  }
}

}  // namespace

bool is_xbd_label_file(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return false;
  const std::string head = read_head(path, 1 << 16);
  if (!looks_like_json(head) ||
      (head.find("\"lng_lat\"") == std::string::npos && head.find("\"xy\"") == std::string::npos)) {
    return false;
  }
  try {
    return is_xbd(parse_json_file(path));
  } catch (const Error&) {
    return false;
  }
}

FootprintSet read_footprints(const std::string& path, const Grid& grid,
                             const FootprintOptions& options) {
  init_gdal();
  const bool special = path.rfind("/vsi", 0) == 0;
  std::error_code ec;
  if (!special) {
    if (!fs::exists(path, ec)) throw Error(ErrorKind::input, path + ": does not exist");
    if (fs::is_regular_file(path, ec) && fs::file_size(path, ec) == 0 && !ec) {
      throw Error(ErrorKind::input, path + ": empty file");
    }
  }
  FootprintSet set;
  bool json_like = false;
  if (!special && fs::is_regular_file(path, ec)) {
    const std::string head = read_head(path, 1 << 16);
    json_like = looks_like_json(head);
    // The key names appear near the start, in either order (the first array can be long).
    if (json_like && (head.find("\"lng_lat\"") != std::string::npos ||
                      head.find("\"xy\"") != std::string::npos)) {
      const auto j = parse_json_file(path);
      if (is_xbd(j)) {
        set = read_xbd(path, j, grid, options);
        if (set.features.empty()) set.warnings.push_back("no features in " + path);
        renumber_duplicates(set, path);
        return set;
      }
    }
  }
  set = read_ogr(path, grid, options, json_like);
  if (set.features.empty()) set.warnings.push_back("no features in " + path);
  renumber_duplicates(set, path);
  return set;
}

}  // namespace aftermath
