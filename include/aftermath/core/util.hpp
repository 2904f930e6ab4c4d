#pragma once
/// @file util.hpp
/// Small shared helpers: robust statistics, timestamps, and the ForEach through which the
/// engine lets an algorithm run independent pieces in parallel (algorithms never see threads).
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace aftermath {

/// Exact median (mean of the two middle values for an even count). Reorders `v`. Empty -> 0.
double median_of(std::vector<double>& v);

/// Runs body(i) for every i in [0, n) and returns when all are done, in any order or
/// concurrently. The engine passes one over its task arena; results must not depend on it.
using ForEach = std::function<void(std::size_t n, const std::function<void(std::size_t)>& body)>;
/// Runs the bodies one after another.
void for_each_serial(std::size_t n, const std::function<void(std::size_t)>& body);

/// The current time in UTC as ISO 8601, e.g. "2026-11-27T08:40:00Z".
std::string utc_timestamp();

}  // namespace aftermath
