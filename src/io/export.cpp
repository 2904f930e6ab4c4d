// Exports of an aftermath output: COG per layer, styled GeoPackage, GeoJSON, STAC Item.
// See include/aftermath/io/export.hpp and docs/exports.md.
#include "aftermath/io/export.hpp"

#include <cpl_conv.h>
#include <cpl_string.h>
#include <gdal.h>
#include <gdal_utils.h>
#include <hdf5.h>
#include <ogr_api.h>
#include <ogr_geometry.h>
#include <ogr_spatialref.h>
#include <ogrsf_frmts.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <sstream>

#include "aftermath/core/error.hpp"
#include "aftermath/core/footprint.hpp"
#include "aftermath/io/hdf5_reader.hpp"
#include "aftermath/io/scene.hpp"
#include "gdal_util.hpp"
#include "hdf5_util.hpp"

namespace aftermath {

using io_detail::ErrorCapture;
using io_detail::with_reason;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr int kCogBlock = 512;     // COG tile size
constexpr int kCopyWindow = 1024;  // HDF5 -> temporary GeoTIFF, window side (bounded memory)
constexpr const char* kCogMediaType = "image/tiff; application=geotiff; profile=cloud-optimized";

// ---- small helpers ---------------------------------------------------------------------------

/// A file written under a temporary name beside its target, removed unless committed.
class TempOutput {
 public:
  TempOutput(const fs::path& dir, const std::string& name, const std::string& ext)
      : final_((dir / (name + ext)).string()),
        temp_((dir / ("." + name + ".tmp-" + std::to_string(::getpid()) + ext)).string()) {
    std::error_code ec;
    fs::remove(temp_, ec);
  }
  ~TempOutput() {
    if (!committed_) {
      std::error_code ec;
      fs::remove(temp_, ec);
      fs::remove(temp_ + "-journal", ec);
      fs::remove(temp_ + "-wal", ec);
      fs::remove(temp_ + "-shm", ec);
      fs::remove(temp_ + ".aux.xml", ec);
    }
  }
  TempOutput(const TempOutput&) = delete;
  TempOutput& operator=(const TempOutput&) = delete;
  const std::string& temp() const { return temp_; }
  const std::string& final_path() const { return final_; }
  /// Renames the temporary file onto the target.
  void commit() {
    std::error_code ec;
    fs::rename(temp_, final_, ec);
    if (ec)
      throw Error(ErrorKind::output,
                  final_ + ": cannot rename " + temp_ + " onto it (" + ec.message() + ")");
    committed_ = true;
  }

 private:
  std::string final_, temp_;
  bool committed_ = false;
};

std::string fmt_number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

/// RFC 3339 date-time with a time zone (STAC's `datetime` format).
bool is_rfc3339(const std::string& s) {
  static const std::regex re(R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$)");
  return std::regex_match(s, re);
}

/// GDAL's IMAGERY ACQUISITIONDATETIME ("YYYY-MM-DD HH:MM:SS", UTC) as RFC 3339, or "".
std::string acquisition_datetime(const std::string& raster) {
  std::error_code ec;
  if (raster.empty() || !fs::is_regular_file(raster, ec)) return {};
  ErrorCapture cap;
  io_detail::DatasetPtr ds(
      GDALOpenEx(raster.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY, nullptr, nullptr, nullptr));
  if (!ds) return {};
  const char* v = GDALGetMetadataItem(io_detail::get(ds), "ACQUISITIONDATETIME", "IMAGERY");
  if (!v) return {};
  std::string s = v;
  if (s.size() == 19 && s[10] == ' ') s[10] = 'T';
  if (s.size() == 19) s += "Z";
  return is_rfc3339(s) ? s : std::string();
}

// ---- what the HDF5 file holds ----------------------------------------------------------------

struct LayerInfo {
  std::string name;
  bool is_float = true;  ///< float32 layers and CF-packed ones (exported unpacked as float32)
  /// CF packing (e.g. change_score: uint16 codes): value = code x scale + offset; the packed
  /// _FillValue becomes nodata -1 in the export.
  std::optional<double> packed_scale;
  double packed_offset = 0;
  double packed_fill = 0;
  std::optional<double> fill;
  std::string long_name, units, flag_meanings;
  std::vector<double> flag_values;
};

/// The 2-D datasets at the root (the layers), in creation order, with their flag_values (an array
/// attribute, which Hdf5Reader does not read).
std::vector<LayerInfo> list_layers(const std::string& path) {
  h5::silence_errors();
  h5::Handle file = h5::file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!file) throw Error(ErrorKind::input, path + ": cannot open (" + h5::last_error() + ")");
  std::vector<std::string> names;
  auto collect = [](hid_t, const char* name, const H5L_info_t*, void* data) -> herr_t {
    static_cast<std::vector<std::string>*>(data)->emplace_back(name);
    return 0;
  };
  hsize_t idx = 0;
  if (H5Literate(file.get(), H5_INDEX_CRT_ORDER, H5_ITER_INC, &idx, collect, &names) < 0) {
    names.clear();
    idx = 0;
    h5::last_error();
    if (H5Literate(file.get(), H5_INDEX_NAME, H5_ITER_INC, &idx, collect, &names) < 0) {
      throw Error(ErrorKind::input, path + ": cannot list its objects (" + h5::last_error() + ")");
    }
  }
  std::vector<LayerInfo> out;
  for (const auto& n : names) {
    h5::Handle d = h5::dataset(H5Dopen2(file.get(), n.c_str(), H5P_DEFAULT));
    if (!d) {  // a group (a table), not a dataset
      h5::last_error();
      continue;
    }
    h5::Handle s = h5::dataspace(H5Dget_space(d.get()));
    if (H5Sget_simple_extent_ndims(s.get()) != 2) continue;
    h5::Handle t = h5::datatype(H5Dget_type(d.get()));
    const H5T_class_t c = H5Tget_class(t.get());
    LayerInfo l;
    l.name = n;
    if (c == H5T_FLOAT && H5Tget_size(t.get()) == 4) {
      l.is_float = true;
    } else if (c == H5T_INTEGER && H5Tget_size(t.get()) == 1 &&
               H5Tget_sign(t.get()) == H5T_SGN_NONE) {
      l.is_float = false;
    } else if (c == H5T_INTEGER && H5Tget_size(t.get()) == 2 && H5Tget_sign(t.get()) == H5T_SGN_NONE &&
               H5Aexists(d.get(), "scale_factor") > 0) {
      l.is_float = true;
      l.packed_scale = 1.0;  // the value is read with the other attributes
    } else {
      continue;  // not a layer type aftermath writes
    }
    if (H5Aexists(d.get(), "flag_values") > 0) {
      h5::Handle a = h5::attribute(H5Aopen(d.get(), "flag_values", H5P_DEFAULT));
      h5::Handle as = h5::dataspace(H5Aget_space(a.get()));
      const hssize_t k = H5Sget_simple_extent_npoints(as.get());
      if (k > 0) {
        l.flag_values.resize(static_cast<std::size_t>(k));
        if (H5Aread(a.get(), H5T_NATIVE_DOUBLE, l.flag_values.data()) < 0) l.flag_values.clear();
      }
    }
    h5::last_error();
    out.push_back(std::move(l));
  }
  return out;
}

