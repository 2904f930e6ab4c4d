#include "aftermath/core/util.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <ctime>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <fstream>
#include <sstream>

namespace aftermath {

namespace {

// Rank k by the high bits: for non-negative floats and doubles (sign bit clear, not NaN) the
// order of the bit patterns as unsigned integers is the order of the values, so counting the
// values per bucket of their top `Bits` bits (below the sign) finds the bucket that holds rank
// k; only that bucket is ordered. The value is the one nth_element gives: equal values have
// equal bits and share a bucket.
template <class T, class U, int Bits>
T kth_by_high_bits(std::vector<T>& v, std::size_t k) {
  constexpr std::size_t kMinSize = 4096;  // below, nth_element is as fast
  constexpr int kShift = static_cast<int>(sizeof(U) * 8) - 1 - Bits;
  constexpr U kSignBit = U{1} << (sizeof(U) * 8 - 1);
  constexpr U kExponentMask =
      static_cast<U>(sizeof(U) == 4 ? 0x7f800000ull : 0x7ff0000000000000ull);
  const auto ordinary = [&] {
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k];
  };
  if (v.size() < kMinSize) return ordinary();
  std::vector<std::uint32_t> count(std::size_t{1} << Bits, 0);
  U sign = 0;
  bool nan = false;
  for (const T x : v) {
    U b;
    std::memcpy(&b, &x, sizeof b);
    sign |= b;
    nan |= (b & kExponentMask) == kExponentMask && (b & ~kExponentMask & ~kSignBit) != 0;
    ++count[static_cast<std::size_t>((b >> kShift) & ((U{1} << Bits) - 1))];
  }
  if ((sign & kSignBit) != 0 || nan) return ordinary();
  std::size_t below = 0, bucket = 0;
  while (below + count[bucket] <= k) below += count[bucket++];
  std::vector<T> in_bucket;
  in_bucket.reserve(count[bucket]);
  for (const T x : v) {
    U b;
    std::memcpy(&b, &x, sizeof b);
    if (static_cast<std::size_t>(b >> kShift) == bucket) in_bucket.push_back(x);
  }
  const auto at = in_bucket.begin() + static_cast<std::ptrdiff_t>(k - below);
  std::nth_element(in_bucket.begin(), at, in_bucket.end());
  return *at;
}

}  // namespace

float kth_smallest(std::vector<float>& v, std::size_t k) {
  return kth_by_high_bits<float, std::uint32_t, 11>(v, k);  // 8 exponent bits, 3 of the fraction
}

double kth_smallest(std::vector<double>& v, std::size_t k) {
  return kth_by_high_bits<double, std::uint64_t, 16>(v, k);  // 11 exponent bits, 5 of the fraction
}

double median_of(std::vector<double>& v) {
  if (v.empty()) return 0.0;
  const std::size_t n = v.size();
  const std::size_t mid = n / 2;
  const double upper = kth_smallest(v, mid);
  if (n % 2 == 1) return upper;
  return 0.5 * (kth_smallest(v, mid - 1) + upper);
}

std::string utc_timestamp() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void for_each_serial(std::size_t n, const std::function<void(std::size_t)>& body) {
  for (std::size_t i = 0; i < n; ++i) body(i);
}

ResidentMemory resident_memory() {
  ResidentMemory m;
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    const bool rss = line.rfind("VmRSS:", 0) == 0, hwm = line.rfind("VmHWM:", 0) == 0;
    if (!rss && !hwm) continue;
    std::istringstream fields(line.substr(6));
    double kb = -1;
    if (!(fields >> kb)) continue;
    (rss ? m.now_mb : m.peak_mb) = kb / 1024.0;
  }
  return m;
}

void release_free_heap() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

}  // namespace aftermath
