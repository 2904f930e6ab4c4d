// Tie-point layout and measurement, robust translation fit, resampling with the registration.
#include <cmath>
#include <iostream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <opencv2/core.hpp>

#include "aftermath/align/registration.hpp"
#include "synthetic.hpp"

namespace aftermath {
namespace {

using test::make_synthetic_pair;
using test::make_texture;
using test::SyntheticOptions;

cv::Mat all_valid(int w, int h) { return cv::Mat(h, w, CV_8U, cv::Scalar(255)); }

/// The shift cv::warpAffine (used by test::shift_image) really applies: sub-pixel positions are
/// quantised to 1/32 px.
cv::Point2d applied_shift(cv::Point2d s) { return {std::round(s.x * 32) / 32, std::round(s.y * 32) / 32}; }

// ---------------------------------------------------------------- tie_point_windows

void expect_inside_and_disjoint(const std::vector<Window>& ws, int width, int height) {
  for (std::size_t i = 0; i < ws.size(); ++i) {
    EXPECT_GE(ws[i].x, 0);
    EXPECT_GE(ws[i].y, 0);
    EXPECT_LE(ws[i].x + ws[i].width, width);
    EXPECT_LE(ws[i].y + ws[i].height, height);
    for (std::size_t j = i + 1; j < ws.size(); ++j) EXPECT_TRUE(ws[i].intersect(ws[j]).empty());
  }
}

TEST(TiePointWindows, RegularRowMajorLayout) {
  AlignConfig c;  // 256 px, 25 windows
  const auto ws = tie_point_windows(512, 512, c);
  ASSERT_EQ(ws.size(), 4u);
  EXPECT_EQ(ws[0], (Window{0, 0, 256, 256}));
  EXPECT_EQ(ws[1], (Window{256, 0, 256, 256}));
  EXPECT_EQ(ws[2], (Window{0, 256, 256, 256}));
  EXPECT_EQ(ws[3], (Window{256, 256, 256, 256}));

  const auto big = tie_point_windows(10000, 8000, c);
  ASSERT_EQ(big.size(), 25u);
  expect_inside_and_disjoint(big, 10000, 8000);
  for (std::size_t i = 1; i < big.size(); ++i) {  // row-major
    const bool same_row = big[i].y == big[i - 1].y;
    EXPECT_TRUE(same_row ? big[i].x > big[i - 1].x : big[i].y > big[i - 1].y);
  }
  // Evenly spread: first and last windows near the corners, equal steps.
  EXPECT_LT(big.front().x, 1000);
  EXPECT_GT(big.back().x + big.back().width, 9000);
  EXPECT_EQ(big[1].x - big[0].x, big[2].x - big[1].x);
}

TEST(TiePointWindows, NearSquareAndBounded) {
  AlignConfig c;
  c.max_windows = 10;
  const auto ws = tie_point_windows(10000, 10000, c);
  EXPECT_EQ(ws.size(), 9u);  // 3 x 3 rather than 5 x 2
  expect_inside_and_disjoint(ws, 10000, 10000);
  c.max_windows = 1;
  const auto one = tie_point_windows(10000, 6000, c);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0], (Window{(10000 - 256) / 2, (6000 - 256) / 2, 256, 256}));
  c.max_windows = 25;
  const auto strip = tie_point_windows(3000, 300, c);  // one row only
  EXPECT_EQ(strip.size(), 11u);
  expect_inside_and_disjoint(strip, 3000, 300);
}

TEST(TiePointWindows, SmallGridIsOneClampedWindow) {
  AlignConfig c;
  const auto ws = tie_point_windows(100, 80, c);
  ASSERT_EQ(ws.size(), 1u);
  EXPECT_EQ(ws[0], (Window{0, 0, 100, 80}));
  const auto narrow = tie_point_windows(100, 600, c);  // narrower than a window: one column
  ASSERT_EQ(narrow.size(), 2u);
  EXPECT_EQ(narrow[0].width, 100);
  EXPECT_EQ(narrow[0].height, 256);
  expect_inside_and_disjoint(narrow, 100, 600);
  EXPECT_TRUE(tie_point_windows(0, 100, c).empty());
}

// ---------------------------------------------------------------- measure + fit, end to end

