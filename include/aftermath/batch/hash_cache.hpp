#pragma once
/// @file hash_cache.hpp
/// SHA-256 of input files, cached by file identity (size, mtime, ctime, inode, device) in a small
/// JSON file so that a re-run on unchanged inputs does not hash them again. An entry is used
/// only while all five match; any change of the file invalidates it.
#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace aftermath::batch {

struct FileStamp {
  std::int64_t size = 0, mtime_ns = 0, ctime_ns = 0;
  std::uint64_t inode = 0, device = 0;
  bool operator==(const FileStamp&) const = default;
};

/// The stamp of a file (following links), nullopt if it cannot be stat'ed.
std::optional<FileStamp> stamp_file(const std::string& path);

class HashCache {
 public:
  /// `path` = the JSON file ("" = in memory only). A missing or unreadable file is an empty cache.
  explicit HashCache(std::string path = {});
  /// SHA-256 of `file`: from the cache when its stamp matches, else computed (io sha256_file) and
  /// remembered if the file did not change while being hashed. Throws Error(input) if unreadable.
  std::string sha256(const std::string& file);
  /// Remembers a hash learned elsewhere (e.g. recorded by the engine) for a file whose stamp was
  /// `before` when hashing started; ignored if the file's stamp changed since.
  void remember(const std::string& file, const FileStamp& before, const std::string& sha);
  /// Writes the cache atomically (merged with entries another process saved meanwhile) if it
  /// learned anything. Returns false (and leaves the old file) if it cannot be written.
  bool save() const;
  int hits() const { return hits_; }
  int misses() const { return misses_; }
  const std::string& path() const { return path_; }

 private:
  struct Entry {
    FileStamp stamp;
    std::string sha256;
  };
  std::string path_;
  std::map<std::string, Entry> entries_;  // key: absolute path
  int hits_ = 0, misses_ = 0;
  bool dirty_ = false;  // something learned since loading
};

}  // namespace aftermath::batch
