// --shard i/N: job k belongs to shard k mod N.
#include "aftermath/batch/shard.hpp"

#include <charconv>

#include "aftermath/core/error.hpp"

namespace aftermath::batch {

namespace {
bool parse_int(std::string_view s, int& v) {
  if (s.empty()) return false;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}
}  // namespace

Shard parse_shard(const std::string& text) {
  const auto slash = text.find('/');
  Shard s;
  if (slash == std::string::npos || !parse_int(std::string_view(text).substr(0, slash), s.index) ||
      !parse_int(std::string_view(text).substr(slash + 1), s.count)) {
    throw Error(ErrorKind::usage, "--shard '" + text + "': expected i/N, e.g. 0/3");
  }
  if (s.count < 1 || s.count > 100000) {
    throw Error(ErrorKind::usage, "--shard '" + text + "': N must be in [1, 100000]");
  }
  if (s.index < 0 || s.index >= s.count) {
    throw Error(ErrorKind::usage, "--shard '" + text + "': i must be in [0, N-1] (0-based)");
  }
  return s;
}

bool in_shard(std::size_t job_index, const Shard& shard) {
  return shard.count <= 1 || job_index % static_cast<std::size_t>(shard.count) == static_cast<std::size_t>(shard.index);
}

}  // namespace aftermath::batch
