// The misregistration layer's rounding to 0.01 px (engine, private: src/engine/alignment.hpp).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "aftermath/align/registration.hpp"
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

// A model without a lattice gives one value everywhere: the layer is that value rounded once,
// the same as rounding every pixel of misregistration(); -1 where the core is invalid.
TEST(MisregistrationLayer, UniformModelsGiveTheRoundedValueEverywhere) {
  Registration reg;
  reg.model = "translation";
  reg.shift = {2.3, -1.7};
  reg.uncertainty = 0.0123456;
  ASSERT_TRUE(uniform_misregistration(reg).has_value());
  const Window core{512, 1024, 40, 30};
  cv::Mat valid(30, 40, CV_8U, cv::Scalar(255));
  valid.at<uchar>(5, 7) = 0;
  const cv::Mat m = engine::misregistration_core(reg, core, valid);
  cv::Mat expected = misregistration(reg, core);
  for (int y = 0; y < expected.rows; ++y)
    engine::round_to_hundredths(expected.ptr<float>(y), expected.cols);
  expected.at<float>(5, 7) = -1.0f;
  ASSERT_EQ(m.type(), CV_32F);
  EXPECT_EQ(cv::norm(m, expected, cv::NORM_INF), 0.0);
  EXPECT_EQ(m.at<float>(0, 0), 0.01f);
  Registration none;  // identity: unknown everywhere
  EXPECT_EQ(uniform_misregistration(none), -1.0f);
  EXPECT_EQ(cv::norm(engine::misregistration_core(none, core, {}), cv::NORM_INF), 1.0);
  // A lattice: not uniform.
  reg.field.spacing = 256;
  reg.field.origin = {0, 0};
  reg.field.sigma = (cv::Mat_<double>(2, 2) << 0.1, 0.2, 0.3, 0.4);
  EXPECT_FALSE(uniform_misregistration(reg).has_value());
}
