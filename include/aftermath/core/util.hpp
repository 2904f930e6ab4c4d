#pragma once
/// @file util.hpp
/// Small shared helpers: robust statistics and timestamps.
#include <string>
#include <vector>

namespace aftermath {

/// Exact median (mean of the two middle values for an even count). Reorders `v`. Empty -> 0.
double median_of(std::vector<double>& v);

/// The current time in UTC as ISO 8601, e.g. "2026-11-27T08:40:00Z".
std::string utc_timestamp();

}  // namespace aftermath