struct Provenance {
  std::string created, version, config_sha256, detector, input_pre, input_post, input_footprints;
  std::string pre_sha256, post_sha256, footprints_sha256;
  std::optional<double> threshold;
};

Provenance read_provenance(const Hdf5Reader& r) {
  Provenance p;
  auto s = [&](const char* name) { return r.string_attribute("/", name).value_or(""); };
  p.created = s("created");
  p.version = s("aftermath_version");
  p.config_sha256 = s("config_sha256");
  p.detector = s("detector");
  p.input_pre = s("input_pre");
  p.input_post = s("input_post");
  p.input_footprints = s("input_footprints");
  p.pre_sha256 = s("input_pre_sha256");
  p.post_sha256 = s("input_post_sha256");
  p.footprints_sha256 = s("input_footprints_sha256");
  p.threshold = r.number_attribute("/", "threshold");
  return p;
}

/// The /footprints table, as read back (columns that are absent are empty).
struct FeatureTable {
  std::size_t n = 0;
  std::vector<std::int64_t> id, pixels;
  std::vector<std::string> source_id, wkt;
  std::vector<std::uint8_t> kind, status, damage, truth;
  std::vector<double> area, coverage, valid_fraction, mean_score, changed_fraction, confidence;
  std::string area_units;
  /// Columns written by newer runs (issue 5), exported when present, by name.
  std::vector<std::pair<std::string, std::vector<double>>> extra_real;
  std::vector<std::pair<std::string, std::vector<std::int64_t>>> extra_int;
};

/// The /sites table (damage sites), as read back; n = 0 when absent.
struct SiteTable {
  std::size_t n = 0;
  std::vector<std::pair<std::string, std::vector<double>>> real;
  std::vector<std::int64_t> id, pixels;
  std::vector<std::string> wkt;
};

SiteTable read_sites(const Hdf5Reader& r) {
  SiteTable t;
  if (!r.has("sites/id")) return t;
  t.id = r.column_int64("sites/id");
  t.n = t.id.size();
  t.pixels = r.column_int64("sites/pixels");
  t.wkt = r.column_string("sites/geometry_wkt");
  for (const char* c : {"area", "mean_score", "max_score", "built_up_fraction"}) {
    if (r.has(std::string("sites/") + c)) t.real.emplace_back(c, r.column_double(std::string("sites/") + c));
  }
  bool ok = t.pixels.size() == t.n && t.wkt.size() == t.n;
  for (const auto& [name, v] : t.real) ok = ok && v.size() == t.n;
  if (!ok) throw Error(ErrorKind::input, "the /sites table has columns of different lengths");
  return t;
}

FeatureTable read_features(const Hdf5Reader& r) {
  FeatureTable t;
  if (!r.has("footprints/id")) return t;
  t.id = r.column_int64("footprints/id");
  t.n = t.id.size();
  auto d = [&](const char* c) {
    return r.has(std::string("footprints/") + c) ? r.column_double(std::string("footprints/") + c)
                                                 : std::vector<double>(t.n, 0.0);
  };
  auto u = [&](const char* c, std::uint8_t def) {
    return r.has(std::string("footprints/") + c) ? r.column_uint8(std::string("footprints/") + c)
                                                 : std::vector<std::uint8_t>(t.n, def);
  };
  auto s = [&](const char* c) {
    return r.has(std::string("footprints/") + c) ? r.column_string(std::string("footprints/") + c)
                                                 : std::vector<std::string>(t.n);
  };
  t.source_id = s("source_id");
  t.wkt = s("geometry_wkt");
  t.pixels = r.has("footprints/pixels") ? r.column_int64("footprints/pixels")
                                        : std::vector<std::int64_t>(t.n, 0);
  t.kind = u("kind", 0);
  t.status = u("status", 2);
  t.damage = u("damage_class", 255);
  if (r.has("footprints/truth_class")) t.truth = r.column_uint8("footprints/truth_class");
  t.area = d("area");
  t.coverage = d("coverage");
  t.valid_fraction = d("valid_fraction");
  t.mean_score = d("mean_score");
  t.changed_fraction = d("changed_fraction");
  t.confidence = d("confidence");
  t.area_units = r.string_attribute("/footprints/area", "units").value_or("");
  for (const char* c : {"median_score", "p90_score", "length", "length_changed_fraction", "misregistration"}) {
    if (r.has(std::string("footprints/") + c)) t.extra_real.emplace_back(c, d(c));
  }
  if (r.has("footprints/segment")) t.extra_int.emplace_back("segment", r.column_int64("footprints/segment"));
  for (const char* c : {"damage_grade", "damage_grade_high_precision", "damage_grade_high_recall"}) {
    if (!r.has(std::string("footprints/") + c)) continue;
    const auto v = u(c, 255);
    t.extra_int.emplace_back(c, std::vector<std::int64_t>(v.begin(), v.end()));
  }
  for (const auto& [name, v] : t.extra_real) {
    if (v.size() != t.n) throw Error(ErrorKind::input, "the /footprints table has columns of different lengths");
  }
  for (const auto& [name, v] : t.extra_int) {
    if (v.size() != t.n) throw Error(ErrorKind::input, "the /footprints table has columns of different lengths");
  }
  for (const auto* col : {&t.source_id, &t.wkt}) {
    if (col->size() != t.n)
      throw Error(ErrorKind::input, "the /footprints table has columns of different lengths");
  }
  for (const auto* col : {&t.kind, &t.status, &t.damage}) {
    if (col->size() != t.n)
      throw Error(ErrorKind::input, "the /footprints table has columns of different lengths");
  }
  for (const auto* col : {&t.area, &t.coverage, &t.valid_fraction, &t.mean_score,
                          &t.changed_fraction, &t.confidence}) {
    if (col->size() != t.n)
      throw Error(ErrorKind::input, "the /footprints table has columns of different lengths");
  }
  if (t.pixels.size() != t.n || (!t.truth.empty() && t.truth.size() != t.n)) {
    throw Error(ErrorKind::input, "the /footprints table has columns of different lengths");
  }
  return t;
}

