// SHA-256 of inputs cached by file identity in a small JSON file.
#include "aftermath/batch/hash_cache.hpp"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "aftermath/batch/batch.hpp"
#include "aftermath/core/error.hpp"
#include "aftermath/io/scene.hpp"

namespace aftermath::batch {

namespace fs = std::filesystem;

namespace {

std::string key_of(const std::string& file) {
  std::error_code ec;
  const auto c = fs::canonical(file, ec);
  return ec ? fs::absolute(file, ec).lexically_normal().string() : c.string();
}

using Json = nlohmann::json;

Json to_json(const FileStamp& s, const std::string& sha) {
  return {{"size", s.size}, {"mtime_ns", s.mtime_ns}, {"ctime_ns", s.ctime_ns}, {"inode", s.inode},
          {"device", s.device}, {"sha256", sha}};
}

std::map<std::string, std::pair<FileStamp, std::string>> read_cache(const std::string& path) {
  std::map<std::string, std::pair<FileStamp, std::string>> out;
  std::ifstream in(path);
  if (!in) return out;
  try {
    const Json j = Json::parse(in);
    if (j.value("format", "") != "aftermath-hash-cache/1") return out;
    for (const auto& [file, e] : j.at("files").items()) {
      FileStamp s;
      s.size = e.at("size").get<std::int64_t>();
      s.mtime_ns = e.at("mtime_ns").get<std::int64_t>();
      s.ctime_ns = e.at("ctime_ns").get<std::int64_t>();
      s.inode = e.at("inode").get<std::uint64_t>();
      s.device = e.at("device").get<std::uint64_t>();
      out[file] = {s, e.at("sha256").get<std::string>()};
    }
  } catch (const std::exception& e) {
    spdlog::warn("hash cache {} ignored (unreadable: {}); inputs will be hashed again", path, e.what());
    out.clear();
  }
  return out;
}

}  // namespace

std::optional<FileStamp> stamp_file(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  FileStamp s;
  s.size = static_cast<std::int64_t>(st.st_size);
  s.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
  s.ctime_ns = static_cast<std::int64_t>(st.st_ctim.tv_sec) * 1000000000LL + st.st_ctim.tv_nsec;
  s.inode = static_cast<std::uint64_t>(st.st_ino);
  s.device = static_cast<std::uint64_t>(st.st_dev);
  return s;
}

HashCache::HashCache(std::string path) : path_(std::move(path)) {
  if (path_.empty()) return;
  for (auto& [file, e] : read_cache(path_)) entries_[file] = {e.first, e.second};
}

std::string HashCache::sha256(const std::string& file) {
  const std::string key = key_of(file);
  const auto before = stamp_file(file);
  if (before) {
    auto it = entries_.find(key);
    if (it != entries_.end() && it->second.stamp == *before) {
      ++hits_;
      return it->second.sha256;
    }
  }
  ++misses_;
  const std::string sha = sha256_file(file);
  if (before) remember(file, *before, sha);
  return sha;
}

void HashCache::remember(const std::string& file, const FileStamp& before, const std::string& sha) {
  const auto after = stamp_file(file);
  if (!after || !(*after == before) || sha.size() != 64) return;  // changed while hashed: do not cache
  Entry& e = entries_[key_of(file)];
  if (!(e.stamp == before) || e.sha256 != sha) dirty_ = true;
  e = {before, sha};
}

bool HashCache::save() const {
  if (path_.empty() || !dirty_) return true;
  // Merge: keep entries another process saved meanwhile (ours win on conflict).
  auto merged = read_cache(path_);
  for (const auto& [file, e] : entries_) merged[file] = {e.stamp, e.sha256};
  Json files = Json::object();
  for (const auto& [file, e] : merged) {
    if (!fs::exists(file)) continue;  // forget deleted files
    files[file] = to_json(e.first, e.second);
  }
  const Json j = {{"format", "aftermath-hash-cache/1"},
                  {"note", "SHA-256 of aftermath batch inputs, valid while size, mtime, ctime, inode and device match"},
                  {"files", files}};
  try {
    write_file_atomically(path_, j.dump(1) + "\n");
  } catch (const Error& e) {
    spdlog::warn("hash cache not saved: {}", e.what());
    return false;
  }
  return true;
}

}  // namespace aftermath::batch
