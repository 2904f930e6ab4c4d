// Small shared helpers of core/util.hpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "aftermath/core/util.hpp"

namespace aftermath {

TEST(MedianOf, OddEvenAndEmpty) {
  std::vector<double> odd{5, 1, 3}, even{4, 1, 3, 2}, none;
  EXPECT_DOUBLE_EQ(median_of(odd), 3);
  EXPECT_DOUBLE_EQ(median_of(even), 2.5);
  EXPECT_DOUBLE_EQ(median_of(none), 0);
}

// The counting path (large inputs of multiples of 1/2 over a bounded span) gives what ordering
// gives: odd and even counts, ties, negatives, half steps; and inputs it must not count (a
// fraction, a negative zero, NaN, a span too wide) still get the ordered median.
TEST(MedianOf, CountingEqualsOrdering) {
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> intensity(0, 4000), small(-3, 3);
  const auto ordered = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t m = v.size() / 2;
    return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
  };
  for (const std::size_t n : {std::size_t{5000}, std::size_t{5001}, std::size_t{200000}}) {
    std::vector<double> ints(n), halves(n), ties(n);
    for (std::size_t i = 0; i < n; ++i) {
      ints[i] = intensity(rng);
      halves[i] = std::abs(intensity(rng) - 1999.5);  // deviations from a half-integer median
      ties[i] = small(rng);
    }
    for (auto* v : {&ints, &halves, &ties}) {
      std::vector<double> copy = *v;
      EXPECT_EQ(median_of(copy), ordered(*v)) << n;
    }
    std::vector<double> fraction = ints, nzero = ints, wide = ints, nan = ints;
    fraction[n / 2] = 0.25;
    nzero[n / 3] = -0.0;
    wide[1] = 4e6;
    EXPECT_EQ(median_of(fraction), ordered(fraction)) << n;
    EXPECT_EQ(median_of(nzero), ordered(nzero)) << n;
    EXPECT_EQ(median_of(wide), ordered(wide)) << n;
    nan[0] = std::numeric_limits<double>::quiet_NaN();
    EXPECT_NO_THROW(median_of(nan));  // ordered as before (NaN has no rank)
  }
}

// The narrowed path (large inputs that are not multiples of 1/2: resampled values, residuals)
// gives what ordering gives: odd and even counts, both signs, heavy ties of fractions (also when
// the two middle ranks share a value), a narrow range, infinity.
TEST(MedianOf, NarrowingEqualsOrdering) {
  std::mt19937 rng(5);
  std::lognormal_distribution<double> spread(2.0, 3.0);
  std::uniform_int_distribution<int> few(0, 5);
  std::uniform_real_distribution<double> narrow(1000.0, 1001.0);
  const auto ordered = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t m = v.size() / 2;
    return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
  };
  for (const std::size_t n :
       {std::size_t{4096}, std::size_t{5001}, std::size_t{70000}, std::size_t{400001}}) {
    std::vector<double> signs(n), ties(n), close(n);
    for (std::size_t i = 0; i < n; ++i) {
      signs[i] = (i % 3 == 0 ? -1.0 : 1.0) * spread(rng) + 0.1;
      ties[i] = few(rng) * 0.3;
      close[i] = narrow(rng);
    }
    signs[n / 2] = std::numeric_limits<double>::infinity();
    std::vector<double> split = close;  // the middle ranks of an even count on either side of a gap
    std::sort(split.begin(), split.end());
    for (std::size_t i = 0; i < n / 2; ++i) split[i] -= 5.0;
    std::shuffle(split.begin(), split.end(), rng);
    for (const auto* v : {&signs, &ties, &close, &split}) {
      std::vector<double> copy = *v;
      EXPECT_EQ(median_of(copy), ordered(*v)) << n;
    }
  }
  // Rank n/2 the smallest of a bucket that stays large: rank n/2 - 1 lies in another bucket.
  std::vector<double> gap(8192);
  for (std::size_t i = 0; i < 4096; ++i) {
    gap[i] = 1e-3 * static_cast<double>(i) + 0.1;
    gap[4096 + i] = 1000.0 + 1e-4 * static_cast<double>(i);
  }
  std::shuffle(gap.begin(), gap.end(), rng);
  EXPECT_EQ(median_of(gap), 0.5 * ((1e-3 * 4095.0 + 0.1) + 1000.0));
}

// kth_smallest gives what nth_element gives, on the narrowed path (large: spread values, heavy
// ties, zeros, infinity, a narrow range, both signs) and on the plain one (small, or with a
// negative zero).
TEST(KthSmallest, EqualsNthElementOnEveryPath) {
  std::mt19937 rng(7);
  std::lognormal_distribution<double> spread(2.0, 3.0);
  std::uniform_int_distribution<int> few(0, 5);
  std::uniform_real_distribution<double> narrow(1000.0, 1001.0);
  const auto check = [&](const std::vector<double>& values, const char* what) {
    for (const std::size_t k :
         {std::size_t{0}, values.size() / 3, values.size() / 2, values.size() - 1}) {
      std::vector<float> f(values.begin(), values.end()), fn = f;
      std::nth_element(fn.begin(), fn.begin() + static_cast<std::ptrdiff_t>(k), fn.end());
      EXPECT_EQ(kth_smallest(f, k), fn[k]) << what << " (float) k " << k;
    }
  };
  for (const std::size_t n : {std::size_t{100}, std::size_t{5000}, std::size_t{70001}}) {
    std::vector<double> a(n), b(n), c(n);
    for (std::size_t i = 0; i < n; ++i) {
      a[i] = spread(rng);
      b[i] = few(rng) == 0 ? 0.0 : few(rng) * 0.25;  // many ties and zeros
      c[i] = narrow(rng);
    }
    a[n / 2] = std::numeric_limits<double>::infinity();
    check(a, "spread");
    check(b, "ties");
    check(c, "narrow");
    std::vector<double> negative = c;
    negative[n / 3] = -1.0;
    check(negative, "a negative value");
    std::vector<double> signs(n);
    for (std::size_t i = 0; i < n; ++i) signs[i] = (i % 3 == 0 ? -1.0 : 1.0) * spread(rng);
    check(signs, "both signs");
    negative[n / 3] = -0.0;
    check(negative, "negative zero");
  }
  std::vector<double> even(10000);
  for (std::size_t i = 0; i < even.size(); ++i) even[i] = static_cast<double>((i * 7919) % 10000);
  EXPECT_DOUBLE_EQ(median_of(even), 4999.5);
}

TEST(ResidentMemory, GrowsWithTouchedPagesAndPeakKeepsTheHighWaterMark) {
  const ResidentMemory before = resident_memory();
#if defined(__linux__)
  ASSERT_GT(before.now_mb, 0);
  ASSERT_GE(before.peak_mb, before.now_mb);
  {
    std::vector<char> block(64 << 20, 1);  // 64 MB, every page touched
    const ResidentMemory during = resident_memory();
    EXPECT_GE(during.now_mb, before.now_mb + 60) << static_cast<int>(block[12345]);
    EXPECT_GE(during.peak_mb, during.now_mb);
  }
  release_free_heap();
  const ResidentMemory after = resident_memory();
  EXPECT_GE(after.peak_mb, before.now_mb + 60);  // the peak is not forgotten
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  EXPECT_LT(after.now_mb, after.peak_mb - 30);  // the block went back (sanitizers quarantine it)
#endif
#else
  EXPECT_EQ(before.now_mb, -1);
  release_free_heap();
#endif
}

}  // namespace aftermath