Registration register_pair(const test::SyntheticPair& pair, const AlignConfig& c, int w, int h) {
  const cv::Mat pre = to_intensity(pair.pre), post = to_intensity(pair.post);
  std::vector<TiePoint> ties;
  for (const Window& win : tie_point_windows(w, h, c)) {
    const cv::Rect r = win.rect();
    ties.push_back(measure_tie_point(win, pre(r), all_valid(r.width, r.height), post(r), all_valid(r.width, r.height), c));
  }
  return fit_translation(ties, c);
}

TEST(Registration, RecoversSubPixelShift) {
  for (const bool radiometric : {false, true}) {
    SyntheticOptions o;
    o.shift = {2.3, -1.7};
    if (radiometric) {
      o.gain = 1.3;
      o.offset = 10;
      o.noise = 2;
    }
    const auto pair = make_synthetic_pair(o);
    AlignConfig c;
    const Registration reg = register_pair(pair, c, o.width, o.height);
    ASSERT_EQ(reg.model, "translation") << reg.warning;
    EXPECT_EQ(reg.kept, 4);
    EXPECT_EQ(reg.dropped, 0);
    EXPECT_TRUE(reg.warning.empty());
    const double err = std::hypot(reg.shift.x - o.shift.x, reg.shift.y - o.shift.y);
    const cv::Point2d applied = applied_shift(o.shift);
    const double err_applied = std::hypot(reg.shift.x - applied.x, reg.shift.y - applied.y);
    const std::string name = radiometric ? "registration_radiometric" : "registration";
    std::cout << "[align] " << name << ": truth (2.3, -1.7) measured (" << reg.shift.x << ", " << reg.shift.y
              << ") error " << err << " px (vs the 1/32-px quantised shift warpAffine applied: " << err_applied
              << " px), rmse_before " << reg.rmse_before << ", rmse_after " << reg.rmse_after << "\n";
    RecordProperty(name + "_error_px", std::to_string(err));
    EXPECT_LT(err, 0.05);
    EXPECT_LT(err_applied, 0.01);
    EXPECT_LT(reg.rmse_after, 0.02);
    EXPECT_NEAR(reg.rmse_before, std::hypot(2.3, 1.7), 0.05);
    for (const auto& t : reg.ties) {
      EXPECT_TRUE(t.kept);
      EXPECT_TRUE(t.reason.empty());
      EXPECT_GE(t.peak, c.min_peak);
    }
  }
}

TEST(Registration, MeasureTiePointReasons) {
  AlignConfig c;
  const cv::Mat tex = make_texture(256, 256, 9);
  const cv::Mat flat(256, 256, CV_32F, cv::Scalar(50));
  const Window win{0, 0, 256, 256};
  auto t = measure_tie_point(win, flat, {}, flat, {}, c);
  EXPECT_FALSE(t.kept);
  EXPECT_EQ(t.reason, "no texture");
  EXPECT_EQ(t.window, win);

  cv::Mat half = all_valid(256, 256);
  half(cv::Rect(0, 0, 128, 256)).setTo(0);
  t = measure_tie_point(win, tex, all_valid(256, 256), tex, half, c);  // 50 % < min_valid_fraction 0.8
  EXPECT_FALSE(t.kept);
  EXPECT_EQ(t.reason, "too few valid pixels");

  c.min_valid_fraction = 0.4;  // now allowed: measured on the valid half
  const cv::Mat moved = test::shift_image(tex, {1.5, 0.5});
  t = measure_tie_point(win, tex, all_valid(256, 256), moved, half, c);
  EXPECT_TRUE(t.kept) << t.reason;
  EXPECT_LT(std::hypot(t.shift.x - 1.5, t.shift.y - 0.5), 0.05);

  // Unrelated content: either no acceptable peak or a weak one.
  c.min_peak = 0.5;
  t = measure_tie_point(win, tex, {}, make_texture(256, 256, 77), {}, c);
  EXPECT_FALSE(t.kept);
  EXPECT_FALSE(t.reason.empty());
  std::cout << "[align] unrelated textures: reason \"" << t.reason << "\", peak " << t.peak << "\n";
}

// ---------------------------------------------------------------- fit_translation

