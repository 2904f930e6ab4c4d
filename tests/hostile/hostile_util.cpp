#include "hostile_util.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>

#include <cpl_conv.h>
#include <gdal_utils.h>
#include <ogr_api.h>
#include <ogr_spatialref.h>
#include <ogrsf_frmts.h>
#include <opencv2/imgproc.hpp>

#include "aftermath/core/footprint.hpp"
#include "aftermath/io/hdf5_reader.hpp"
#include "aftermath/io/scene.hpp"

#ifndef AFTERMATH_BIN
#define AFTERMATH_BIN "aftermath"
#endif

namespace hostile {

std::string& binary() {
  static std::string b = AFTERMATH_BIN;
  return b;
}

Result run(const std::vector<std::string>& args, const fs::path& log_dir,
           const std::vector<std::string>& prefix) {
  fs::create_directories(log_dir);
  const fs::path out = log_dir / "stdout.txt", err = log_dir / "stderr.txt";
  std::vector<std::string> all = prefix;
  all.push_back(binary());
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    const int fo = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int fe = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fo < 0 || fe < 0) ::_exit(126);
    ::dup2(fo, 1);
    ::dup2(fe, 2);
    ::execvp(argv[0], argv.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  Result r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_text(out);
  r.err = read_text(err);
  return r;
}

// ---- the baseline pair --------------------------------------------------------------------------

const std::vector<cv::Rect>& buildings() {
  static const std::vector<cv::Rect> b{{40, 40, 24, 24},  {116, 40, 24, 24},  {192, 40, 24, 24},
                                       {40, 170, 24, 24}, {116, 170, 24, 24}, {192, 170, 24, 24}};
  return b;
}

namespace {

cv::Mat smooth_noise(std::mt19937& rng, int size, double sigma, float lo, float hi) {
  cv::Mat m(size, size, CV_32F);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  for (int r = 0; r < size; ++r)
    for (int c = 0; c < size; ++c) m.at<float>(r, c) = u(rng);
  cv::GaussianBlur(m, m, cv::Size(0, 0), sigma);
  double mn, mx;
  cv::minMaxLoc(m, &mn, &mx);
  m = (m - mn) / (mx - mn) * (hi - lo) + lo;
  return m;
}

struct Worlds {
  std::vector<cv::Mat> pre, post;
  Worlds() {
    std::mt19937 rng(20240601);
    const int n = kSize + 2 * kMargin;
    std::normal_distribution<float> noise(0.f, 3.f);
    for (int b = 0; b < 3; ++b) {
      cv::Mat ground = smooth_noise(rng, n, 2.5, 40.f + 10.f * b, 150.f + 10.f * b);
      // Roads: a few darker lines (texture for co-registration).
      for (int k = 20; k < n; k += 90) {
        cv::line(ground, {0, k}, {n - 1, k + 30}, cv::Scalar(30 + 5 * b), 4);
        cv::line(ground, {k, 0}, {k - 20, n - 1}, cv::Scalar(35 + 5 * b), 3);
      }
      cv::Mat pre = ground.clone();
      for (const auto& r : buildings()) {
        const cv::Rect w(r.x + kMargin, r.y + kMargin, r.width, r.height);
        pre(w).setTo(190.f + 15.f * b);
        cv::rectangle(pre, w, cv::Scalar(120 + 10 * b), 2);  // roof edge
        cv::line(pre, {w.x, w.y + w.height / 2}, {w.x + w.width - 1, w.y + w.height / 2},
                 cv::Scalar(160 + 10 * b), 1);  // ridge
      }
      cv::GaussianBlur(pre, pre, cv::Size(0, 0), 1.0);  // the sensor's PSF: no sharper than real imagery
      cv::Mat post = pre.clone();
      const cv::Mat rubble_full = smooth_noise(rng, n, 1.0, 20.f, 120.f);
      for (int i : {1, 4}) {  // b2, b5 destroyed: rubble
        const auto& r = buildings()[static_cast<std::size_t>(i)];
        const cv::Rect w(r.x + kMargin, r.y + kMargin, r.width, r.height);
        rubble_full(w).copyTo(post(w));
      }
      for (int r = 0; r < n; ++r)
        for (int c = 0; c < n; ++c) {
          post.at<float>(r, c) += noise(rng);
          pre.at<float>(r, c) += noise(rng);
        }
      cv::min(cv::max(pre, 0.0), 255.0, pre);
      cv::min(cv::max(post, 0.0), 255.0, post);
      this->pre.push_back(pre);
      this->post.push_back(post);
    }
  }
};

const Worlds& worlds() {
  static const Worlds w;
  return w;
}

}  // namespace

const std::vector<cv::Mat>& world_pre() { return worlds().pre; }
const std::vector<cv::Mat>& world_post() { return worlds().post; }

std::vector<cv::Mat> crop(const std::vector<cv::Mat>& world, int dx, int dy, int w, int h) {
  std::vector<cv::Mat> out;
  for (const auto& b : world) out.push_back(b(cv::Rect(kMargin + dx, kMargin + dy, w, h)).clone());
  return out;
}

std::array<double, 6> utm_gt(double px, double dx_m, double dy_m) {
  return {kX0 + dx_m, px, 0, kY0 + dy_m, 0, -px};
}

void write_tif(const fs::path& path, const std::vector<cv::Mat>& bands, const TifOptions& o) {
  aftermath::init_gdal();
  GDALDriverH drv = GDALGetDriverByName("GTiff");
  std::vector<const char*> co;
  for (const auto& s : o.creation) co.push_back(s.c_str());
  co.push_back(nullptr);
  const int w = bands.at(0).cols, h = bands.at(0).rows, n = static_cast<int>(bands.size());
  GDALDatasetH ds = GDALCreate(drv, path.c_str(), w, h, n, o.type, const_cast<char**>(co.data()));
  if (!ds) throw std::runtime_error("cannot create " + path.string() + ": " + CPLGetLastErrorMsg());
  if (o.gt) {
    auto gt = *o.gt;
    GDALSetGeoTransform(ds, gt.data());
  }
  if (!o.srs.empty()) {
    OGRSpatialReference srs;
    srs.SetFromUserInput(o.srs.c_str());
    GDALSetSpatialRef(ds, OGRSpatialReference::ToHandle(&srs));
  }
  for (int i = 0; i < n; ++i) {
    GDALRasterBandH b = GDALGetRasterBand(ds, i + 1);
    if (o.nodata) GDALSetRasterNoDataValue(b, *o.nodata);
    if (o.alpha_last && i == n - 1) GDALSetRasterColorInterpretation(b, GCI_AlphaBand);
    cv::Mat f;
    bands[static_cast<std::size_t>(i)].convertTo(f, CV_32F, o.scale);
    if (GDALRasterIO(b, GF_Write, 0, 0, w, h, f.data, w, h, GDT_Float32, 0, static_cast<int>(f.step[0])) != CE_None) {
      GDALClose(ds);
      throw std::runtime_error("cannot write " + path.string());
    }
  }
  GDALClose(ds);
}

void write_pre(const fs::path& path) {
  TifOptions o;
  o.gt = utm_gt();
  write_tif(path, crop(world_pre()), o);
}

void write_post(const fs::path& path) {
  TifOptions o;
  o.gt = utm_gt();
  write_tif(path, crop(world_post()), o);
}

void warp(const fs::path& src, const fs::path& dst, const std::vector<std::string>& options) {
  aftermath::init_gdal();
  std::vector<char*> argv;
  std::vector<std::string> copy = options;
  for (auto& s : copy) argv.push_back(s.data());
  argv.push_back(nullptr);
  GDALWarpAppOptions* wo = GDALWarpAppOptionsNew(argv.data(), nullptr);
  GDALDatasetH in = GDALOpen(src.c_str(), GA_ReadOnly);
  if (!in || !wo) throw std::runtime_error("warp: cannot open " + src.string());
  int usage_error = 0;
  GDALDatasetH out = GDALWarp(dst.c_str(), nullptr, 1, &in, wo, &usage_error);
  GDALWarpAppOptionsFree(wo);
  GDALClose(in);
  if (!out) throw std::runtime_error("warp failed: " + dst.string());
  GDALClose(out);
}

// ---- footprints ---------------------------------------------------------------------------------

cv::Point2d utm(double col, double row) { return {kX0 + col, kY0 - row}; }

cv::Point2d lonlat(double col, double row) {
  // The transformation clones the SRS objects; it lives for the process (a function-local
  // static owned by a unique_ptr, so nothing leaks at exit).
  static const std::unique_ptr<OGRCoordinateTransformation> ct = [] {
    aftermath::init_gdal();
    OGRSpatialReference src, dst;
    src.SetFromUserInput(kUtm);
    dst.SetFromUserInput("EPSG:4326");
    src.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    dst.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    return std::unique_ptr<OGRCoordinateTransformation>(OGRCreateCoordinateTransformation(&src, &dst));
  }();
  const auto p = utm(col, row);
  double x = p.x, y = p.y;
  ct->Transform(1, &x, &y);
  return {x, y};
}

std::string ring_json(const cv::Rect& r, bool in_utm, double dx_m, double dy_m) {
  const std::array<cv::Point2d, 5> px{cv::Point2d(r.x, r.y), {double(r.x + r.width), double(r.y)},
                                      {double(r.x + r.width), double(r.y + r.height)},
                                      {double(r.x), double(r.y + r.height)}, {double(r.x), double(r.y)}};
  std::ostringstream s;
  s.precision(12);
  s << "[";
  for (std::size_t i = 0; i < px.size(); ++i) {
    const auto p = in_utm ? utm(px[i].x + dx_m, px[i].y - dy_m) : lonlat(px[i].x + dx_m, px[i].y - dy_m);
    s << (i ? "," : "") << "[" << p.x << "," << p.y << "]";
  }
  s << "]";
  return s.str();
}

std::string polygon_json(const cv::Rect& r, bool in_utm, double dx_m, double dy_m) {
  return R"({"type":"Polygon","coordinates":[)" + ring_json(r, in_utm, dx_m, dy_m) + "]}";
}

std::string feature_json(const std::string& id, const std::string& geometry_json) {
  return R"({"type":"Feature","properties":{"id":")" + id + R"("},"geometry":)" + geometry_json + "}";
}

std::string collection_json(const std::vector<std::string>& features, const std::string& crs_member) {
  std::string s = R"({"type":"FeatureCollection",)";
  if (!crs_member.empty()) s += crs_member + ",";
  s += R"("features":[)";
  for (std::size_t i = 0; i < features.size(); ++i) s += (i ? ",\n" : "\n") + features[i];
  return s + "\n]}\n";
}

std::string baseline_geojson() {
  std::vector<std::string> f;
  for (std::size_t i = 0; i < buildings().size(); ++i) {
    f.push_back(feature_json("b" + std::to_string(i + 1), polygon_json(buildings()[i])));
  }
  return collection_json(f);
}

void write_gpkg(const fs::path& path, const std::string& epsg, const std::vector<std::string>& layers) {
  aftermath::init_gdal();
  GDALDriver* drv = GetGDALDriverManager()->GetDriverByName("GPKG");
  std::unique_ptr<GDALDataset> ds(drv->Create(path.c_str(), 0, 0, 0, GDT_Unknown, nullptr));
  if (!ds) throw std::runtime_error("cannot create " + path.string());
  OGRSpatialReference src, dst;
  src.SetFromUserInput(kUtm);
  dst.SetFromUserInput(epsg.c_str());
  src.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  dst.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  std::unique_ptr<OGRCoordinateTransformation> ct(OGRCreateCoordinateTransformation(&src, &dst));
  for (const auto& name : layers) {
    OGRLayer* layer = ds->CreateLayer(name.c_str(), &dst, wkbPolygon, nullptr);
    OGRFieldDefn fd("id", OFTString);
    layer->CreateField(&fd);
    for (std::size_t i = 0; i < buildings().size(); ++i) {
      const auto& r = buildings()[i];
      OGRLinearRing ring;
      for (auto [c, rr] : std::array<std::pair<int, int>, 5>{{{r.x, r.y}, {r.x + r.width, r.y},
                                                              {r.x + r.width, r.y + r.height}, {r.x, r.y + r.height}, {r.x, r.y}}}) {
        const auto p = utm(c, rr);
        ring.addPoint(p.x, p.y);
      }
      OGRPolygon poly;
      poly.addRing(&ring);
      poly.transform(ct.get());
      OGRFeature feat(layer->GetLayerDefn());
      feat.SetField("id", ("b" + std::to_string(i + 1)).c_str());
      feat.SetGeometry(&poly);
      if (layer->CreateFeature(&feat) != OGRERR_NONE) throw std::runtime_error("gpkg feature");
    }
  }
}

// ---- reading results ----------------------------------------------------------------------------

std::map<std::string, FeatureResult> read_features(const fs::path& h5) {
  aftermath::Hdf5Reader r(h5.string());
  std::map<std::string, FeatureResult> out;
  if (!r.has("/footprints/source_id")) return out;
  const auto ids = r.column_string("footprints/source_id");
  const auto cls = r.column_uint8("footprints/damage_class");
  const auto st = r.column_uint8("footprints/status");
  for (std::size_t i = 0; i < ids.size(); ++i) {
    out[ids[i]] = {aftermath::to_string(static_cast<aftermath::FeatureStatus>(st[i])), cls[i]};
  }
  return out;
}

std::set<std::string> damaged(const fs::path& h5) {
  std::set<std::string> out;
  for (const auto& [id, f] : read_features(h5)) {
    if (f.status == "scored" && (f.damage_class == 2 || f.damage_class == 3)) out.insert(id);
  }
  return out;
}

std::optional<std::string> root_attr(const fs::path& h5, const std::string& name) {
  aftermath::Hdf5Reader r(h5.string());
  return r.string_attribute("/", name);
}

std::optional<double> number_attr(const fs::path& h5, const std::string& object, const std::string& name) {
  aftermath::Hdf5Reader r(h5.string());
  return r.number_attribute(object, name);
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_text(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary);
  out << text;
}

std::string sha256_of(const fs::path& p) { return aftermath::sha256_file(p.string()); }

std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::exists(dir, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir, ec)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace hostile