const char* kind_name(std::uint8_t k) {
  return k <= 3 ? to_string(static_cast<FeatureKind>(k)) : "unknown";
}
const char* status_name(std::uint8_t s) {
  return s <= 2 ? to_string(static_cast<FeatureStatus>(s)) : "outside";
}
const char* class_name(std::uint8_t c) {
  return c <= 3 ? to_string(static_cast<DamageClass>(c)) : to_string(DamageClass::unclassified);
}

// ---- COG ---------------------------------------------------------------------------------------

/// Distinct colours for the values of a class layer (the fill value is transparent).
GDALColorTableH class_palette(const LayerInfo& l) {
  static const std::array<GDALColorEntry, 6> colours = {{{215, 215, 215, 255},
                                                         {215, 25, 28, 255},
                                                         {253, 174, 97, 255},
                                                         {255, 255, 191, 255},
                                                         {171, 217, 233, 255},
                                                         {44, 123, 182, 255}}};
  GDALColorTableH ct = GDALCreateColorTable(GPI_RGB);
  const GDALColorEntry clear{0, 0, 0, 0};
  for (int i = 0; i < 256; ++i) GDALSetColorEntry(ct, i, &clear);
  std::size_t k = 0;
  for (double v : l.flag_values) {
    const int i = static_cast<int>(v);
    if (i < 0 || i > 255 || (l.fill && static_cast<int>(*l.fill) == i)) continue;
    GDALSetColorEntry(ct, i, &colours[std::min(k++, colours.size() - 1)]);
  }
  return ct;
}

std::string write_cog(const Hdf5Reader& r, const Grid& grid, const LayerInfo& l,
                      const fs::path& dir, const std::string& stem, const Provenance& prov,
                      const std::string& h5_name) {
  const std::string name = stem + "_" + l.name;
  // 1. The layer into a temporary tiled GeoTIFF, window by window (never the whole layer).
  TempOutput src(dir, name + ".src", ".tif");
  TempOutput cog(dir, name, ".tif");
  const GDALDataType type = l.is_float ? GDT_Float32 : GDT_Byte;
  {
    ErrorCapture cap;
    const char* opts[] = {"TILED=YES", "BLOCKXSIZE=512",   "BLOCKYSIZE=512", "COMPRESS=DEFLATE",
                          "ZLEVEL=1",  "BIGTIFF=IF_SAFER", nullptr};
    io_detail::DatasetPtr ds(GDALCreate(GDALGetDriverByName("GTiff"), src.temp().c_str(),
                                        grid.width, grid.height, 1, type,
                                        const_cast<char**>(opts)));
    if (!ds)
      throw Error(
          ErrorKind::output,
          with_reason(cog.final_path() + ": cannot create a temporary GeoTIFF", cap.message()));
    GDALDatasetH h = io_detail::get(ds);
    if (grid.georeferenced()) {
      double gt[6];
      std::copy(grid.geotransform.begin(), grid.geotransform.end(), gt);
      GDALSetGeoTransform(h, gt);
      GDALSetProjection(h, grid.crs_wkt.c_str());
    } else {
      double gt[6] = {0, 1, 0, 0, 0, -1};  // pixel grid: x = column, y = -row (upright), no CRS
      GDALSetGeoTransform(h, gt);
    }
    GDALRasterBandH b = GDALGetRasterBand(h, 1);
    if (l.fill) GDALSetRasterNoDataValue(b, *l.fill);
    GDALSetDescription(b, l.name.c_str());
    if (!l.long_name.empty()) GDALSetMetadataItem(b, "long_name", l.long_name.c_str(), nullptr);
    if (!l.units.empty()) GDALSetMetadataItem(b, "units", l.units.c_str(), nullptr);
    if (!l.units.empty() && l.units != "1") GDALSetRasterUnitType(b, l.units.c_str());
    if (!l.flag_values.empty()) {
      std::string fv;
      for (double v : l.flag_values) fv += (fv.empty() ? "" : " ") + fmt_number(v);
      GDALSetMetadataItem(b, "flag_values", fv.c_str(), nullptr);
      if (!l.is_float) {
        GDALColorTableH ct = class_palette(l);
        GDALSetRasterColorTable(b, ct);
        GDALDestroyColorTable(ct);
      }
    }
    if (!l.flag_meanings.empty())
      GDALSetMetadataItem(b, "flag_meanings", l.flag_meanings.c_str(), nullptr);
    GDALSetMetadataItem(h, "source", h5_name.c_str(), nullptr);
    GDALSetMetadataItem(h, "layer", l.name.c_str(), nullptr);
    if (!prov.version.empty())
      GDALSetMetadataItem(h, "aftermath_version", prov.version.c_str(), nullptr);
    if (!prov.config_sha256.empty())
      GDALSetMetadataItem(h, "config_sha256", prov.config_sha256.c_str(), nullptr);
    if (!prov.created.empty()) GDALSetMetadataItem(h, "created", prov.created.c_str(), nullptr);
    for (int y = 0; y < grid.height; y += kCopyWindow) {
      for (int x = 0; x < grid.width; x += kCopyWindow) {
        const Window w{x, y, std::min(kCopyWindow, grid.width - x),
                       std::min(kCopyWindow, grid.height - y)};
        cv::Mat m = r.layer(l.name, w);
        if (l.packed_scale && m.type() == CV_16U) {  // unpack: code x scale + offset, fill -> nodata
          const cv::Mat fill = m == l.packed_fill;
          m.convertTo(m, CV_32F, *l.packed_scale, l.packed_offset);
          m.setTo(*l.fill, fill);
        }
        if ((m.type() == CV_32F) != l.is_float)
          throw Error(ErrorKind::internal, "layer " + l.name + ": unexpected type");
        if (GDALRasterIO(b, GF_Write, w.x, w.y, w.width, w.height, m.data, w.width, w.height, type,
                         0, 0) != CE_None) {
          throw Error(
              ErrorKind::output,
              with_reason(cog.final_path() + ": cannot write a temporary GeoTIFF", cap.message()));
        }
      }
    }
    GDALClose(static_cast<GDALDatasetH>(ds.release()));
    if (cap.failed()) {
      throw Error(
          ErrorKind::output,
          with_reason(cog.final_path() + ": cannot write a temporary GeoTIFF", cap.message()));
    }
  }
  // 2. GDAL's COG driver: tiled, DEFLATE + predictor (lossless), overviews.
  {
    ErrorCapture cap;
    io_detail::DatasetPtr in(GDALOpenEx(src.temp().c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY,
                                        nullptr, nullptr, nullptr));
    if (!in)
      throw Error(
          ErrorKind::output,
          with_reason(cog.final_path() + ": cannot reopen the temporary GeoTIFF", cap.message()));
    const std::string block = "BLOCKSIZE=" + std::to_string(kCogBlock);
    // Class layers: overviews by the nearest value (a class is never averaged); scores: average.
    const char* resampling = l.is_float ? "RESAMPLING=AVERAGE" : "RESAMPLING=NEAREST";
    const char* opts[] = {"COMPRESS=DEFLATE", "PREDICTOR=YES", "LEVEL=6",          block.c_str(),
                          "OVERVIEWS=AUTO",   resampling,      "BIGTIFF=IF_SAFER", nullptr};
    GDALDatasetH out =
        GDALCreateCopy(GDALGetDriverByName("COG"), cog.temp().c_str(), io_detail::get(in), FALSE,
                       const_cast<char**>(opts), nullptr, nullptr);
    if (out) GDALClose(out);
    if (!out || cap.failed()) {
      throw Error(ErrorKind::output,
                  with_reason(cog.final_path() + ": cannot write the COG", cap.message()));
    }
  }
  cog.commit();
  return cog.final_path();
}