TEST(FitTranslation, DropsOutliersAndAverages) {
  std::vector<TiePoint> ties;
  cv::RNG rng(4);
  const cv::Point2d truth(2, 1);
  cv::Point2d sum(0, 0);
  for (int i = 0; i < 20; ++i) {
    TiePoint t;
    t.window = {i * 256, 0, 256, 256};
    t.shift = truth + cv::Point2d(rng.gaussian(0.02), rng.gaussian(0.02));
    t.peak = 0.5;
    t.kept = true;
    sum += t.shift;
    ties.push_back(t);
  }
  for (const cv::Point2d wild : {cv::Point2d(15, -3), cv::Point2d(-7, 8), cv::Point2d(2.9, 1.8)}) {
    TiePoint t;
    t.shift = wild;
    t.peak = 0.2;
    t.kept = true;
    ties.push_back(t);
  }
  TiePoint failed;
  failed.reason = "no texture";
  ties.push_back(failed);

  const Registration reg = fit_translation(ties, AlignConfig{});
  EXPECT_EQ(reg.model, "translation");
  EXPECT_TRUE(reg.warning.empty());
  EXPECT_EQ(reg.kept, 20);
  EXPECT_EQ(reg.dropped, 4);
  ASSERT_EQ(reg.ties.size(), 24u);
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(reg.ties[static_cast<std::size_t>(i)].kept);
  for (int i = 20; i < 23; ++i) {
    EXPECT_FALSE(reg.ties[static_cast<std::size_t>(i)].kept);
    EXPECT_EQ(reg.ties[static_cast<std::size_t>(i)].reason, "outlier");
    EXPECT_GT(reg.ties[static_cast<std::size_t>(i)].residual, 0.5);
  }
  EXPECT_EQ(reg.ties[23].reason, "no texture");
  const double err = std::hypot(reg.shift.x - truth.x, reg.shift.y - truth.y);
  std::cout << "[align] fit_translation: 20 ties around (2, 1) + 3 outliers -> (" << reg.shift.x << ", "
            << reg.shift.y << "), error " << err << " px, rmse_after " << reg.rmse_after << "\n";
  RecordProperty("fit_error_px", std::to_string(err));
  EXPECT_LT(err, 0.01);
  EXPECT_NEAR(reg.shift.x, sum.x / 20, 1e-12);  // the mean of exactly the kept ones
  EXPECT_NEAR(reg.shift.y, sum.y / 20, 1e-12);
  EXPECT_LT(reg.rmse_after, 0.05);
  EXPECT_NEAR(reg.rmse_before, std::hypot(2.0, 1.0), 0.05);
  // Deterministic.
  const Registration again = fit_translation(ties, AlignConfig{});
  EXPECT_EQ(again.shift, reg.shift);
}

TEST(FitTranslation, NoUsableTieIsIdentityWithWarning) {
  std::vector<TiePoint> ties(3);
  ties[0].reason = "no texture";
  ties[1].reason = "weak peak";
  ties[2].reason = "no texture";
  const Registration reg = fit_translation(ties, AlignConfig{});
  EXPECT_EQ(reg.model, "identity");
  EXPECT_EQ(reg.shift, cv::Point2d(0, 0));
  EXPECT_EQ(reg.kept, 0);
  EXPECT_EQ(reg.dropped, 3);
  EXPECT_EQ(reg.warning.rfind("no reliable tie points: alignment skipped (", 0), 0u) << reg.warning;
  EXPECT_NE(reg.warning.find("2 no texture"), std::string::npos) << reg.warning;
  std::cout << "[align] warning: " << reg.warning << "\n";
  EXPECT_EQ(registration_margin(reg), 0);

  const Registration none = fit_translation({}, AlignConfig{});
  EXPECT_EQ(none.model, "identity");
  EXPECT_FALSE(none.warning.empty());
}

TEST(FitTranslation, SingleTie) {
  TiePoint t;
  t.shift = {-0.4, 3.2};
  t.kept = true;
  const Registration reg = fit_translation({t}, AlignConfig{});
  EXPECT_EQ(reg.model, "translation");
  EXPECT_EQ(reg.shift, t.shift);
  EXPECT_EQ(reg.kept, 1);
  EXPECT_EQ(registration_margin(reg), 6);  // ceil(3.2) + 2
}

// ---------------------------------------------------------------- to_intensity, apply_registration

