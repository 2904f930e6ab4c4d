// Batch manifests: YAML parsing (located errors), validation before any job runs.
#include "aftermath/batch/manifest.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "aftermath/core/error.hpp"

namespace aftermath::batch {

namespace fs = std::filesystem;

namespace {

// Where a manifest problem is: "manifest.yaml:12".
struct Located {
  std::string source;
  [[noreturn]] void fail(const YAML::Mark& mark, const std::string& what) const {
    if (mark.is_null()) throw Error(ErrorKind::usage, source + ": " + what);
    throw Error(ErrorKind::usage, fmt::format("{}:{}: {}", source, mark.line + 1, what));
  }
};

std::string normalise_text(std::string text) {
  constexpr std::string_view kBom = "\xEF\xBB\xBF";
  if (std::string_view(text).starts_with(kBom)) text.erase(0, kBom.size());
  // CRLF (and lone CR) line endings from Windows editors.
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

bool blank_or_comments(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const auto p = line.find_first_not_of(" \t");
    if (p != std::string::npos && line[p] != '#') return false;
  }
  return true;
}

std::string resolve(const std::string& base, const std::string& p) {
  if (p.empty()) return p;
  const fs::path path(p);
  if (path.is_absolute()) return path.lexically_normal().string();
  return (fs::path(base) / path).lexically_normal().string();
}

std::string job_label(const std::string& name, std::size_t index) {
  return name.empty() ? fmt::format("job #{}", index + 1) : fmt::format("job '{}'", name);
}

// Map entries in order, rejecting duplicate and non-scalar keys.
std::vector<std::pair<std::string, YAML::Node>> entries(const YAML::Node& map, const Located& at,
                                                        const std::string& what) {
  std::vector<std::pair<std::string, YAML::Node>> out;
  std::set<std::string> seen;
  for (auto it = map.begin(); it != map.end(); ++it) {
    if (!it->first.IsScalar()) at.fail(it->first.Mark(), what + ": keys must be plain names");
    const std::string key = it->first.Scalar();
    if (!seen.insert(key).second) at.fail(it->first.Mark(), fmt::format("{}: duplicate key '{}'", what, key));
    out.emplace_back(key, it->second);
  }
  return out;
}

std::string scalar(const YAML::Node& node, const Located& at, const std::string& what) {
  if (node.IsNull()) return {};
  if (!node.IsScalar()) at.fail(node.Mark(), what + ": expected a string");
  return node.Scalar();
}

std::vector<std::string> scenes(const YAML::Node& node, const Located& at, const std::string& what) {
  std::vector<std::string> out;
  if (node.IsNull()) return out;
  if (node.IsScalar()) {
    if (!node.Scalar().empty()) out.push_back(node.Scalar());
    return out;
  }
  if (!node.IsSequence()) at.fail(node.Mark(), what + ": expected a path or a list of paths");
  for (const auto& item : node) {
    if (!item.IsScalar() || item.Scalar().empty()) at.fail(item.Mark(), what + ": expected a path in the list");
    out.push_back(item.Scalar());
  }
  return out;
}

// Flow text of a YAML value for an override: scalars as written, sequences as [a, b].
std::string flow_text(const YAML::Node& node, const Located& at, const std::string& what) {
  if (node.IsScalar()) return node.Scalar();
  if (node.IsSequence()) {
    std::string s = "[";
    bool first = true;
    for (const auto& item : node) {
      if (!item.IsScalar()) at.fail(item.Mark(), what + ": expected a scalar in the list");
      s += (first ? "" : ", ") + item.Scalar();
      first = false;
    }
    return s + "]";
  }
  at.fail(node.Mark(), what + ": expected a value");
}

// `set:` as a list of "key=value" or a map {key: value}.
std::vector<std::string> overrides(const YAML::Node& node, const Located& at, const std::string& what) {
  std::vector<std::string> out;
  if (node.IsNull()) return out;
  if (node.IsScalar()) {
    if (!node.Scalar().empty()) out.push_back(node.Scalar());
  } else if (node.IsSequence()) {
    for (const auto& item : node) {
      if (!item.IsScalar() || item.Scalar().find('=') == std::string::npos) {
        at.fail(item.Mark(), what + ": expected 'section.key=value'");
      }
      out.push_back(item.Scalar());
    }
  } else if (node.IsMap()) {
    for (const auto& [k, v] : entries(node, at, what)) out.push_back(k + "=" + flow_text(v, at, what + "." + k));
  }
  for (const auto& o : out) {
    if (o.find('=') == std::string::npos) at.fail(node.Mark(), what + ": expected 'section.key=value', got '" + o + "'");
  }
  return out;
}

const std::vector<std::string> kJobKeys = {"name", "pre", "post", "footprints", "footprint_layer",
                                           "config", "set", "out"};

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + v[i];
  return s;
}

std::string canonical_or_weak(const std::string& p) {
  std::error_code ec;
  auto c = fs::weakly_canonical(fs::absolute(p, ec), ec);
  return ec ? fs::path(p).lexically_normal().string() : c.string();
}

std::string canonical_or_empty(const std::string& p) {
  std::error_code ec;
  auto c = fs::canonical(p, ec);
  return ec ? std::string() : c.string();
}

}  // namespace

