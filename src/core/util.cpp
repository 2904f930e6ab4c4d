#include "aftermath/core/util.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <limits>
#include <optional>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <fstream>
#include <sstream>

namespace aftermath {

namespace {

/// Order-preserving unsigned keys: negative values' bits inverted, the sign bit set on the
/// others, so the order of the integers is the order of the values.
template <class T>
struct OrderKey;
template <>
struct OrderKey<float> {
  using Bits = std::uint32_t;
  static constexpr Bits kSignBit = 0x80000000u, kExponentMask = 0x7f800000u;
};
template <>
struct OrderKey<double> {
  using Bits = std::uint64_t;
  static constexpr Bits kSignBit = 0x8000000000000000ull, kExponentMask = 0x7ff0000000000000ull;
};

template <class T>
typename OrderKey<T>::Bits bits_of(T x) {
  typename OrderKey<T>::Bits b;
  std::memcpy(&b, &x, sizeof b);
  return b;
}

/// A value of rank k, and the value of rank k - 1 when it was at hand (see narrowed_kth).
template <class T>
struct Ranked {
  T value;
  std::optional<T> previous;
};

/// The value of rank k of `v` (left unchanged), and of rank k - 1 when it is among the values
/// ordered at the end. Counting the values per bucket of the next kBits bits of their keys finds
/// the bucket that holds rank k; only its values go on, to the next bits while they are many, and
/// the few left are ordered. The value is the one nth_element gives: equal values have equal bits
/// and share every bucket, and the values left hold a run of consecutive ranks. nullopt for a NaN
/// or a negative zero (equal to +0 with other bits), found in the first counting pass.
template <class T, int kBits>
std::optional<Ranked<T>> narrowed_kth(const std::vector<T>& v, std::size_t k, std::size_t few) {
  using K = OrderKey<T>;
  using Bits = typename K::Bits;
  constexpr int kWidth = 8 * static_cast<int>(sizeof(Bits));
  constexpr Bits kBucketMask = (Bits{1} << kBits) - 1;
  const auto key = [](Bits b) { return (b & K::kSignBit) != 0 ? ~b : (b | K::kSignBit); };
  std::vector<std::uint32_t> count(std::size_t{1} << kBits);
  for (const T x : v) {
    const Bits b = bits_of(x);
    if (((b & K::kExponentMask) == K::kExponentMask &&
         (b & ~K::kExponentMask & ~K::kSignBit) != 0) ||
        b == K::kSignBit) {
      return std::nullopt;
    }
    ++count[key(b) >> (kWidth - kBits)];
  }
  std::vector<T> rest;
  const std::vector<T>* in = &v;
  for (int shift = kWidth - kBits; in->size() >= few && shift >= 0; shift -= kBits) {
    if (in != &v) {
      std::fill(count.begin(), count.end(), 0u);
      for (const T x : *in) ++count[(key(bits_of(x)) >> shift) & kBucketMask];
    }
    std::size_t below = 0, bucket = 0;
    while (below + count[bucket] <= k) below += count[bucket++];
    std::vector<T> next;
    next.reserve(count[bucket]);
    for (const T x : *in) {
      if (((key(bits_of(x)) >> shift) & kBucketMask) == bucket) next.push_back(x);
    }
    k -= below;
    rest = std::move(next);
    in = &rest;
  }
  if (in == &v) rest = v;
  const auto at = rest.begin() + static_cast<std::ptrdiff_t>(k);
  std::nth_element(rest.begin(), at, rest.end());
  Ranked<T> r{*at, std::nullopt};
  if (k > 0) r.previous = *std::max_element(rest.begin(), at);
  return r;
}

}  // namespace

// Floats: 12-bit digits (a 16 KB table), so the first pass already splits the exponent's octaves.
float kth_smallest(std::vector<float>& v, std::size_t k) {
  constexpr std::size_t kFew = 4096;  // below, nth_element is as fast
  if (v.size() >= kFew) {
    if (const auto r = narrowed_kth<float, 12>(v, k, kFew)) return r->value;
  }
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

namespace {

/// The median of values that are all multiples of 1/2 spanning fewer than 2^20 of them (integer
/// imagery, and its absolute deviations from an integer or half-integer median), by counting:
/// O(n) where nth_element pays for the many ties. nullopt for any other input (also NaN and a
/// negative zero, which the count would not tell from +0). The same value as the ordering path:
/// the two middle ranks are exact multiples of 1/2.
std::optional<double> median_of_half_steps(const std::vector<double>& v) {
  constexpr double kLimit = 1099511627776.0;  // 2^40 half steps: exact in int64 and double
  constexpr std::int64_t kMaxSpan = std::int64_t{1} << 20;
  std::int64_t lo = 0, hi = 0;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const double t = 2.0 * v[i];
    if (!(std::abs(t) < kLimit)) return std::nullopt;
    const auto q = static_cast<std::int64_t>(t);
    if (static_cast<double>(q) != t || (q == 0 && std::signbit(t))) return std::nullopt;
    if (i == 0) lo = hi = q;
    lo = std::min(lo, q);
    hi = std::max(hi, q);
    if (hi - lo >= kMaxSpan) return std::nullopt;
  }
  std::vector<std::uint32_t> count(static_cast<std::size_t>(hi - lo + 1));
  for (const double x : v)
    ++count[static_cast<std::size_t>(static_cast<std::int64_t>(2.0 * x) - lo)];
  const std::size_t n = v.size(), mid = n / 2;
  // The value of rank `k`: the first bucket whose cumulative count passes k.
  const auto rank = [&](std::size_t k) {
    std::size_t below = 0, b = 0;
    while (below + count[b] <= k) below += count[b++];
    return static_cast<double>(lo + static_cast<std::int64_t>(b)) * 0.5;
  };
  const double upper = rank(mid);
  if (n % 2 == 1) return upper;
  return 0.5 * (rank(mid - 1) + upper);
}

}  // namespace

double median_of(std::vector<double>& v) {
  if (v.empty()) return 0.0;
  const std::size_t n = v.size();
  const std::size_t mid = n / 2;
  constexpr std::size_t kFew = 4096;  // below, ordering is as fast
  if (n >= kFew) {
    // Integer imagery, with its many ties, is counted; any other values (resampled or
    // normalised ones, residuals) are narrowed by the high bits of their keys: 16-bit digits
    // (a 256 KB table), so the first pass splits sign, exponent and four bits of mantissa.
    if (const auto m = median_of_half_steps(v)) return *m;
    if (const auto r = narrowed_kth<double, 16>(v, mid, kFew)) {
      if (n % 2 == 1) return r->value;
      if (r->previous) return 0.5 * (*r->previous + r->value);
      // Rank mid is the first value left by the narrowing: rank mid - 1 is the largest value
      // below it, unless that value also holds rank mid - 1 (a tie across the two ranks).
      std::size_t below = 0;
      double lower = -std::numeric_limits<double>::infinity();
      for (const double x : v) {
        if (x < r->value) {
          ++below;
          lower = std::max(lower, x);
        }
      }
      return 0.5 * ((below < mid ? r->value : lower) + r->value);
    }
  }
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid), v.end());
  const double upper = v[mid];
  if (n % 2 == 1) return upper;
  const double lower = *std::max_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid));
  return 0.5 * (lower + upper);
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

void keep_freed_memory_in_heap() {
#if defined(__GLIBC__)
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  mallopt(M_TOP_PAD, 64 << 20);
#endif
}

void release_free_heap() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

}  // namespace aftermath