TEST(ToIntensity, MeanOfBands) {
  const std::vector<cv::Mat> bands{cv::Mat(4, 5, CV_32F, cv::Scalar(1)), cv::Mat(4, 5, CV_32F, cv::Scalar(2)),
                                   cv::Mat(4, 5, CV_32F, cv::Scalar(6))};
  const cv::Mat m = to_intensity(bands);
  ASSERT_EQ(m.type(), CV_32F);
  ASSERT_EQ(m.size(), cv::Size(5, 4));
  EXPECT_FLOAT_EQ(m.at<float>(2, 3), 3.0f);
  EXPECT_TRUE(to_intensity({}).empty());
}

// The one-pass path for float bands gives the values of the general path (uint16 bands).
TEST(ToIntensity, FloatBandsGiveTheValuesOfIntegerBands) {
  std::vector<cv::Mat> ints, floats;
  for (int k = 0; k < 4; ++k) {
    cv::Mat b16;
    make_texture(37, 23, 5 + k).convertTo(b16, CV_16U, 300, 1000 + 7 * k);
    ints.push_back(b16);
    cv::Mat b32;
    b16.convertTo(b32, CV_32F);
    floats.push_back(b32);
  }
  const cv::Mat a = to_intensity(ints), b = to_intensity(floats);
  ASSERT_EQ(a.type(), CV_32F);
  ASSERT_EQ(b.type(), CV_32F);
  EXPECT_EQ(cv::norm(a, b, cv::NORM_INF), 0.0);
  EXPECT_GT(cv::norm(a, cv::NORM_INF), 1000.0);
}

// finish_row sees every output row of every band once, after its values are final: applying
// it afterwards to the whole output gives the same values, on every path (sub-pixel and whole
// translation, affine, an absurd shift).
TEST(ApplyRegistration, RowEpilogueSeesEveryFinalRowOnce) {
  const cv::Mat band = make_texture(80, 60, 4);
  cv::Mat valid = all_valid(80, 60);
  valid(cv::Rect(30, 20, 5, 4)).setTo(0);
  const Window source{10, 20, 80, 60}, target{14, 22, 70, 50};
  auto affine = [] {
    Registration r;
    r.model = "affine";
    r.affine = cv::Matx23d(1.001, 0.002, 1.4, -0.001, 0.999, -0.7);
    r.shift = {1.4, -0.7};
    return r;
  };
  auto translation = [](cv::Point2d s) {
    Registration r;
    r.model = "translation";
    r.shift = s;
    return r;
  };
  for (const Registration& reg :
       {translation({1.3, -0.6}), translation({2, 1}), translation({1e12, 0}), affine()}) {
    std::vector<cv::Mat> plain, finished;
    cv::Mat v1, v2;
    apply_registration(reg, {band, band}, valid, source, target, plain, v1);
    std::vector<int> calls(2 * static_cast<std::size_t>(target.height), 0);
    const RowEpilogue twice_plus_one = [&](std::size_t b, float* row, int cols) {
      ASSERT_EQ(cols, target.width);
      const auto y = static_cast<int>((reinterpret_cast<const uchar*>(row) - finished[b].data) /
                                      static_cast<std::ptrdiff_t>(finished[b].step[0]));
      ++calls[b * static_cast<std::size_t>(target.height) + static_cast<std::size_t>(y)];
      for (int x = 0; x < cols; ++x) row[x] = 2 * row[x] + 1;
    };
    apply_registration(reg, {band, band}, valid, source, target, finished, v2, twice_plus_one);
    EXPECT_EQ(cv::norm(v1, v2, cv::NORM_INF), 0.0) << reg.model << " " << reg.shift;
    for (std::size_t b = 0; b < 2; ++b) {
      cv::Mat expected = plain[b] * 2 + 1;
      EXPECT_EQ(cv::norm(finished[b], expected, cv::NORM_INF), 0.0)
          << reg.model << " " << reg.shift;
    }
    EXPECT_EQ(std::count(calls.begin(), calls.end(), 1), static_cast<long>(calls.size()))
        << reg.model << " " << reg.shift;
  }
}

