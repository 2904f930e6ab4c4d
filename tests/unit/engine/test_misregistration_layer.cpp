// The misregistration layer's rounding to 0.01 px (engine, private: src/engine/alignment.hpp).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "alignment.hpp"

using namespace aftermath;

// round_to_hundredths multiplies by 0.01 where the definition divides by 100: the same float
// for every hundredth below 2^24 / 100 = 167,772 px, each checked, from below and above the
// rounding point and on it.
TEST(MisregistrationLayer, HundredthsAreTheDivisionsValuesEverywhereBelow167772Px) {
  constexpr std::int64_t kLimit = std::int64_t{1} << 24;
  constexpr std::int64_t kChunk = std::int64_t{1} << 20;
  std::vector<float> v, expected;
  std::int64_t mismatches = 0;
  for (std::int64_t start = 0; start < kLimit; start += kChunk) {
    v.clear();
    expected.clear();
    for (std::int64_t k = start; k < start + kChunk; ++k) {
      for (const double f : {-0.49, 0.0, 0.49}) {
        const auto x = static_cast<float>((static_cast<double>(k) + f) / 100.0);
        v.push_back(x);
        expected.push_back(
            x >= 0 ? static_cast<float>(std::floor(static_cast<double>(x) * 100.0 + 0.5) / 100.0)
                   : x);
      }
    }
    engine::round_to_hundredths(v.data(), static_cast<int>(v.size()));
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (v[i] != expected[i] && ++mismatches <= 5) {
        ADD_FAILURE() << "at " << expected[i] << ": " << v[i];
      }
    }
  }
  EXPECT_EQ(mismatches, 0);
  // The fill and other negative values are kept; 0 stays 0.
  std::vector<float> fill{-1.0f, -0.004f, 0.0f, 0.004f, 0.006f};
  engine::round_to_hundredths(fill.data(), static_cast<int>(fill.size()));
  EXPECT_EQ(fill, (std::vector<float>{-1.0f, -0.004f, 0.0f, 0.0f, 0.01f}));
}
