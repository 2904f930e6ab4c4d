// Small shared helpers of core/util.hpp.
#include <gtest/gtest.h>

#include <vector>

#include "aftermath/core/util.hpp"

namespace aftermath {

TEST(MedianOf, OddEvenAndEmpty) {
  std::vector<double> odd{5, 1, 3}, even{4, 1, 3, 2}, none;
  EXPECT_DOUBLE_EQ(median_of(odd), 3);
  EXPECT_DOUBLE_EQ(median_of(even), 2.5);
  EXPECT_DOUBLE_EQ(median_of(none), 0);
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