TEST(ApplyRegistration, IdentityIsAnExactCopy) {
  const cv::Mat band = make_texture(64, 48, 3);
  cv::Mat valid = all_valid(64, 48);
  valid.at<uchar>(10, 20) = 0;
  Registration reg;  // identity
  const Window w{100, 200, 64, 48};
  std::vector<cv::Mat> out;
  cv::Mat out_valid;
  apply_registration(reg, {band}, valid, w, w, out, out_valid);
  ASSERT_EQ(out.size(), 1u);
  cv::Mat expected = band.clone();
  expected.at<float>(10, 20) = 0;  // invalid pixels are 0 in the bands
  EXPECT_EQ(cv::norm(out[0], expected, cv::NORM_INF), 0.0);
  EXPECT_EQ(cv::norm(out_valid, valid, cv::NORM_INF), 0.0);
  // A translation by whole pixels is an exact copy too.
  Registration whole;
  whole.model = "translation";
  whole.shift = {3, -2};
  apply_registration(whole, {band}, {}, w, Window{w.x + 5, w.y + 5, 40, 30}, out, out_valid);
  EXPECT_EQ(cv::norm(out[0], band(cv::Rect(8, 3, 40, 30)), cv::NORM_INF), 0.0);
  EXPECT_EQ(cv::countNonZero(out_valid), 40 * 30);
}

TEST(ApplyRegistration, Uint16BandsGiveTheValuesOfFloatBands) {
  // SceneReader::read_native hands uint16 bands over: sampled directly, they must give exactly
  // what the same values as float give, for a sub-pixel and a whole-pixel translation.
  cv::Mat band16;
  make_texture(80, 60, 9).convertTo(band16, CV_16U, 200, 3000);
  cv::Mat band32;
  band16.convertTo(band32, CV_32F);
  cv::Mat valid = all_valid(80, 60);
  valid(cv::Rect(30, 20, 5, 4)).setTo(0);
  const Window source{10, 20, 80, 60}, target{14, 22, 70, 50};
  for (const cv::Point2d shift : {cv::Point2d(1.3, -0.6), cv::Point2d(2, 1)}) {
    Registration reg;
    reg.model = "translation";
    reg.shift = shift;
    std::vector<cv::Mat> from16, from32;
    cv::Mat valid16, valid32;
    apply_registration(reg, {band16}, valid, source, target, from16, valid16);
    apply_registration(reg, {band32}, valid, source, target, from32, valid32);
    ASSERT_EQ(from16[0].type(), CV_32F);
    EXPECT_EQ(cv::norm(from16[0], from32[0], cv::NORM_INF), 0.0) << shift;
    EXPECT_EQ(cv::norm(valid16, valid32, cv::NORM_INF), 0.0) << shift;
    EXPECT_GT(cv::countNonZero(valid16), 0);
  }
}

/// Registers `post` onto `pre` (end to end: windows, tie points, fit), applies the registration
/// over the whole grid and returns the worst band's mean |aligned post - pre| away from the
/// borders; checks the border validity on the way.
double align_and_compare(const std::vector<cv::Mat>& pre, const std::vector<cv::Mat>& post, cv::Point2d truth,
                         double* unaligned) {
  const int w = pre[0].cols, h = pre[0].rows;
  test::SyntheticPair pair;
  pair.pre = pre;
  pair.post = post;
  const Registration reg = register_pair(pair, AlignConfig{}, w, h);
  EXPECT_EQ(reg.model, "translation");
  EXPECT_EQ(registration_margin(reg), static_cast<int>(std::ceil(std::max(std::abs(truth.x), std::abs(truth.y)))) + 2);

  const Window grid{0, 0, w, h};
  std::vector<cv::Mat> out;
  cv::Mat out_valid;
  apply_registration(reg, post, all_valid(w, h), grid, grid, out, out_valid);
  EXPECT_EQ(out.size(), post.size());

  // Border pixels that need data outside `source` are invalid (and 0), the rest valid: with
  // truth (2.3, -1.7) the cubic taps of x span x + 1 .. x + 4 (x <= w - 5) and those of y span
  // y - 3 .. y (y >= 3).
  int wrong = 0;
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const bool expect_valid = x <= w - 5 && y >= 3;
      if ((out_valid.at<uchar>(y, x) != 0) != expect_valid) ++wrong;
      if (!expect_valid && out[0].at<float>(y, x) != 0.0f) ++wrong;
    }
  }
  EXPECT_EQ(wrong, 0);

  const cv::Rect inner(8, 8, w - 16, h - 16);
  double worst = 0, before = 0;
  for (std::size_t b = 0; b < out.size(); ++b) {
    worst = std::max(worst, cv::norm(out[b](inner), pre[b](inner), cv::NORM_L1) / inner.area());
    before = std::max(before, cv::norm(post[b](inner), pre[b](inner), cv::NORM_L1) / inner.area());
  }
  *unaligned = before;
  return worst;
}

