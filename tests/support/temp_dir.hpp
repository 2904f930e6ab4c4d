#pragma once
// A unique temporary directory for one test, removed with everything in it at scope exit.
#include <stdlib.h>

#include <filesystem>
#include <string>

namespace aftermath::test {

struct TempDir {
  std::filesystem::path path;
  /// `prefix` names the test suite in the directory name (/tmp/<prefix>-XXXXXX).
  explicit TempDir(const std::string& prefix = "aftermath-test") {
    std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
    path = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

}  // namespace aftermath::test