// ---- GeoPackage --------------------------------------------------------------------------------

struct ClassStyle {
  int value;
  const char* label;
  const char* fill;  // r,g,b,a
};

constexpr std::array<ClassStyle, 5> kClassStyles = {
    {{0, "no damage", "26,150,65,200"},
     {1, "minor damage", "255,255,0,200"},
     {2, "major damage", "253,141,60,220"},
     {3, "destroyed", "215,25,28,230"},
     {255, "unclassified (no data / outside)", "160,160,160,90"}}};

std::string qml_fill_symbol(int index, const char* fill) {
  std::ostringstream s;
  const std::map<std::string, std::string> props = {
      {"color", fill},           {"outline_color", "35,35,35,255"}, {"outline_style", "solid"},
      {"outline_width", "0.26"}, {"outline_width_unit", "MM"},      {"style", "solid"},
      {"joinstyle", "bevel"}};
  s << "      <symbol type=\"fill\" name=\"" << index
    << "\" alpha=\"1\" clip_to_extent=\"1\" force_rhr=\"0\">\n"
    << "        <layer class=\"SimpleFill\" pass=\"0\" enabled=\"1\" locked=\"0\">\n"
    << "          <Option type=\"Map\">\n";
  for (const auto& [k, v] : props)
    s << "            <Option type=\"QString\" name=\"" << k << "\" value=\"" << v << "\"/>\n";
  s << "          </Option>\n";
  for (const auto& [k, v] : props) s << "          <prop k=\"" << k << "\" v=\"" << v << "\"/>\n";
  s << "        </layer>\n      </symbol>\n";
  return s.str();
}

/// A QGIS style (QML): categorised renderer on damage_class, one colour per xBD class.
std::string footprint_qml() {
  std::ostringstream s;
  s << "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
    << "<qgis version=\"3.28.0\" styleCategories=\"Symbology\">\n"
    << "  <renderer-v2 type=\"categorizedSymbol\" attr=\"damage_class\" symbollevels=\"0\" "
       "enableorderby=\"0\" "
       "forceraster=\"0\" referencescale=\"-1\">\n"
    << "    <categories>\n";
  for (std::size_t i = 0; i < kClassStyles.size(); ++i) {
    s << "      <category value=\"" << kClassStyles[i].value << "\" label=\""
      << kClassStyles[i].label << "\" symbol=\"" << i << "\" render=\"true\" type=\"long\"/>\n";
  }
  s << "    </categories>\n    <symbols>\n";
  for (std::size_t i = 0; i < kClassStyles.size(); ++i)
    s << qml_fill_symbol(static_cast<int>(i), kClassStyles[i].fill);
  s << "    </symbols>\n    <source-symbol>\n"
    << qml_fill_symbol(0, "190,190,190,255") << "    </source-symbol>\n"
    << "    <rotation/>\n    <sizescale/>\n  </renderer-v2>\n"
    << "  <blendMode>0</blendMode>\n  <featureBlendMode>0</featureBlendMode>\n"
    << "  <previewExpression>\"source_id\"</previewExpression>\n"
    << "  <layerGeometryType>2</layerGeometryType>\n</qgis>\n";
  return s.str();
}

void add_field(OGRLayer* layer, const char* name, OGRFieldType type, const std::string& path,
               int width = 0, OGRFieldSubType sub = OFSTNone) {
  OGRFieldDefn f(name, type);
  if (width > 0) f.SetWidth(width);
  f.SetSubType(sub);
  if (layer->CreateField(&f) != OGRERR_NONE)
    throw Error(ErrorKind::output, path + ": cannot create field " + std::string(name));
}

void set_real(OGRFeature& f, const char* name, double v) {
  if (std::isfinite(v))
    f.SetField(name, v);
  else
    f.SetFieldNull(f.GetFieldIndex(name));
}

