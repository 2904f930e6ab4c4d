// --scan DIR: pair scenes by area and date, from file names or STAC Item JSON beside them.
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "aftermath/batch/manifest.hpp"
#include "aftermath/core/error.hpp"

namespace aftermath::batch {

namespace fs = std::filesystem;

namespace {

struct Scene {
  std::string area;
  std::string date;  // YYYYMMDD
  std::string sort_key;  // date or full datetime
  std::string path;
  std::string from;  // the file it was learned from (the raster or the STAC item)
};

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

// "20110522" or "2011-05-22" -> "20110522" if a plausible calendar date, else "".
std::string parse_date(std::string_view t) {
  std::string d;
  if (t.size() == 8 && all_digits(t)) d = std::string(t);
  else if (t.size() == 10 && t[4] == '-' && t[7] == '-' && all_digits(t.substr(0, 4)) && all_digits(t.substr(5, 2)) &&
           all_digits(t.substr(8, 2))) {
    d = std::string(t.substr(0, 4)) + std::string(t.substr(5, 2)) + std::string(t.substr(8, 2));
  }
  if (d.empty()) return {};
  const int month = std::stoi(d.substr(4, 2)), day = std::stoi(d.substr(6, 2)), year = std::stoi(d.substr(0, 4));
  if (year < 1900 || month < 1 || month > 12 || day < 1 || day > 31) return {};
  return d;
}

// <area>_<date>[_anything]: area = the tokens before the first date token.
bool parse_name(const std::string& stem, std::string& area, std::string& date) {
  std::vector<std::string> tokens;
  std::size_t start = 0;
  for (;;) {
    const auto p = stem.find('_', start);
    tokens.push_back(stem.substr(start, p == std::string::npos ? std::string::npos : p - start));
    if (p == std::string::npos) break;
    start = p + 1;
  }
  for (std::size_t i = 1; i < tokens.size(); ++i) {
    const std::string d = parse_date(tokens[i]);
    if (d.empty()) continue;
    area.clear();
    for (std::size_t k = 0; k < i; ++k) area += (k ? "_" : "") + tokens[k];
    if (area.empty()) return false;
    date = d;
    return true;
  }
  return false;
}

const std::set<std::string> kRasterExt = {".tif", ".tiff", ".vrt", ".jp2"};

// A STAC Item: area, date and the raster asset. Returns false (with `why`) if unusable.
bool read_stac_item(const fs::path& file, Scene& scene, std::string& why) {
  nlohmann::ordered_json j;
  try {
    std::ifstream in(file);
    j = nlohmann::ordered_json::parse(in);
  } catch (const std::exception& e) {
    why = std::string("not valid JSON: ") + e.what();
    return false;
  }
  if (!j.is_object() || j.value("type", "") != "Feature" || !j.contains("stac_version")) {
    why = "not a STAC Item";
    return false;
  }
  const auto props = j.value("properties", nlohmann::ordered_json::object());
  std::string datetime;
  for (const char* k : {"datetime", "start_datetime"}) {
    if (props.contains(k) && props[k].is_string()) {
      datetime = props[k].get<std::string>();
      break;
    }
  }
  scene.date = datetime.size() >= 10 ? parse_date(std::string_view(datetime).substr(0, 10)) : "";
  if (scene.date.empty()) {
    why = "no usable properties.datetime";
    return false;
  }
  scene.sort_key = datetime;
  for (const char* k : {"aftermath:area", "grid:code"}) {
    if (props.contains(k) && props[k].is_string() && !props[k].get<std::string>().empty()) {
      scene.area = props[k].get<std::string>();
      break;
    }
  }
  if (scene.area.empty()) {
    std::string d;
    if (!parse_name(j.value("id", file.stem().string()), scene.area, d) && !parse_name(file.stem().string(), scene.area, d)) {
      why = "no area (properties 'aftermath:area' or 'grid:code', or an id named <area>_<date>)";
      return false;
    }
  }
  if (!j.contains("assets") || !j["assets"].is_object()) {
    why = "no assets";
    return false;
  }
  const nlohmann::ordered_json* chosen = nullptr;
  auto has_role = [](const nlohmann::ordered_json& a, const std::string& role) {
    if (!a.contains("roles") || !a["roles"].is_array()) return false;
    for (const auto& r : a["roles"]) if (r.is_string() && r.get<std::string>() == role) return true;
    return false;
  };
  for (const auto& [k, a] : j["assets"].items()) if (!chosen && has_role(a, "data")) chosen = &a;
  for (const auto& [k, a] : j["assets"].items()) {
    if (!chosen && a.value("type", "").starts_with("image/tiff")) chosen = &a;
  }
  if (!chosen || !chosen->contains("href") || !(*chosen)["href"].is_string()) {
    why = "no raster asset (role 'data' or type image/tiff)";
    return false;
  }
  std::string href = (*chosen)["href"].get<std::string>();
  if (href.starts_with("file://")) href = href.substr(7);
  if (href.find("://") != std::string::npos) {
    why = "remote asset " + href + " (download it first; only local files are read)";
    return false;
  }
  const fs::path p(href);
  scene.path = (p.is_absolute() ? p : file.parent_path() / p).lexically_normal().string();
  scene.from = file.string();
  return true;
}

}  // namespace

Manifest scan_directory(const std::string& dir, const ScanOptions& options) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error(ErrorKind::usage, "--scan " + dir + ": not a directory");
  const fs::path base = fs::absolute(dir, ec).lexically_normal();
  std::vector<fs::path> files;
  for (fs::directory_iterator it(base, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec)) files.push_back(it->path());
  }
  if (ec) throw Error(ErrorKind::usage, fmt::format("--scan {}: cannot list ({})", dir, ec.message()));
  std::sort(files.begin(), files.end());

  std::vector<Scene> scenes;
  std::set<std::string> from_stac;
  for (const auto& f : files) {
    if (lower(f.extension().string()) != ".json") continue;
    Scene s;
    std::string why;
    if (read_stac_item(f, s, why)) {
      from_stac.insert(fs::weakly_canonical(s.path, ec).string());
      scenes.push_back(s);
    } else {
      spdlog::debug("scan: {} ignored: {}", f.string(), why);
    }
  }
  for (const auto& f : files) {
    if (!kRasterExt.count(lower(f.extension().string()))) continue;
    if (from_stac.count(fs::weakly_canonical(f, ec).string())) continue;  // described by a STAC item
    Scene s;
    if (!parse_name(f.stem().string(), s.area, s.date)) {
      spdlog::warn("scan: {} ignored: name does not follow <area>_<YYYYMMDD>[_anything]{}", f.string(), f.extension().string());
      continue;
    }
    s.sort_key = s.date;
    s.path = f.string();
    s.from = f.string();
    scenes.push_back(s);
  }
  std::map<std::string, std::vector<Scene>> by_area;
  for (auto& s : scenes) by_area[s.area].push_back(s);

  Manifest m;
  m.source = "scan of " + dir;
  m.base_dir = base.string();
  const fs::path out_dir = options.out_dir.empty() ? base : fs::absolute(options.out_dir, ec).lexically_normal();
  for (auto& [area, list] : by_area) {
    std::sort(list.begin(), list.end(), [](const Scene& a, const Scene& b) {
      return a.sort_key != b.sort_key ? a.sort_key < b.sort_key : a.path < b.path;
    });
    for (std::size_t i = 1; i < list.size(); ++i) {
      if (list[i].date == list[i - 1].date) {
        throw Error(ErrorKind::usage, fmt::format("--scan {}: two scenes of area '{}' on {}: {} and {} (keep one, or "
                                                  "write a manifest)", dir, area, list[i].date, list[i - 1].from, list[i].from));
      }
    }
    if (list.size() < 2) {
      spdlog::info("scan: area '{}' has one scene ({}), nothing to pair yet", area, list.front().date);
      continue;
    }
    std::string footprints;
    for (const std::string& name : {area + "_footprints.geojson", area + "_footprints.gpkg", area + "_footprints.shp",
                                   area + ".geojson", area + ".gpkg"}) {
      if (fs::is_regular_file(base / name, ec)) {
        footprints = (base / name).string();
        break;
      }
    }
    for (std::size_t i = 1; i < list.size(); ++i) {
      const Scene& pre = options.pairing == Pairing::first ? list.front() : list[i - 1];
      const Scene& post = list[i];
      BatchJob job;
      job.name = fmt::format("{}_{}_{}", area, pre.date, post.date);
      job.pre = {pre.path};
      job.post = {post.path};
      job.footprints = footprints;
      job.out = (out_dir / (job.name + ".h5")).string();
      m.jobs.push_back(std::move(job));
    }
  }
  return m;
}

}  // namespace aftermath::batch
