#pragma once
/// @file shard.hpp
/// Deterministic partition of a manifest's jobs for job arrays: job k (0-based, manifest order)
/// belongs to shard k mod N. Shards 0/N .. N-1/N together hold every job exactly once.
#include <cstddef>
#include <string>

namespace aftermath::batch {

struct Shard {
  int index = 0;
  int count = 1;
  bool operator==(const Shard&) const = default;
};

/// Parses "i/N" with 0 <= i < N, 1 <= N <= 100000. Throws Error(usage).
Shard parse_shard(const std::string& text);
/// True if the job at `job_index` belongs to `shard`.
bool in_shard(std::size_t job_index, const Shard& shard);

}  // namespace aftermath::batch
