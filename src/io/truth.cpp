// Reference labels for evaluate: xBD JSON, OGR polygons/points with a class attribute.
#include "aftermath/io/truth.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>

#include <gdal_priv.h>
#include <ogr_geometry.h>
#include <ogrsf_frmts.h>

#include "aftermath/core/error.hpp"
#include "aftermath/io/footprints.hpp"
#include "aftermath/io/scene.hpp"
#include "gdal_util.hpp"

namespace aftermath {

using io_detail::ErrorCapture;

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const auto b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

bool point_inside(const OGRGeometry* g, cv::Point2d& out) {
  if (!g || g->IsEmpty()) return false;
  const auto t = wkbFlatten(g->getGeometryType());
  if (t == wkbPoint) {
    const OGRPoint* p = g->toPoint();
    out = {p->getX(), p->getY()};
    return true;
  }
  if (t == wkbPolygon || t == wkbMultiPolygon) {
    ErrorCapture cap;
    OGRGeometryH h = OGR_G_PointOnSurface(OGRGeometry::ToHandle(const_cast<OGRGeometry*>(g)));
    if (!h) return false;
    std::unique_ptr<OGRGeometry> pt(OGRGeometry::FromHandle(h));
    if (pt->IsEmpty() || wkbFlatten(pt->getGeometryType()) != wkbPoint) return false;
    out = {pt->toPoint()->getX(), pt->toPoint()->getY()};
    return true;
  }
  return false;
}

std::string head_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string s(1 << 16, '\0');
  in.read(s.data(), static_cast<std::streamsize>(s.size()));
  s.resize(static_cast<std::size_t>(std::max<std::streamsize>(in.gcount(), 0)));
  return s;
}

}  // namespace

DamageClass damage_class_from_label(const std::string& value) {
  const std::string v = lower(value);
  const DamageClass x = damage_class_from_xbd(v);
  if (x != DamageClass::unclassified) return x;
  if (v == "0" || v == "no damage" || v == "no visible damage" || v == "none" || v == "undamaged") return DamageClass::no_damage;
  if (v == "1" || v == "possible damage" || v == "moderate damage" || v == "minor" || v == "moderate") return DamageClass::minor;
  if (v == "2" || v == "severe damage" || v == "major" || v == "severe") return DamageClass::major;
  if (v == "3" || v == "destroyed" || v == "destruction") return DamageClass::destroyed;
  return DamageClass::unclassified;
}

bool is_vector_truth(const std::string& path) {
  init_gdal();
  const std::string head = head_of(path);
  const auto p = head.find_first_not_of(" \t\r\n");
  if (p != std::string::npos && head[p] == '{') return true;
  ErrorCapture cap;
  GDALDatasetH ds = GDALOpenEx(path.c_str(), GDAL_OF_VECTOR | GDAL_OF_READONLY, nullptr, nullptr, nullptr);
  if (!ds) return false;
  const bool has_layers = GDALDatasetGetLayerCount(ds) > 0;
  GDALClose(ds);
  return has_layers;
}