TEST(ApplyRegistration, AlignsShiftedTextureOntoPre) {
  const cv::Point2d truth(2.3, -1.7);
  std::vector<cv::Mat> pre, post;
  for (unsigned b = 0; b < 3; ++b) {
    pre.push_back(make_texture(512, 512, 11 + b));
    post.push_back(test::shift_image(pre.back(), truth));
  }
  double before = 0;
  const double after = align_and_compare(pre, post, truth, &before);
  std::cout << "[align] apply_registration (texture): mean |aligned post - pre| " << after << " DN (unaligned "
            << before << " DN)\n";
  RecordProperty("apply_texture_mean_abs_diff_dn", std::to_string(after));
  EXPECT_LT(after, 1.0);
  EXPECT_GT(before, 5.0);
}

TEST(ApplyRegistration, AlignsShiftedSceneOntoPre) {
  SyntheticOptions o;
  o.shift = {2.3, -1.7};
  o.noise = 0;
  o.destroyed_fraction = 0;  // nothing changed: the aligned post must reproduce the pre scene
  const auto pair = make_synthetic_pair(o);
  double before = 0;
  const double after = align_and_compare(pair.pre, pair.post, o.shift, &before);
  // Resampling smooths the sharp roof edges a little: a bit above the texture figure.
  std::cout << "[align] apply_registration (scene with roofs and roads): mean |aligned post - pre| " << after
            << " DN (unaligned " << before << " DN)\n";
  RecordProperty("apply_scene_mean_abs_diff_dn", std::to_string(after));
  EXPECT_LT(after, 1.5);
  EXPECT_GT(before, 5.0);
}

TEST(ApplyRegistration, InvalidFootprintPropagates) {
  const cv::Mat band = make_texture(32, 32, 5);
  cv::Mat valid = all_valid(32, 32);
  valid.at<uchar>(10, 10) = 0;
  Registration reg;
  reg.model = "translation";
  reg.shift = {0.5, 0.25};
  const Window w{0, 0, 32, 32};
  std::vector<cv::Mat> out;
  cv::Mat out_valid;
  apply_registration(reg, {band}, valid, w, w, out, out_valid);
  // out(p) samples in(p + (0.5, 0.25)) with cubic taps p - 1 .. p + 2: pixels (8..11, 8..11)
  // touch the invalid one.
  for (int y = 6; y <= 13; ++y) {
    for (int x = 6; x <= 13; ++x) {
      const bool touches = x >= 8 && x <= 11 && y >= 8 && y <= 11;
      EXPECT_EQ(out_valid.at<uchar>(y, x) == 0, touches) << x << "," << y;
    }
  }
  EXPECT_EQ(out[0].at<float>(9, 9), 0.0f);
  // Last column and row need data beyond the source.
  EXPECT_EQ(out_valid.at<uchar>(5, 31), 0);
  EXPECT_EQ(out_valid.at<uchar>(31, 5), 0);
  EXPECT_NE(out_valid.at<uchar>(29, 29), 0);
  EXPECT_EQ(out_valid.at<uchar>(30, 30), 0);  // its taps reach column/row 32
  // Cubic (Keys, a = -0.5) value: weights for the fractions 0.5 (x) and 0.25 (y), taps -1..2.
  const double wx[4] = {-0.0625, 0.5625, 0.5625, -0.0625};
  const double wy[4] = {-0.0703125, 0.8671875, 0.2265625, -0.0234375};
  double expect = 0;
  for (int j = 0; j < 4; ++j) {
    for (int i = 0; i < 4; ++i) expect += wy[j] * wx[i] * band.at<float>(3 + j - 1, 3 + i - 1);
  }
  EXPECT_NEAR(out[0].at<float>(3, 3), expect, 1e-3);
  // Target larger than source: everything outside is invalid.
  apply_registration(reg, {band}, valid, w, w.grown(4), out, out_valid);
  EXPECT_EQ(out_valid.size(), cv::Size(40, 40));
  EXPECT_EQ(out_valid.at<uchar>(0, 0), 0);
  EXPECT_NE(out_valid.at<uchar>(20, 20), 0);
}

}  // namespace
}  // namespace aftermath