/// Writes the `layer_styles` table QGIS reads (same schema as QGIS creates) with one default style.
void write_style_table(GDALDataset* ds, OGRLayer* target, const std::string& path) {
  char** lco = CSLSetNameValue(nullptr, "FID", "id");
  OGRLayer* st = ds->CreateLayer("layer_styles", nullptr, wkbNone, lco);
  CSLDestroy(lco);
  if (!st) throw Error(ErrorKind::output, path + ": cannot create the layer_styles table");
  add_field(st, "f_table_catalog", OFTString, path, 256);
  add_field(st, "f_table_schema", OFTString, path, 256);
  add_field(st, "f_table_name", OFTString, path, 256);
  add_field(st, "f_geometry_column", OFTString, path, 256);
  add_field(st, "styleName", OFTString, path, 30);
  add_field(st, "styleQML", OFTString, path);
  add_field(st, "styleSLD", OFTString, path);
  add_field(st, "useAsDefault", OFTInteger, path, 0, OFSTBoolean);
  add_field(st, "description", OFTString, path);
  add_field(st, "owner", OFTString, path, 30);
  add_field(st, "ui", OFTString, path, 30);
  {
    OGRFieldDefn f("update_time", OFTDateTime);
    f.SetDefault("CURRENT_TIMESTAMP");
    if (st->CreateField(&f) != OGRERR_NONE)
      throw Error(ErrorKind::output, path + ": cannot create field update_time");
  }
  OGRFeature row(st->GetLayerDefn());
  row.SetField("f_table_catalog", "");
  row.SetField("f_table_schema", "");
  row.SetField("f_table_name", target->GetName());
  row.SetField("f_geometry_column", target->GetGeometryColumn());
  row.SetField("styleName", "damage class");
  row.SetField("styleQML", footprint_qml().c_str());
  row.SetField("styleSLD", "");
  row.SetField("useAsDefault", 1);
  row.SetField("description", "aftermath: footprints coloured by damage class (xBD scale)");
  row.SetField("owner", "");
  if (st->CreateFeature(&row) != OGRERR_NONE)
    throw Error(ErrorKind::output, path + ": cannot write the style row");
}

/// Pixel coordinates (x = column, y = row) to the upright convention of the exports: y = -row.
void flip_rows(OGRGeometry* g) {
  if (!g || wkbFlatten(g->getGeometryType()) != wkbMultiPolygon) return;
  for (OGRPolygon* poly : *g->toMultiPolygon()) {
    for (OGRLinearRing* ring : *poly) {
      for (int i = 0; i < ring->getNumPoints(); ++i)
        ring->setPoint(i, ring->getX(i), -ring->getY(i));
    }
  }
}

