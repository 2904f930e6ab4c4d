#include "aftermath/io/footprints.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include <cpl_conv.h>
#include <gdal.h>
#include <gdal_priv.h>
#include <nlohmann/json.hpp>
#include <ogr_geometry.h>
#include <ogrsf_frmts.h>

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

/// Appends clones of the polygon parts of `g` to `out`; counts the non-polygon parts dropped.
void collect_polygons(const OGRGeometry* g, std::vector<std::unique_ptr<OGRPolygon>>& out, int& dropped) {
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
      for (int i = 0; i < gc->getNumGeometries(); ++i) collect_polygons(gc->getGeometryRef(i), out, dropped);
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
    {
      OGRErr werr = OGRERR_NONE;
      const OGRGeometry* out = multi.get();
      if (multi->getNumGeometries() == 1) out = multi->getGeometryRef(0);
      fp.wkt = out->exportToWkt(OGRWktOptions(), &werr);
      if (werr != OGRERR_NONE) fp.wkt.clear();
    }
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
    throw Error(ErrorKind::input,
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
    warnings.push_back(with_reason("feature " + sid + ": cannot be reprojected to the grid CRS, skipped",
                                   cap.message()));
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
    const nlohmann::json props = item.contains("properties") ? item["properties"] : nlohmann::json::object();
    const std::string ftype = json_string(props, "feature_type");
    if (!ftype.empty() && ftype != "building") continue;
    std::string sid = options.id_field.empty() ? json_string(props, "uid") : json_string(props, options.id_field.c_str());
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
      const OGREnvelope env = [&] { OGREnvelope e; geom->getEnvelope(&e); return e; }();
      if (!geom->IsEmpty() && (env.MinX < -180 || env.MaxX > 180 || env.MinY < -90 || env.MaxY > 90)) {
        throw Error(ErrorKind::input, path + ": feature " + sid + ": lng_lat coordinates out of range for EPSG:4326");
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
      throw Error(ErrorKind::input, with_reason(path + ": cannot be read as a vector file", cap.message()));
    }
  }
  GDALDataset* d = GDALDataset::FromHandle(io_detail::get(ds));
  std::vector<std::string> names;
  for (int i = 0; i < d->GetLayerCount(); ++i) names.emplace_back(d->GetLayer(i)->GetName());
  OGRLayer* layer = nullptr;
  if (!options.layer.empty()) {
    layer = d->GetLayerByName(options.layer.c_str());
    if (!layer) {
      throw Error(ErrorKind::input, path + ": no layer named '" + options.layer + "' (layers: " + join(names) + ")");
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
    throw Error(ErrorKind::input, path + ": footprints need a georeferenced scene (the analysis grid is a "
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
  const std::string crs_label = assumed_wgs84 || (auth && std::string(auth) == "4326")
                                    ? std::string("EPSG:4326")
                                    : "the geographic CRS " + std::string(src->GetName() ? src->GetName() : "");

  // Id and truth fields.
  OGRFeatureDefn* defn = layer->GetLayerDefn();
  int id_idx = -1;
  if (!options.id_field.empty()) {
    id_idx = defn->GetFieldIndex(options.id_field.c_str());
    if (id_idx < 0) {
      std::vector<std::string> fields;
      for (int i = 0; i < defn->GetFieldCount(); ++i) fields.emplace_back(defn->GetFieldDefn(i)->GetNameRef());
      throw Error(ErrorKind::input, path + ": no field '" + options.id_field + "' (fields: " + join(fields) + ")");
    }
  } else {
    id_idx = defn->GetFieldIndex("id");
    if (id_idx < 0) id_idx = defn->GetFieldIndex("uid");
  }
  const int subtype_idx = defn->GetFieldIndex("subtype");

  FootprintSet set;
  ErrorCapture cap;
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
                                          ": coordinates out of range for " +
                                          crs_label +
                                          " (a projected CRS without a crs member?)");
      }
    }
    if (geom && !reproject(geom.get(), ct.get(), sid, set.warnings)) continue;
    Footprint fp;
    if (!to_footprint(std::move(geom), sid, grid, fp, set.warnings)) continue;
    fp.kind = FeatureKind::building;
    if (subtype_idx >= 0 && f->IsFieldSetAndNotNull(subtype_idx)) {
      fp.truth = damage_class_from_xbd(f->GetFieldAsString(subtype_idx));
    }
    fp.id = static_cast<std::int64_t>(set.features.size());
    set.features.push_back(std::move(fp));
  }
  cap.check(ErrorKind::input, path + ": error while reading features");
  if (set.features.empty() && n_read > 0 && n_points_lines == n_read) {
    throw Error(ErrorKind::input, path + ": expected Polygon/MultiPolygon footprints, got " + point_line_type +
                                      " (all " + std::to_string(n_read) + " features are points or lines)");
  }
  return set;
}

}  // namespace

FootprintSet read_footprints(const std::string& path, const Grid& grid, const FootprintOptions& options) {
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
    if (json_like && head.find("\"lng_lat\"") != std::string::npos) {
      const auto j = parse_json_file(path);
      if (is_xbd(j)) {
        set = read_xbd(path, j, grid, options);
        if (set.features.empty()) set.warnings.push_back("no features in " + path);
        return set;
      }
    }
  }
  set = read_ogr(path, grid, options, json_like);
  if (set.features.empty()) set.warnings.push_back("no features in " + path);
  return set;
}

}  // namespace aftermath