Manifest parse_manifest(const std::string& raw_text, const std::string& base_dir, const std::string& source) {
  const Located at{source};
  const std::string text = normalise_text(raw_text);
  if (blank_or_comments(text)) {
    throw Error(ErrorKind::usage, source + ": empty manifest (a truncated file?); write 'jobs: []' for a "
                                           "manifest with nothing to do");
  }
  YAML::Node root;
  try {
    reject_yaml_hazards(text, source);
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    at.fail(e.mark, "YAML syntax error: " + e.msg);
  }
  if (!root.IsMap()) at.fail(root.Mark(), "expected a map with 'jobs:' (a list of jobs)");

  Manifest m;
  m.source = source;
  m.base_dir = base_dir;
  std::string default_config, default_footprints, default_layer;
  std::vector<std::string> default_set;
  YAML::Node jobs;
  bool has_jobs = false;
  for (const auto& [key, value] : entries(root, at, "manifest")) {
    if (key == "version") {
      if (!value.IsScalar() || value.Scalar() != "1") at.fail(value.Mark(), "version: only version 1 is known");
    } else if (key == "defaults") {
      if (value.IsNull()) continue;
      if (!value.IsMap()) at.fail(value.Mark(), "defaults: expected a map");
      for (const auto& [k, v] : entries(value, at, "defaults")) {
        if (k == "config") default_config = scalar(v, at, "defaults.config");
        else if (k == "set") default_set = overrides(v, at, "defaults.set");
        else if (k == "footprints") default_footprints = scalar(v, at, "defaults.footprints");
        else if (k == "footprint_layer") default_layer = scalar(v, at, "defaults.footprint_layer");
        else at.fail(v.Mark(), fmt::format("defaults: unknown key '{}' (known: config, set, footprints, footprint_layer)", k));
      }
    } else if (key == "jobs") {
      jobs = value;
      has_jobs = true;
    } else {
      at.fail(value.Mark(), fmt::format("unknown key '{}' (known: version, defaults, jobs)", key));
    }
  }
  if (!has_jobs) at.fail(root.Mark(), "no 'jobs:' list (write 'jobs: []' for a manifest with nothing to do)");
  if (jobs.IsNull()) return m;
  if (!jobs.IsSequence()) at.fail(jobs.Mark(), "jobs: expected a list of jobs");

  std::size_t index = 0;
  for (const auto& node : jobs) {
    BatchJob job;
    job.line = node.Mark().is_null() ? 0 : node.Mark().line + 1;
    if (!node.IsMap()) at.fail(node.Mark(), fmt::format("job #{}: expected a map of fields ({})", index + 1, join(kJobKeys, ", ")));
    const auto fields = entries(node, at, fmt::format("job #{}", index + 1));
    for (const auto& [k, v] : fields) {
      if (k == "name") job.name = scalar(v, at, fmt::format("job #{}: name", index + 1));
    }
    const std::string label = job_label(job.name, index);
    bool has_footprints = false;
    for (const auto& [k, v] : fields) {
      const std::string what = label + ": field '" + k + "'";
      if (k == "name") continue;
      if (k == "pre") job.pre = scenes(v, at, what);
      else if (k == "post") job.post = scenes(v, at, what);
      else if (k == "footprints") { job.footprints = scalar(v, at, what); has_footprints = true; }
      else if (k == "footprint_layer") job.footprint_layer = scalar(v, at, what);
      else if (k == "config") job.config_path = scalar(v, at, what);
      else if (k == "set") job.overrides = overrides(v, at, what);
      else if (k == "out") job.out = scalar(v, at, what);
      else at.fail(v.Mark(), fmt::format("{}: unknown field '{}' (known: {})", label, k, join(kJobKeys, ", ")));
    }
    std::vector<std::string> missing;
    if (job.name.empty()) missing.push_back("name");
    if (job.pre.empty()) missing.push_back("pre");
    if (job.post.empty()) missing.push_back("post");
    if (job.out.empty()) missing.push_back("out");
    if (!missing.empty()) {
      at.fail(node.Mark(), fmt::format("{}: missing field{} {}", label, missing.size() > 1 ? "s" : "", join(missing, ", ")));
    }
    if (!has_footprints) job.footprints = default_footprints;  // `footprints: ""` opts out
    if (job.footprint_layer.empty()) job.footprint_layer = default_layer;
    if (job.config_path.empty()) job.config_path = default_config;
    job.overrides.insert(job.overrides.begin(), default_set.begin(), default_set.end());
    for (auto& p : job.pre) p = resolve(base_dir, p);
    for (auto& p : job.post) p = resolve(base_dir, p);
    job.footprints = resolve(base_dir, job.footprints);
    job.config_path = resolve(base_dir, job.config_path);
    job.out = resolve(base_dir, job.out);
    m.jobs.push_back(std::move(job));
    ++index;
  }
  return m;
}