std::int64_t write_geopackage(const FeatureTable& t, const SiteTable& sites, const Grid& grid, const std::string& tmp_path,
                              const std::string& final_path, std::vector<std::string>& warnings) {
  ErrorCapture cap;
  GDALDriver* drv = GetGDALDriverManager()->GetDriverByName("GPKG");
  if (!drv) throw Error(ErrorKind::output, final_path + ": GDAL has no GPKG driver");
  std::unique_ptr<GDALDataset> ds(drv->Create(tmp_path.c_str(), 0, 0, 0, GDT_Unknown, nullptr));
  if (!ds)
    throw Error(ErrorKind::output,
                with_reason(final_path + ": cannot create the GeoPackage", cap.message()));
  std::unique_ptr<OGRSpatialReference> srs;
  if (grid.georeferenced()) {
    srs = io_detail::srs_from(grid.crs_wkt);
    if (!srs) throw Error(ErrorKind::input, final_path + ": the grid CRS cannot be read");
  } else {
    // A plain pixel grid: an engineering (local) CRS in pixels, x = column, y = -row, as the COGs.
    srs = std::make_unique<OGRSpatialReference>();
    srs->SetLocalCS("aftermath pixel grid (x = column, y = -row)");
    srs->SetLinearUnits("pixel", 1.0);
  }
  char** lco = CSLSetNameValue(nullptr, "GEOMETRY_NAME", "geom");
  lco = CSLSetNameValue(lco, "DESCRIPTION",
                        "aftermath footprints: damage class and scores per feature");
  OGRLayer* layer = ds->CreateLayer("footprints", srs.get(), wkbMultiPolygon, lco);
  CSLDestroy(lco);
  if (!layer)
    throw Error(ErrorKind::output,
                with_reason(final_path + ": cannot create layer footprints", cap.message()));
  add_field(layer, "id", OFTInteger64, final_path);
  add_field(layer, "source_id", OFTString, final_path);
  add_field(layer, "kind", OFTString, final_path);
  add_field(layer, "status", OFTString, final_path);
  add_field(layer, "damage_class", OFTInteger, final_path);
  add_field(layer, "damage", OFTString, final_path);
  add_field(layer, "mean_score", OFTReal, final_path);
  add_field(layer, "changed_fraction", OFTReal, final_path);
  add_field(layer, "valid_fraction", OFTReal, final_path);
  add_field(layer, "coverage", OFTReal, final_path);
  add_field(layer, "confidence", OFTReal, final_path);
  add_field(layer, "area", OFTReal, final_path);
  add_field(layer, "pixels", OFTInteger64, final_path);
  for (const auto& c : t.extra_real) add_field(layer, c.first.c_str(), OFTReal, final_path);
  for (const auto& c : t.extra_int) add_field(layer, c.first.c_str(), OFTInteger64, final_path);
  const bool truth = !t.truth.empty();
  if (truth) {
    add_field(layer, "truth_class", OFTInteger, final_path);
    add_field(layer, "truth", OFTString, final_path);
  }
  std::int64_t without_geometry = 0, written = 0;
  if (ds->StartTransaction() != OGRERR_NONE)
    throw Error(ErrorKind::output, final_path + ": cannot start a transaction");
  for (std::size_t i = 0; i < t.n; ++i) {
    OGRFeature f(layer->GetLayerDefn());
    f.SetField("id", static_cast<GIntBig>(t.id[i]));
    f.SetField("source_id", t.source_id[i].c_str());
    f.SetField("kind", kind_name(t.kind[i]));
    f.SetField("status", status_name(t.status[i]));
    f.SetField("damage_class", static_cast<int>(t.damage[i]));
    f.SetField("damage", class_name(t.damage[i]));
    set_real(f, "mean_score", t.mean_score[i]);
    set_real(f, "changed_fraction", t.changed_fraction[i]);
    set_real(f, "valid_fraction", t.valid_fraction[i]);
    set_real(f, "coverage", t.coverage[i]);
    set_real(f, "confidence", t.confidence[i]);
    set_real(f, "area", t.area[i]);
    f.SetField("pixels", static_cast<GIntBig>(t.pixels[i]));
    for (const auto& c : t.extra_real) set_real(f, c.first.c_str(), c.second[i]);
    for (const auto& c : t.extra_int) f.SetField(c.first.c_str(), static_cast<GIntBig>(c.second[i]));
    if (truth) {
      f.SetField("truth_class", static_cast<int>(t.truth[i]));
      f.SetField("truth", class_name(t.truth[i]));
    }
    OGRGeometry* g = nullptr;
    if (!t.wkt[i].empty() &&
        OGRGeometryFactory::createFromWkt(t.wkt[i].c_str(), nullptr, &g) == OGRERR_NONE && g) {
      g = OGRGeometryFactory::forceToMultiPolygon(g);
      if (!grid.georeferenced()) flip_rows(g);
      f.SetGeometryDirectly(g);
    } else {
      delete g;
      ++without_geometry;
    }
    if (layer->CreateFeature(&f) != OGRERR_NONE) {
      throw Error(
          ErrorKind::output,
          with_reason(final_path + ": cannot write feature " + t.source_id[i], cap.message()));
    }
    ++written;
  }
  write_style_table(ds.get(), layer, final_path);
  if (sites.n > 0) {
    // Damage sites found without footprints: their outlines with their statistics.
    char** slco = CSLSetNameValue(nullptr, "GEOMETRY_NAME", "geom");
    slco = CSLSetNameValue(slco, "DESCRIPTION", "aftermath damage sites: connected parts of the damage mask");
    OGRLayer* sl = ds->CreateLayer("damage_sites", srs.get(), wkbMultiPolygon, slco);
    CSLDestroy(slco);
    if (!sl) throw Error(ErrorKind::output, with_reason(final_path + ": cannot create layer damage_sites", cap.message()));
    add_field(sl, "id", OFTInteger64, final_path);
    add_field(sl, "pixels", OFTInteger64, final_path);
    for (const auto& c : sites.real) add_field(sl, c.first.c_str(), OFTReal, final_path);
    for (std::size_t i = 0; i < sites.n; ++i) {
      OGRFeature f(sl->GetLayerDefn());
      f.SetField("id", static_cast<GIntBig>(sites.id[i]));
      f.SetField("pixels", static_cast<GIntBig>(sites.pixels[i]));
      for (const auto& c : sites.real) set_real(f, c.first.c_str(), c.second[i]);
      OGRGeometry* g = nullptr;
      if (OGRGeometryFactory::createFromWkt(sites.wkt[i].c_str(), nullptr, &g) == OGRERR_NONE && g) {
        g = OGRGeometryFactory::forceToMultiPolygon(g);
        if (!grid.georeferenced()) flip_rows(g);
        f.SetGeometryDirectly(g);
      } else {
        delete g;
      }
      if (sl->CreateFeature(&f) != OGRERR_NONE) {
        throw Error(ErrorKind::output, with_reason(final_path + ": cannot write damage site " +
                                                       std::to_string(sites.id[i]), cap.message()));
      }
    }
  }
  if (ds->CommitTransaction() != OGRERR_NONE) {
    throw Error(ErrorKind::output, with_reason(final_path + ": cannot commit", cap.message()));
  }
  GDALClose(GDALDataset::ToHandle(ds.release()));
  if (cap.failed()) {
    throw Error(ErrorKind::output,
                with_reason(final_path + ": cannot write the GeoPackage", cap.message()));
  }
  if (without_geometry > 0) {
    warnings.push_back(
        std::to_string(without_geometry) + " of " + std::to_string(t.n) +
        " features have no geometry in the HDF5 file (no geometry_wkt): written without geometry");
  }
  return written;
}

void write_geojson(const std::string& gpkg, const std::string& tmp_path,
                   const std::string& final_path) {
  ErrorCapture cap;
  io_detail::DatasetPtr src(
      GDALOpenEx(gpkg.c_str(), GDAL_OF_VECTOR | GDAL_OF_READONLY, nullptr, nullptr, nullptr));
  if (!src)
    throw Error(ErrorKind::output,
                with_reason(final_path + ": cannot reopen the GeoPackage", cap.message()));
  const char* argv[] = {"-f",   "GeoJSON",     "-t_srs",     "EPSG:4326",
                        "-lco", "RFC7946=YES", "-lco",       "WRITE_NAME=YES",
                        "-nln", "footprints",  "footprints", nullptr};
  GDALVectorTranslateOptions* opts =
      GDALVectorTranslateOptionsNew(const_cast<char**>(argv), nullptr);
  if (!opts) throw Error(ErrorKind::internal, with_reason("GeoJSON export options", cap.message()));
  GDALDatasetH in = io_detail::get(src);
  int usage_error = 0;
  GDALDatasetH out = GDALVectorTranslate(tmp_path.c_str(), nullptr, 1, &in, opts, &usage_error);
  GDALVectorTranslateOptionsFree(opts);
  if (out) GDALClose(out);
  if (!out || cap.failed()) {
    throw Error(ErrorKind::output,
                with_reason(final_path + ": cannot write GeoJSON", cap.message()));
  }
}

// ---- STAC Item ---------------------------------------------------------------------------------

/// The grid's outline in EPSG:4326 (edges densified), counter-clockwise, and its bbox.
struct Outline {
  json geometry;
  std::array<double, 4> bbox{};
};

