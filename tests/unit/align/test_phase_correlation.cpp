// Phase correlation: sign convention, sub-pixel accuracy, large shifts, failure reasons.
#include <cmath>
#include <iostream>
#include <string>

#include <gtest/gtest.h>
#include <opencv2/core.hpp>

#include "aftermath/align/registration.hpp"
#include "synthetic.hpp"

namespace aftermath {
namespace {

using test::make_synthetic_pair;
using test::make_texture;
using test::mean_of;
using test::shift_image;
using test::SyntheticOptions;

double error_of(const cv::Point2d& measured, const cv::Point2d& truth) {
  return std::hypot(measured.x - truth.x, measured.y - truth.y);
}

/// The shift cv::warpAffine (used by test::shift_image) really applies: sub-pixel positions are
/// quantised to 1/32 px, so (2.3, -1.7) is in fact (2.3125, -1.6875).
cv::Point2d applied_shift(cv::Point2d s) { return {std::round(s.x * 32) / 32, std::round(s.y * 32) / 32}; }

void report(const std::string& name, const PhaseCorrelation& pc, const cv::Point2d& truth) {
  const double err = error_of(pc.shift, truth);
  std::cout << "[align] " << name << ": truth (" << truth.x << ", " << truth.y << ") measured (" << pc.shift.x
            << ", " << pc.shift.y << ") error " << err << " px (vs the shift actually applied "
            << error_of(pc.shift, applied_shift(truth)) << " px), peak " << pc.peak << "\n";
  ::testing::Test::RecordProperty(name + "_error_px", std::to_string(err));
}

struct Pair {
  cv::Mat pre, post;
};

Pair intensity_pair(int size, cv::Point2d shift, double gain = 1.0, double offset = 0.0, double noise = 1.0) {
  SyntheticOptions o;
  o.width = size;
  o.height = size;
  o.shift = shift;
  o.gain = gain;
  o.offset = offset;
  o.noise = noise;
  const auto pair = make_synthetic_pair(o);
  return {mean_of(pair.pre), mean_of(pair.post)};
}

TEST(PhaseCorrelate, SignConventionIntegerShift) {
  const cv::Mat ref = make_texture(128, 128, 3);
  const cv::Point2d truth(3, -5);
  const cv::Mat mov = shift_image(ref, truth);  // mov(p + truth) = ref(p)
  const auto pc = phase_correlate(ref, mov, {}, {}, 16);
  ASSERT_TRUE(pc.ok) << pc.reason;
  report("sign_integer", pc, truth);
  EXPECT_LT(error_of(pc.shift, truth), 0.02);
  EXPECT_GT(pc.peak, 0.5);
  EXPECT_LE(pc.peak, 1.0);
}

TEST(PhaseCorrelate, SubPixelShiftOnWindows) {
  const cv::Point2d truth(2.3, -1.7);
  const Pair p = intensity_pair(512, truth);
  for (int wy = 0; wy < 2; ++wy) {
    for (int wx = 0; wx < 2; ++wx) {
      const cv::Rect r(wx * 256, wy * 256, 256, 256);
      const auto pc = phase_correlate(p.pre(r), p.post(r), {}, {}, 64);
      ASSERT_TRUE(pc.ok) << pc.reason;
      report("subpixel_window_" + std::to_string(wy * 2 + wx), pc, truth);
      EXPECT_LT(error_of(pc.shift, truth), 0.05);
      EXPECT_LT(error_of(pc.shift, applied_shift(truth)), 0.01);
    }
  }
}

TEST(PhaseCorrelate, SubPixelShiftWithRadiometricChange) {
  const cv::Point2d truth(2.3, -1.7);
  const Pair p = intensity_pair(512, truth, 1.3, 10.0, 2.0);
  for (int wy = 0; wy < 2; ++wy) {
    for (int wx = 0; wx < 2; ++wx) {
      const cv::Rect r(wx * 256, wy * 256, 256, 256);
      const auto pc = phase_correlate(p.pre(r), p.post(r), {}, {}, 64);
      ASSERT_TRUE(pc.ok) << pc.reason;
      report("radiometric_window_" + std::to_string(wy * 2 + wx), pc, truth);
      EXPECT_LT(error_of(pc.shift, truth), 0.05);
      EXPECT_LT(error_of(pc.shift, applied_shift(truth)), 0.01);
    }
  }
}

TEST(PhaseCorrelate, HeavyDamageDoesNotPullTheEstimate) {
  // Half of the roofs replaced by rubble (darker than the ground: the roof edges reverse
  // polarity) and noise: the changed pixels are masked out before the final refinement.
  const cv::Point2d truth(2.3, -1.7);
  SyntheticOptions o;
  o.shift = truth;
  o.destroyed_fraction = 0.5;
  o.noise = 2;
  o.seed = 10;
  const auto pair = make_synthetic_pair(o);
  const cv::Mat pre = mean_of(pair.pre), post = mean_of(pair.post);
  for (int w = 0; w < 4; ++w) {
    const cv::Rect r((w % 2) * 256, (w / 2) * 256, 256, 256);
    const auto pc = phase_correlate(pre(r), post(r), {}, {}, 64);
    ASSERT_TRUE(pc.ok) << pc.reason;
    report("heavy_damage_window_" + std::to_string(w), pc, truth);
    EXPECT_LT(error_of(pc.shift, truth), 0.05);
    EXPECT_LT(error_of(pc.shift, applied_shift(truth)), 0.02);
  }
}

TEST(PhaseCorrelate, RepetitiveStructureFindsTheTrueShift) {
  // Rows of identical buildings: a pattern repeated every 12 px across x, plus detail that
  // alternates in sign from row to row (all of it at the vertical Nyquist frequency, which the
  // pyramid's smoothing removes) and sensor noise. At the coarsest level only the repetition is
  // left: the alias of the true shift 8.4 px at -3.6 px overlaps more and peaks highest, the true
  // shift at ~0.88 of it. Followed down, the detail at full resolution picks the true one.
  const cv::Mat pattern = make_texture(256, 256, 21);
  for (const unsigned seed : {22u, 23u}) {
    const cv::Mat detail = make_texture(256, 256, seed);
    cv::Mat ref(256, 256, CV_32F);
    for (int y = 0; y < ref.rows; ++y) {
      const float sign = y % 2 ? 0.5f : -0.5f;
      for (int x = 0; x < ref.cols; ++x)
        ref.at<float>(y, x) =
            pattern.at<float>(y, x % 12) + sign * (detail.at<float>(y, x) - 110.f);
    }
    const cv::Point2d truth(8.4, -2.0);  // whole rows: the row alternation shifts exactly
    cv::Mat mov = shift_image(ref, truth), noise(ref.size(), CV_32F);
    cv::RNG rng(seed);
    rng.fill(noise, cv::RNG::NORMAL, 0.0, 1.0);
    mov += noise;
    const auto pc = phase_correlate(ref, mov, {}, {}, 16);
    ASSERT_TRUE(pc.ok) << pc.reason;
    report("repetitive_" + std::to_string(seed), pc, truth);
    EXPECT_LT(error_of(pc.shift, applied_shift(truth)), 0.05);
  }
}

TEST(PhaseCorrelate, LargerShifts) {
  for (const cv::Point2d truth : {cv::Point2d(17.4, -9.3), cv::Point2d(40, 25)}) {
    const Pair p = intensity_pair(512, truth);
    const auto pc = phase_correlate(p.pre, p.post, {}, {}, 64);
    ASSERT_TRUE(pc.ok) << pc.reason;
    report("large_512_" + std::to_string(static_cast<int>(truth.x)), pc, truth);
    EXPECT_LT(error_of(pc.shift, truth), 0.05);
    // The same on a 256 x 256 window.
    const cv::Rect r(128, 128, 256, 256);
    const auto pw = phase_correlate(p.pre(r), p.post(r), {}, {}, 64);
    ASSERT_TRUE(pw.ok) << pw.reason;
    report("large_256_" + std::to_string(static_cast<int>(truth.x)), pw, truth);
    EXPECT_LT(error_of(pw.shift, truth), 0.05);
  }
}

TEST(PhaseCorrelate, ToATenthIsWithinATenthOfTheShift) {
  // The refinement the coarse prior asks for (estimate.cpp): iterate until the update is below
  // 0.1 px, no change masking. Within about a tenth of a pixel of the shift applied; the default
  // refinement within a hundredth.
  for (const cv::Point2d truth :
       {cv::Point2d(2.3, -1.7), cv::Point2d(17.4, -9.3), cv::Point2d(-0.5, 0.5)}) {
    const Pair p = intensity_pair(512, truth);
    const auto coarse =
        phase_correlate(p.pre, p.post, {}, {}, 64, PhaseCorrelationRefinement{0.1, false});
    const auto fine = phase_correlate(p.pre, p.post, {}, {}, 64);
    ASSERT_TRUE(coarse.ok) << coarse.reason;
    ASSERT_TRUE(fine.ok) << fine.reason;
    report("to_a_tenth_" + std::to_string(static_cast<int>(truth.x)), coarse, truth);
    EXPECT_LT(error_of(coarse.shift, applied_shift(truth)), 0.1 + 0.05);
    EXPECT_LT(error_of(fine.shift, applied_shift(truth)), 0.01);
    EXPECT_GT(coarse.peak, 0.5 * fine.peak);
  }
}

TEST(PhaseCorrelate, VeryLargeShiftOn1024) {
  const cv::Point2d truth(150, -20);
  const Pair p = intensity_pair(1024, truth);
  const auto pc = phase_correlate(p.pre, p.post, {}, {}, 256);
  ASSERT_TRUE(pc.ok) << pc.reason;
  report("very_large_1024", pc, truth);
  EXPECT_LT(error_of(pc.shift, truth), 0.1);
}

TEST(PhaseCorrelate, ConstantImagesHaveNoTexture) {
  const cv::Mat flat(128, 128, CV_32F, cv::Scalar(42));
  const cv::Mat tex = make_texture(128, 128, 5);
  for (const auto& [a, b] : {std::pair{flat, flat}, std::pair{flat, tex}, std::pair{tex, flat}}) {
    const auto pc = phase_correlate(a, b, {}, {}, 16);
    EXPECT_FALSE(pc.ok);
    EXPECT_EQ(pc.reason, "no texture");
    EXPECT_FALSE(std::isnan(pc.shift.x) || std::isnan(pc.shift.y) || std::isnan(pc.peak));
  }
  const cv::Mat zeros = cv::Mat::zeros(64, 64, CV_32F);
  const auto pz = phase_correlate(zeros, zeros, {}, {}, 8);
  EXPECT_FALSE(pz.ok);
  EXPECT_EQ(pz.reason, "no texture");
}

TEST(PhaseCorrelate, HalfInvalidWindow) {
  const cv::Point2d truth(2.3, -1.7);
  const Pair p = intensity_pair(512, truth);
  const cv::Rect r(128, 128, 256, 256);
  cv::Mat ref = p.pre(r).clone(), mov = p.post(r).clone();
  cv::Mat ref_valid(ref.size(), CV_8U, cv::Scalar(255)), mov_valid(mov.size(), CV_8U, cv::Scalar(255));
  // Left half of the moving window is nodata (garbage values that must be ignored).
  mov_valid(cv::Rect(0, 0, 128, 256)).setTo(0);
  mov(cv::Rect(0, 0, 128, 256)).setTo(-9999);
  const auto pc = phase_correlate(ref, mov, ref_valid, mov_valid, 64);
  ASSERT_TRUE(pc.ok) << pc.reason;
  report("half_invalid", pc, truth);
  EXPECT_LT(error_of(pc.shift, truth), 0.05);

  // NaN pixels count as invalid too.
  cv::Mat mov_nan = p.post(r).clone();
  mov_nan(cv::Rect(0, 0, 128, 256)).setTo(std::nan(""));
  const auto pn = phase_correlate(ref, mov_nan, {}, {}, 64);
  ASSERT_TRUE(pn.ok) << pn.reason;
  EXPECT_LT(error_of(pn.shift, truth), 0.05);

  // Less than half valid: a clear reason.
  mov_valid(cv::Rect(0, 0, 160, 256)).setTo(0);
  const auto pf = phase_correlate(ref, mov, ref_valid, mov_valid, 64);
  EXPECT_FALSE(pf.ok);
  EXPECT_EQ(pf.reason, "too few valid pixels");
}

TEST(PhaseCorrelate, ShiftBeyondMaximum) {
  const cv::Point2d truth(20.4, 3.1);
  const Pair p = intensity_pair(256, truth);
  const auto within = phase_correlate(p.pre, p.post, {}, {}, 32);
  ASSERT_TRUE(within.ok) << within.reason;
  EXPECT_LT(error_of(within.shift, truth), 0.05);
  const auto beyond = phase_correlate(p.pre, p.post, {}, {}, 10);
  EXPECT_FALSE(beyond.ok);
  EXPECT_EQ(beyond.reason, "shift beyond max_shift_px");
}

TEST(PhaseCorrelate, NonSquareAndOddSizes) {
  const cv::Point2d truth(-1.6, 0.8);
  const Pair p = intensity_pair(512, truth);
  const cv::Rect r(37, 61, 301, 173);
  const auto pc = phase_correlate(p.pre(r), p.post(r), {}, {}, 32);
  ASSERT_TRUE(pc.ok) << pc.reason;
  report("odd_size", pc, truth);
  EXPECT_LT(error_of(pc.shift, truth), 0.05);
}

// The spectra are packed (CCS), whose layout depends on the parity of each transform size:
// windows whose optimal DFT sizes are odd (135 = 3^3 x 5, 225 = 3^2 x 5^2) on either axis or
// both, with no pyramid (a small search radius), must measure the shift as even ones do.
TEST(PhaseCorrelate, OddTransformSizes) {
  const cv::Point2d truth(-1.6, 0.8);
  const Pair p = intensity_pair(512, truth);
  for (const cv::Size size :
       {cv::Size(135, 225), cv::Size(135, 160), cv::Size(160, 225), cv::Size(160, 160)}) {
    ASSERT_EQ(cv::getOptimalDFTSize(size.width), size.width);
    ASSERT_EQ(cv::getOptimalDFTSize(size.height), size.height);
    const cv::Rect r(40, 50, size.width, size.height);
    const auto pc = phase_correlate(p.pre(r), p.post(r), {}, {}, 6);
    ASSERT_TRUE(pc.ok) << pc.reason << " " << size;
    EXPECT_LT(error_of(pc.shift, truth), 0.05) << size;
    EXPECT_GT(pc.peak, 0.5) << size;
  }
}

TEST(PhaseCorrelate, BadInputsAreReported) {
  const cv::Mat a = make_texture(64, 64, 1), b = make_texture(32, 64, 2);
  EXPECT_FALSE(phase_correlate(a, b, {}, {}, 8).ok);
  EXPECT_FALSE(phase_correlate(cv::Mat(), cv::Mat(), {}, {}, 8).ok);
}

}  // namespace
}  // namespace aftermath