Manifest load_manifest(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw Error(ErrorKind::usage, path + ": is a directory (use --scan DIR to pair the scenes in a directory)");
  if (!fs::exists(path, ec)) throw Error(ErrorKind::usage, path + ": manifest does not exist");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorKind::usage, path + ": manifest cannot be read");
  std::ostringstream ss;
  ss << in.rdbuf();
  const fs::path abs = fs::absolute(path, ec);
  return parse_manifest(ss.str(), abs.parent_path().string(), path);
}

std::string to_manifest_yaml(const Manifest& m) {
  YAML::Emitter e;
  e << YAML::BeginMap << YAML::Key << "version" << YAML::Value << 1;
  e << YAML::Key << "jobs" << YAML::Value << YAML::BeginSeq;
  for (const auto& j : m.jobs) {
    e << YAML::BeginMap;
    e << YAML::Key << "name" << YAML::Value << YAML::DoubleQuoted << j.name;
    auto side = [&](const char* key, const std::vector<std::string>& v) {
      e << YAML::Key << key << YAML::Value;
      if (v.size() == 1) e << YAML::DoubleQuoted << v[0];
      else {
        e << YAML::BeginSeq;
        for (const auto& s : v) e << YAML::DoubleQuoted << s;
        e << YAML::EndSeq;
      }
    };
    side("pre", j.pre);
    side("post", j.post);
    if (!j.footprints.empty()) e << YAML::Key << "footprints" << YAML::Value << YAML::DoubleQuoted << j.footprints;
    if (!j.footprint_layer.empty()) e << YAML::Key << "footprint_layer" << YAML::Value << YAML::DoubleQuoted << j.footprint_layer;
    if (!j.config_path.empty()) e << YAML::Key << "config" << YAML::Value << YAML::DoubleQuoted << j.config_path;
    if (!j.overrides.empty()) {
      e << YAML::Key << "set" << YAML::Value << YAML::BeginSeq;
      for (const auto& o : j.overrides) e << YAML::DoubleQuoted << o;
      e << YAML::EndSeq;
    }
    e << YAML::Key << "out" << YAML::Value << YAML::DoubleQuoted << j.out;
    e << YAML::EndMap;
  }
  e << YAML::EndSeq << YAML::EndMap;
  return std::string(e.c_str()) + "\n";
}