std::optional<Outline> grid_outline_wgs84(const Grid& grid) {
  auto from = io_detail::srs_from(grid.crs_wkt);
  auto to = io_detail::srs_from("EPSG:4326");
  if (!from || !to) return std::nullopt;
  ErrorCapture cap;
  io_detail::TransformPtr ct(OGRCreateCoordinateTransformation(from.get(), to.get()));
  if (!ct) return std::nullopt;
  constexpr int kSteps = 16;
  std::vector<cv::Point2d> px;
  const double w = grid.width, h = grid.height;
  for (int i = 0; i < kSteps; ++i) px.emplace_back(0, h * i / kSteps);      // left edge, down
  for (int i = 0; i < kSteps; ++i) px.emplace_back(w * i / kSteps, h);      // bottom edge, right
  for (int i = 0; i < kSteps; ++i) px.emplace_back(w, h - h * i / kSteps);  // right edge, up
  for (int i = 0; i < kSteps; ++i) px.emplace_back(w - w * i / kSteps, 0);  // top edge, left
  std::vector<double> xs, ys;
  for (const auto& p : px) {
    const auto m = grid.pixel_to_map(p.x, p.y);
    xs.push_back(m.x);
    ys.push_back(m.y);
  }
  if (!ct->Transform(static_cast<int>(xs.size()), xs.data(), ys.data())) return std::nullopt;
  double area2 = 0;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const std::size_t j = (i + 1) % xs.size();
    area2 += xs[i] * ys[j] - xs[j] * ys[i];
  }
  std::vector<std::size_t> order(xs.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = area2 >= 0 ? i : order.size() - 1 - i;
  auto round7 = [](double v) { return std::round(v * 1e7) / 1e7; };
  json ring = json::array();
  Outline o;
  o.bbox = {1e300, 1e300, -1e300, -1e300};
  for (std::size_t k : order) {
    if (!std::isfinite(xs[k]) || !std::isfinite(ys[k])) return std::nullopt;
    ring.push_back({round7(xs[k]), round7(ys[k])});
    o.bbox[0] = std::min(o.bbox[0], xs[k]);
    o.bbox[1] = std::min(o.bbox[1], ys[k]);
    o.bbox[2] = std::max(o.bbox[2], xs[k]);
    o.bbox[3] = std::max(o.bbox[3], ys[k]);
  }
  ring.push_back(ring.front());
  for (auto& v : o.bbox) v = round7(v);
  o.geometry = {{"type", "Polygon"}, {"coordinates", json::array({ring})}};
  return o;
}

json epsg_of(const Grid& grid) {
  if (!grid.georeferenced()) return nullptr;
  auto srs = io_detail::srs_from(grid.crs_wkt);
  if (!srs) return nullptr;
  ErrorCapture cap;
  const char* name = srs->GetAuthorityName(nullptr);
  const char* code = srs->GetAuthorityCode(nullptr);
  if (!(name && code && std::string(name) == "EPSG") && srs->AutoIdentifyEPSG() == OGRERR_NONE) {
    name = srs->GetAuthorityName(nullptr);
    code = srs->GetAuthorityCode(nullptr);
  }
  if (name && code && std::string(name) == "EPSG") return std::atoi(code);
  return nullptr;
}

std::string relative_href(const fs::path& target, const fs::path& dir) {
  std::error_code ec;
  const fs::path rel = fs::relative(fs::absolute(target, ec), fs::absolute(dir, ec), ec);
  return ec || rel.empty() ? fs::absolute(target).string() : rel.generic_string();
}

json stac_item(const std::string& stem, const Grid& grid, const Provenance& prov,
               const ExportResult& res, const std::vector<LayerInfo>& layers,
               const std::string& h5_path, const fs::path& dir, const std::string& pre_dt,
               const std::string& post_dt, const FeatureTable& features) {
  json item;
  item["type"] = "Feature";
  item["stac_version"] = "1.0.0";
  item["stac_extensions"] = {"https://stac-extensions.github.io/processing/v1.1.0/schema.json",
                             "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
                             "https://stac-extensions.github.io/raster/v1.1.0/schema.json"};
  item["id"] = stem;
  const auto outline = grid.georeferenced() ? grid_outline_wgs84(grid) : std::nullopt;
  if (outline) {
    item["geometry"] = outline->geometry;
    item["bbox"] = outline->bbox;
  } else {
    item["geometry"] = nullptr;  // a plain pixel grid has no place on Earth
  }
  json p;
  const std::string created = is_rfc3339(prov.created) ? prov.created : std::string();
  if (!pre_dt.empty() && !post_dt.empty()) {
    p["datetime"] = nullptr;
    p["start_datetime"] = pre_dt;
    p["end_datetime"] = post_dt;
  } else {
    p["datetime"] = created;  // export_outputs checked that it is there
  }
  if (!created.empty()) p["created"] = created;
  p["title"] = "aftermath change and damage layers";
  p["aftermath:pre_datetime"] = pre_dt.empty() ? json(nullptr) : json(pre_dt);
  p["aftermath:post_datetime"] = post_dt.empty() ? json(nullptr) : json(post_dt);
  p["processing:software"] = {
      {"aftermath", prov.version.empty() ? std::string("unknown") : prov.version}};
  p["processing:lineage"] =
      "aftermath run: alignment, change detection (" +
      (prov.detector.empty() ? std::string("unknown detector") : prov.detector) +
      "), footprint classification";
  p["aftermath:config_sha256"] =
      prov.config_sha256.empty() ? json(nullptr) : json(prov.config_sha256);
  if (!prov.detector.empty()) p["aftermath:detector"] = prov.detector;
  if (prov.threshold) p["aftermath:threshold"] = *prov.threshold;
  json inputs = json::object();
  auto input = [&](const char* key, const std::string& path, const std::string& sha) {
    if (!path.empty())
      inputs[key] = {{"file", fs::path(path).filename().string()}, {"sha256", sha}};
  };
  input("pre", prov.input_pre, prov.pre_sha256);
  input("post", prov.input_post, prov.post_sha256);
  input("footprints", prov.input_footprints, prov.footprints_sha256);
  p["aftermath:inputs"] = inputs;
  p["aftermath:features"] = static_cast<std::int64_t>(features.n);
  std::array<std::int64_t, 4> counts{};
  for (std::uint8_t c : features.damage) {
    if (c < 4) ++counts[c];
  }
  p["aftermath:damage_counts"] = {{"no-damage", counts[0]},
                                  {"minor-damage", counts[1]},
                                  {"major-damage", counts[2]},
                                  {"destroyed", counts[3]}};
  p["proj:epsg"] = epsg_of(grid);
  p["proj:shape"] = {grid.height, grid.width};
  if (grid.georeferenced()) {
    const auto& g = grid.geotransform;
    p["proj:wkt2"] = grid.crs_wkt;
    p["proj:transform"] = {g[1], g[2], g[0], g[4], g[5], g[3]};
  }
  item["properties"] = p;
  item["links"] = json::array();

  json assets = json::object();
  assets["hdf5"] = {{"href", relative_href(h5_path, dir)},
                    {"type", "application/x-hdf5"},
                    {"title", "all layers and tables (netCDF-4 / CF-1.8 layout)"},
                    {"roles", {"data"}}};
  for (std::size_t i = 0; i < layers.size() && i < res.cogs.size(); ++i) {
    const auto& l = layers[i];
    json band = {{"data_type", l.is_float ? "float32" : "uint8"}};
    if (l.fill) band["nodata"] = *l.fill;
    if (!l.units.empty()) band["unit"] = l.units;
    json a = {{"href", fs::path(res.cogs[i]).filename().string()},
              {"type", kCogMediaType},
              {"title", l.long_name.empty() ? l.name : l.long_name},
              {"roles", {"data"}},
              {"raster:bands", json::array({band})}};
    if (!l.flag_meanings.empty()) a["description"] = "classes: " + l.flag_meanings;
    assets[l.name] = a;
  }
  assets["footprints"] = {{"href", fs::path(res.geopackage).filename().string()},
                          {"type", "application/geopackage+sqlite3"},
                          {"title", "footprints with damage class and scores (styled for QGIS)"},
                          {"roles", {"data"}}};
  if (!res.geojson.empty()) {
    assets["footprints_geojson"] = {
        {"href", fs::path(res.geojson).filename().string()},
        {"type", "application/geo+json"},
        {"title", "footprints with damage class and scores (EPSG:4326)"},
        {"roles", {"data"}}};
  }
  item["assets"] = assets;
  return item;
}

}  // namespace

