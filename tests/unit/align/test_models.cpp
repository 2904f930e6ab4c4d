// Models from tie points (affine with outliers, smooth field, automatic choice), resampling with
// per-pixel displacements (tiling independence, source windows), the misregistration layer.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <iostream>
#include <opencv2/core.hpp>
#include <vector>

#include "aftermath/align/registration.hpp"
#include "synthetic.hpp"

namespace aftermath {
namespace {

constexpr double kPi = 3.14159265358979323846;

/// Ties on a regular lattice (128 px windows every `step` px) measuring d(centre) + noise.
std::vector<TiePoint> lattice_ties(int size, int step,
                                   const std::function<cv::Point2d(cv::Point2d)>& d, double noise,
                                   unsigned seed) {
  cv::RNG rng(seed);
  std::vector<TiePoint> ties;
  for (int y = 0; y + 128 <= size; y += step) {
    for (int x = 0; x + 128 <= size; x += step) {
      TiePoint t;
      t.window = {x, y, 128, 128};
      t.shift = d(t.centre()) + cv::Point2d(rng.gaussian(noise), rng.gaussian(noise));
      t.peak = 0.5;
      t.psr = 30;
      t.kept = true;
      ties.push_back(t);
    }
  }
  return ties;
}

cv::Point2d affine_d(cv::Point2d p) {
  const double a = 0.3 * kPi / 180, s = 1.002;
  const cv::Point2d c(1000, 1000), r = p - c;
  return c +
         cv::Point2d(s * (std::cos(a) * r.x - std::sin(a) * r.y) + 4.2,
                     s * (std::sin(a) * r.x + std::cos(a) * r.y) - 1.5) -
         p;
}

double rmse_vs(const Registration& reg, const std::function<cv::Point2d(cv::Point2d)>& d,
               int size) {
  double ss = 0;
  int n = 0;
  for (int y = 0; y < size; y += 25) {
    for (int x = 0; x < size; x += 25) {
      const cv::Point2d e = displacement(reg, x, y) - d({double(x), double(y)});
      ss += e.dot(e);
      ++n;
    }
  }
  return std::sqrt(ss / n);
}

TEST(FitRegistration, AffineWithOutliers) {
  auto ties = lattice_ties(2000, 200, affine_d, 0.03, 3);
  ties[5].shift += cv::Point2d(6, -2);
  ties[17].shift += cv::Point2d(-3, 9);
  ties[40].shift += cv::Point2d(1.5, 1.5);
  const Registration reg = fit_registration(ties, 2000, 2000, AlignConfig{});
  const double rmse = rmse_vs(reg, affine_d, 2000);
  std::cout << "[align] fit affine (0.3 deg, 0.2 %, 3 outliers): model " << reg.model << ", kept "
            << reg.kept << ", RMSE over the grid " << rmse << " px, cv " << reg.cv_translation
            << "/" << reg.cv_affine << "/" << reg.cv_field << "\n";
  EXPECT_EQ(reg.model, "affine");
  EXPECT_LT(rmse, 0.03);
  for (const std::size_t i : {5u, 17u, 40u}) {
    EXPECT_FALSE(reg.ties[i].kept);
    EXPECT_EQ(reg.ties[i].reason, "outlier");
  }
  EXPECT_EQ(reg.kept, static_cast<int>(ties.size()) - 3);
  EXPECT_GT(reg.max_displacement, 5.0);
  // Forced translation: the mean shift, with the spread as residual.
  AlignConfig t;
  t.model = "translation";
  EXPECT_EQ(fit_registration(ties, 2000, 2000, t).model, "translation");
  // Deterministic.
  const Registration again = fit_registration(ties, 2000, 2000, AlignConfig{});
  for (int k = 0; k < 6; ++k) EXPECT_EQ(again.affine.val[k], reg.affine.val[k]);
}

TEST(FitRegistration, SmoothFieldChosenAutomatically) {
  const auto warp = [](cv::Point2d p) {
    return cv::Point2d(1.5 + 2 * std::sin(2 * kPi * p.x / 1500) * std::cos(2 * kPi * p.y / 1700),
                       -0.5 + 2 * std::cos(2 * kPi * p.x / 1300));
  };
  const auto ties = lattice_ties(2000, 100, warp, 0.03, 5);
  const Registration reg = fit_registration(ties, 2000, 2000, AlignConfig{});
  const double rmse = rmse_vs(reg, warp, 2000);
  std::cout << "[align] fit field (amplitude 2 px): model " << reg.model << ", kept " << reg.kept
            << ", RMSE " << rmse << " px, cv " << reg.cv_translation << "/" << reg.cv_affine << "/"
            << reg.cv_field << "\n";
  EXPECT_EQ(reg.model, "field");
  EXPECT_LT(rmse, 0.1);
  // Forced affine on the same ties: worse, and said to be the model.
  AlignConfig a;
  a.model = "affine";
  const Registration aff = fit_registration(ties, 2000, 2000, a);
  EXPECT_EQ(aff.model, "affine");
  EXPECT_GT(rmse_vs(aff, warp, 2000), 5 * rmse);
  // Too few ties for a field: falls back, with a warning.
  AlignConfig f;
  f.model = "field";
  const std::vector<TiePoint> few(ties.begin(), ties.begin() + 4);
  const Registration fb = fit_registration(few, 2000, 2000, f);
  EXPECT_NE(fb.model, "field");
  EXPECT_NE(fb.warning.find("align.model = field"), std::string::npos) << fb.warning;
}

TEST(Misregistration, FiniteAndUnknownForIdentity) {
  const auto ties = lattice_ties(1000, 100, affine_d, 0.05, 9);
  const Registration reg = fit_registration(ties, 1000, 1000, AlignConfig{});
  const cv::Mat m = misregistration(reg, {0, 0, 1000, 1000});
  double lo = 0, hi = 0;
  cv::minMaxLoc(m, &lo, &hi);
  std::cout << "[align] misregistration layer (tie noise 0.05 px): " << lo << " .. " << hi
            << " px\n";
  EXPECT_TRUE(cv::checkRange(m));
  EXPECT_GT(lo, 0.0);
  EXPECT_LT(hi, 0.3);
  const cv::Mat unknown = misregistration(Registration{}, {0, 0, 10, 10});
  EXPECT_EQ(cv::countNonZero(unknown != -1), 0);
}

Registration field_model() {
  const auto warp = [](cv::Point2d p) {
    return cv::Point2d(3.3 + 2 * std::sin(2 * kPi * p.x / 400),
                       -2.1 + 1.5 * std::cos(2 * kPi * p.y / 500));
  };
  AlignConfig f;
  f.model = "field";
  return fit_registration(lattice_ties(600, 50, warp, 0.0, 1), 600, 600, f);
}

TEST(ApplyRegistration, PerPixelModelsDoNotDependOnTiling) {
  const cv::Mat band =
      test::make_texture(700, 700, 21);  // grid pixel (x, y) = band(y + 50, x + 50)
  for (const Registration& reg :
       {fit_registration(lattice_ties(600, 100, affine_d, 0.0, 2), 600, 600, AlignConfig{}),
        field_model()}) {
    ASSERT_TRUE(reg.model == "affine" || reg.model == "field") << reg.model;
    auto run = [&](const Window& target) {
      const Window src = registration_source(reg, target);
      const cv::Rect r(src.x + 50, src.y + 50, src.width, src.height);
      EXPECT_TRUE((r & cv::Rect(0, 0, 700, 700)) == r) << "source inside the test image";
      std::vector<cv::Mat> out;
      cv::Mat valid;
      apply_registration(reg, {band(r).clone()}, {}, src, target, out, valid);
      EXPECT_EQ(cv::countNonZero(valid), target.width * target.height)
          << "the source covers every tap";
      return out[0];
    };
    const cv::Mat whole = run({0, 0, 600, 600});
    cv::Mat tiled(600, 600, CV_32F);
    for (int y = 0; y < 600; y += 200) {
      for (int x = 0; x < 600; x += 256) {
        const Window t{x, y, std::min(256, 600 - x), 200};
        run(t).copyTo(tiled(t.rect()));
      }
    }
    EXPECT_EQ(cv::norm(whole, tiled, cv::NORM_INF), 0.0) << reg.model;
    const Window one = registration_source(reg, {100, 100, 64, 64});
    EXPECT_LT(one.width, 64 + 40) << "the source follows the tile, not the grid";
    // Values: out(p) = in(p + d(p)) with cubic taps at the exact fraction.
    const cv::Point2d d = displacement(reg, 300, 300);
    const double expect = [&] {
      const double sx = 300 + d.x + 50, sy = 300 + d.y + 50;
      const int ix = static_cast<int>(std::floor(sx)), iy = static_cast<int>(std::floor(sy));
      auto keys = [](double t) {
        t = std::abs(t);
        return t < 1   ? (1.5 * t - 2.5) * t * t + 1
               : t < 2 ? ((-0.5 * t + 2.5) * t - 4) * t + 2
                       : 0.0;
      };
      double acc = 0;
      for (int j = -1; j <= 2; ++j)
        for (int i = -1; i <= 2; ++i)
          acc += keys(sx - ix - i) * keys(sy - iy - j) * band.at<float>(iy + j, ix + i);
      return acc;
    }();
    EXPECT_NEAR(whole.at<float>(300, 300), expect, 1e-3);
  }
}

}  // namespace
}  // namespace aftermath