std::vector<ResolvedJob> validate_manifest(const Manifest& m, const JobDefaults& defaults) {
  std::vector<std::string> problems;
  std::vector<ResolvedJob> out;
  std::map<std::string, std::size_t> names;
  std::map<std::string, std::size_t> outputs;          // canonical output -> job
  std::map<std::string, std::size_t> inputs;           // canonical input -> first job using it
  auto where = [&](std::size_t i) {
    const auto& j = m.jobs[i];
    return j.line > 0 ? fmt::format("line {}: job '{}'", j.line, j.name) : fmt::format("job '{}'", j.name);
  };
  for (std::size_t i = 0; i < m.jobs.size(); ++i) {
    const BatchJob& j = m.jobs[i];
    const std::string w = where(i);
    if (auto [it, fresh] = names.emplace(j.name, i); !fresh) {
      problems.push_back(fmt::format("{}: name already used by the job on line {}", w, m.jobs[it->second].line));
    }
    ResolvedJob r;
    r.index = i;
    r.job = j;
    bool ok = true;
    for (const auto& [field, list] : {std::pair{"pre", &j.pre}, std::pair{"post", &j.post}}) {
      if (list->size() > 1) {
        problems.push_back(fmt::format("{}: field '{}' lists {} scenes; several scenes per side need "
                                       "detect.method ttest, not available yet", w, field, list->size()));
        ok = false;
      }
    }
    auto check_file = [&](const char* field, const std::string& p) {
      if (p.empty()) return;
      std::error_code ec;
      const auto st = fs::status(p, ec);
      if (!fs::exists(st)) {
        const bool link = fs::is_symlink(fs::symlink_status(p, ec));
        problems.push_back(fmt::format("{}: field '{}': {} does not exist{}", w, field, p, link ? " (dangling link)" : ""));
        ok = false;
      } else if (fs::is_directory(st)) {
        problems.push_back(fmt::format("{}: field '{}': {} is a directory", w, field, p));
        ok = false;
      }
    };
    for (const auto& p : j.pre) check_file("pre", p);
    for (const auto& p : j.post) check_file("post", p);
    check_file("footprints", j.footprints);
    r.config_path = j.config_path.empty() ? defaults.config_path : j.config_path;
    check_file("config", r.config_path);
    if (ok) {
      try {
        if (!r.config_path.empty()) r.config = load_config(r.config_path);
        std::vector<std::string> o = j.overrides;
        o.insert(o.end(), defaults.overrides.begin(), defaults.overrides.end());
        apply_overrides(r.config, o);
      } catch (const Error& e) {
        problems.push_back(fmt::format("{}: config: {}", w, e.message()));
        ok = false;
      }
    }
    // Output: not a directory, not shared with another job, not an input of any job.
    std::error_code ec;
    if (fs::is_directory(j.out, ec)) {
      problems.push_back(fmt::format("{}: field 'out': {} is a directory", w, j.out));
      ok = false;
    }
    const std::string out_real = canonical_or_weak(j.out);
    if (auto [it, fresh] = outputs.emplace(out_real, i); !fresh) {
      problems.push_back(fmt::format("{}: field 'out': output {} is also written by job '{}'", w, j.out,
                                     m.jobs[it->second].name));
      ok = false;
    }
    for (const auto* list : {&j.pre, &j.post}) {
      for (const auto& p : *list) {
        const std::string c = canonical_or_empty(p);
        if (!c.empty()) inputs.emplace(c, i);
      }
    }
    for (const auto& p : {j.footprints, r.config_path}) {
      const std::string c = p.empty() ? std::string() : canonical_or_empty(p);
      if (!c.empty()) inputs.emplace(c, i);
    }
    if (ok) {
      r.pre = j.pre.front();
      r.post = j.post.front();
      out.push_back(std::move(r));
    }
  }
  // An output that is (after realpath) an input of any job would destroy it.
  for (const auto& [out_real, i] : outputs) {
    auto it = inputs.find(out_real);
    if (it == inputs.end()) continue;
    const std::size_t k = it->second;
    std::string field = "an input";
    const auto& jk = m.jobs[k];
    if (!jk.pre.empty() && canonical_or_empty(jk.pre.front()) == out_real) field = "the pre scene";
    else if (!jk.post.empty() && canonical_or_empty(jk.post.front()) == out_real) field = "the post scene";
    else if (canonical_or_empty(jk.footprints) == out_real) field = "the footprints";
    problems.push_back(fmt::format("{}: field 'out': {} is {} of job '{}' (refusing to overwrite an input)",
                                   where(i), m.jobs[i].out, field, jk.name));
  }
  if (!problems.empty()) {
    std::string msg = fmt::format("{}: {} problem{}: ", m.source, problems.size(), problems.size() > 1 ? "s" : "");
    const std::size_t shown = std::min<std::size_t>(problems.size(), 20);
    for (std::size_t i = 0; i < shown; ++i) msg += (i ? "; " : "") + problems[i];
    if (shown < problems.size()) msg += fmt::format("; and {} more", problems.size() - shown);
    throw Error(ErrorKind::usage, msg);
  }
  return out;
}

}  // namespace aftermath::batch