ExportResult export_outputs(const std::string& h5_path, const std::string& out_dir,
                            const ExportOptions& options) {
  init_gdal();
  for (const auto* dt : {&options.pre_datetime, &options.post_datetime}) {
    if (!dt->empty() && !is_rfc3339(*dt)) {
      throw Error(ErrorKind::usage,
                  "datetime '" + *dt + "' is not RFC 3339 (e.g. 2011-05-22T17:00:00Z)");
    }
  }
  const Hdf5Reader reader(h5_path);
  if (!reader.has("/x") || !reader.has("/y")) {
    throw Error(ErrorKind::input, h5_path + ": not an aftermath output (no /x, /y coordinates)");
  }
  const Grid grid = reader.grid();
  const Provenance prov = read_provenance(reader);
  std::vector<LayerInfo> layers = list_layers(h5_path);
  for (auto& l : layers) {
    l.fill = reader.number_attribute("/" + l.name, "_FillValue");
    if (l.packed_scale) {
      l.packed_scale = reader.number_attribute("/" + l.name, "scale_factor").value_or(1.0);
      l.packed_offset = reader.number_attribute("/" + l.name, "add_offset").value_or(0.0);
      l.packed_fill = l.fill.value_or(65535.0);
      l.fill = -1.0;
    }
    l.long_name = reader.string_attribute("/" + l.name, "long_name").value_or("");
    l.units = reader.string_attribute("/" + l.name, "units").value_or("");
    l.flag_meanings = reader.string_attribute("/" + l.name, "flag_meanings").value_or("");
  }
  if (layers.empty()) throw Error(ErrorKind::input, h5_path + ": no 2-D layers to export");
  FeatureTable features;
  SiteTable sites;
  try {
    features = read_features(reader);
    sites = read_sites(reader);
  } catch (const Error& e) {
    throw Error(e.kind(), h5_path + ": " + e.what());
  }

  // Scene times: given, else from the inputs if they still exist and carry them; else the STAC
  // datetime is the run's creation time (checked here, before anything is written).
  const std::string pre_dt =
      !options.pre_datetime.empty() ? options.pre_datetime : acquisition_datetime(prov.input_pre);
  const std::string post_dt = !options.post_datetime.empty()
                                  ? options.post_datetime
                                  : acquisition_datetime(prov.input_post);
  const bool scene_times = !pre_dt.empty() && !post_dt.empty();
  if (!scene_times && !is_rfc3339(prov.created)) {
    throw Error(ErrorKind::input,
                h5_path +
                    ": no `created` attribute and the scene times are unknown: no datetime "
                    "for the STAC Item (give --pre-datetime and --post-datetime)");
  }

  const fs::path dir(out_dir);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) {
    throw Error(ErrorKind::output, out_dir + ": cannot create the output directory" +
                                       (ec ? " (" + ec.message() + ")" : ""));
  }
  const std::string stem = fs::path(h5_path).stem().string();
  const std::string h5_name = fs::path(h5_path).filename().string();

  ExportResult res;
  res.dir = out_dir;
  res.georeferenced = grid.georeferenced();
  if (!scene_times) {
    res.warnings.push_back(
        "acquisition times of the scenes unknown: the STAC datetime is the run's creation time");
  }
  if (!res.georeferenced) {
    res.warnings.push_back(
        "plain pixel grid (not georeferenced): COGs without CRS, GeoPackage in pixel units, "
        "no GeoJSON, STAC geometry null");
  }
  for (const auto& l : layers)
    res.cogs.push_back(write_cog(reader, grid, l, dir, stem, prov, h5_name));

  {
    TempOutput gpkg(dir, stem, ".gpkg");
    res.features = write_geopackage(features, sites, grid, gpkg.temp(), gpkg.final_path(), res.warnings);
    res.sites = static_cast<std::int64_t>(sites.n);
    if (res.georeferenced) {
      TempOutput gj(dir, stem, ".geojson");
      write_geojson(gpkg.temp(), gj.temp(), gj.final_path());
      gj.commit();
      res.geojson = gj.final_path();
    }
    gpkg.commit();
    res.geopackage = gpkg.final_path();
  }

  {
    TempOutput stac(dir, stem, ".stac.json");
    const json item =
        stac_item(stem, grid, prov, res, layers, h5_path, dir, pre_dt, post_dt, features);
    {
      std::ofstream out(stac.temp(), std::ios::binary | std::ios::trunc);
      out << item.dump(2) << "\n";
      out.flush();
      if (!out) throw Error(ErrorKind::output, stac.final_path() + ": cannot write");
    }
    stac.commit();
    res.stac_item = stac.final_path();
  }
  return res;
}

}  // namespace aftermath