TruthItems read_truth_vector(const std::string& path, const Grid& grid, const std::string& field,
                             const std::string& layer_name) {
  init_gdal();
  TruthItems out;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw Error(ErrorKind::input, path + ": does not exist");
  const std::string head = head_of(path);
  if (is_xbd_label_file(path)) {
    // xBD label JSON: its polygons through the footprint reader, the class from `subtype`.
    FootprintSet set = read_footprints(path, grid, {});
    out.kind = "xbd";
    out.warnings = set.warnings;
    for (const auto& f : set.features) {
      OGRGeometry* raw = nullptr;
      cv::Point2d m;
      if (OGRGeometryFactory::createFromWkt(f.wkt.c_str(), nullptr, &raw) == OGRERR_NONE && raw) {
        std::unique_ptr<OGRGeometry> g(raw);
        if (point_inside(g.get(), m)) {
          out.points.push_back(grid.map_to_pixel(m.x, m.y));
          out.classes.push_back(f.truth);
          continue;
        }
      } else {
        delete raw;
      }
      out.warnings.push_back("truth feature " + f.source_id + ": no interior point, skipped");
    }
    return out;
  }
  if (!grid.georeferenced()) {
    throw Error(ErrorKind::input, path + ": vector truth needs a georeferenced output (only xBD label JSON can "
                                         "give pixel polygons)");
  }
  io_detail::DatasetPtr ds;
  {
    ErrorCapture cap;
    ds.reset(GDALOpenEx(path.c_str(), GDAL_OF_VECTOR | GDAL_OF_READONLY, nullptr, nullptr, nullptr));
    if (!ds) throw Error(ErrorKind::input, io_detail::with_reason(path + ": cannot be read as a vector file", cap.message()));
  }
  GDALDataset* d = GDALDataset::FromHandle(io_detail::get(ds));
  OGRLayer* layer = layer_name.empty() ? (d->GetLayerCount() == 1 ? d->GetLayer(0) : nullptr)
                                       : d->GetLayerByName(layer_name.c_str());
  if (!layer) {
    throw Error(ErrorKind::input, path + (layer_name.empty() ? ": several layers, choose one (--truth-layer)"
                                                             : ": no layer named '" + layer_name + "'"));
  }
  OGRFeatureDefn* defn = layer->GetLayerDefn();
  int idx = -1;
  if (!field.empty()) {
    idx = defn->GetFieldIndex(field.c_str());
  } else {
    for (const char* f : {"subtype", "damage", "damage_class", "Main_Damage", "class"}) {
      if ((idx = defn->GetFieldIndex(f)) >= 0) break;
    }
  }
  if (idx < 0) {
    std::string fields;
    for (int i = 0; i < defn->GetFieldCount(); ++i) fields += std::string(i ? ", " : "") + defn->GetFieldDefn(i)->GetNameRef();
    throw Error(ErrorKind::input, path + ": no class field " + (field.empty() ? std::string("(subtype, damage)") : "'" + field + "'") +
                                      " (fields: " + fields + "); name it with --truth-field");
  }
  std::unique_ptr<OGRSpatialReference> src;
  const OGRSpatialReference* lsrs = layer->GetSpatialRef();
  src = std::make_unique<OGRSpatialReference>();
  if (lsrs && !lsrs->IsEmpty()) src.reset(lsrs->Clone());
  else src->importFromEPSG(4326);
  src->SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  auto to = io_detail::srs_from(grid.crs_wkt);
  if (!to) throw Error(ErrorKind::input, path + ": the output's grid has an unreadable CRS");
  io_detail::TransformPtr ct;
  if (!src->IsSame(to.get())) ct.reset(OGRCreateCoordinateTransformation(src.get(), to.get()));
  int polygons = 0, points = 0;
  layer->ResetReading();
  while (true) {
    OGRFeatureUniquePtr f(layer->GetNextFeature());
    if (!f) break;
    std::unique_ptr<OGRGeometry> g(f->StealGeometry());
    if (!g || g->IsEmpty()) continue;
    if (ct) {
      ErrorCapture cap;
      if (g->transform(ct.get()) != OGRERR_NONE) {
        out.warnings.push_back("truth feature " + std::to_string(f->GetFID()) + ": cannot be reprojected, skipped");
        continue;
      }
    }
    const DamageClass c = f->IsFieldSetAndNotNull(idx) ? damage_class_from_label(f->GetFieldAsString(idx)) : DamageClass::unclassified;
    const auto t = wkbFlatten(g->getGeometryType());
    std::vector<cv::Point2d> pts;
    if (t == wkbMultiPoint) {
      const OGRMultiPoint* mp = g->toMultiPoint();
      for (int i = 0; i < mp->getNumGeometries(); ++i) pts.emplace_back(mp->getGeometryRef(i)->getX(), mp->getGeometryRef(i)->getY());
      ++points;
    } else {
      cv::Point2d m;
      if (!point_inside(g.get(), m)) {
        out.warnings.push_back("truth feature " + std::to_string(f->GetFID()) + ": not a point or polygon, skipped");
        continue;
      }
      pts.push_back(m);
      (t == wkbPoint ? points : polygons)++;
    }
    for (const auto& p : pts) {
      out.points.push_back(grid.map_to_pixel(p.x, p.y));
      out.classes.push_back(c);
    }
  }
  out.kind = points > polygons ? "points" : "polygons";
  return out;
}

}  // namespace aftermath
