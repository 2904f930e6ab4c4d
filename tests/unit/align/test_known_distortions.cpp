// The must-show cases: known distortions applied to real imagery (the bundled Joplin pre
// tile and an xBD pre image), with and without a radiometric change, recovered by
// estimate_registration; and the degenerate scenes (constant, half nodata, unrelated content).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <iostream>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <string>
#include <vector>

#include "aftermath/align/registration.hpp"

namespace aftermath {
namespace {

using Warp = std::function<cv::Point2d(cv::Point2d)>;  // d(p): post(p + d(p)) = pre(p)

constexpr double kPi = 3.14159265358979323846;

struct Image {
  std::string name;
  cv::Mat img;  // CV_32F intensity
};

Image load(const std::string& name, const std::string& path) {
  const cv::Mat raw = cv::imread(path, cv::IMREAD_UNCHANGED);
  if (raw.empty()) return {name, {}};
  std::vector<cv::Mat> ch;
  cv::split(raw, ch);
  cv::Mat acc = cv::Mat::zeros(raw.size(), CV_32F);
  for (int c = 0; c < std::min<int>(3, static_cast<int>(ch.size())); ++c) {
    cv::Mat f;
    ch[static_cast<std::size_t>(c)].convertTo(f, CV_32F);
    acc += f;
  }
  return {name, acc / std::min<double>(3, static_cast<double>(ch.size()))};
}

std::vector<Image> real_images() {
  return {load("joplin", "data/sample/joplin/pre_utm15n.tif"),
          load("xbd", "data/sample/xbd/santa-rosa-wildfire_00000242_pre_disaster.png")};
}

double lanczos3(double x) {
  x = std::abs(x);
  if (x < 1e-12) return 1;
  if (x >= 3) return 0;
  const double px = kPi * x;
  return 3 * std::sin(px) * std::sin(px / 3) / (px * px);
}

/// The post scene: post(q) = pre(p) where p + d(p) = q (solved by fixed-point iteration), sampled
/// with an exact-fraction Lanczos-3 kernel; pixels whose taps leave the pre image are invalid.
void make_post(const cv::Mat& pre, const Warp& d, cv::Mat& post, cv::Mat& valid) {
  post = cv::Mat::zeros(pre.size(), CV_32F);
  valid = cv::Mat::zeros(pre.size(), CV_8U);
  for (int y = 0; y < pre.rows; ++y) {
    for (int x = 0; x < pre.cols; ++x) {
      const cv::Point2d q(x, y);
      cv::Point2d p = q;
      for (int it = 0; it < 30; ++it) p = q - d(p);
      const int ix = static_cast<int>(std::floor(p.x)), iy = static_cast<int>(std::floor(p.y));
      if (ix - 2 < 0 || iy - 2 < 0 || ix + 3 >= pre.cols || iy + 3 >= pre.rows) continue;
      double wx[6], wy[6], sx = 0, sy = 0;
      for (int k = 0; k < 6; ++k) {
        wx[k] = lanczos3(p.x - (ix + k - 2));
        wy[k] = lanczos3(p.y - (iy + k - 2));
        sx += wx[k];
        sy += wy[k];
      }
      double acc = 0;
      for (int j = 0; j < 6; ++j) {
        const float* row = pre.ptr<float>(iy + j - 2);
        double h = 0;
        for (int i = 0; i < 6; ++i) h += wx[i] * row[ix + i - 2];
        acc += wy[j] * h;
      }
      post.at<float>(y, x) = static_cast<float>(acc / (sx * sy));
      valid.at<uchar>(y, x) = 255;
    }
  }
}

/// Gain 1.3, offset 15 DN, Gaussian noise sd 2 DN.
void radiometric_change(cv::Mat& post, unsigned seed) {
  cv::Mat noise(post.size(), CV_32F);
  cv::RNG rng(seed);
  rng.fill(noise, cv::RNG::NORMAL, 0.0, 2.0);
  post = post * 1.3 + 15.0 + noise;
}

WindowReader memory_reader(const cv::Mat& pre, const cv::Mat& pre_valid, const cv::Mat& post,
                           const cv::Mat& post_valid) {
  return [&](bool is_post, const Window& w) {
    const cv::Mat& img = is_post ? post : pre;
    const cv::Mat& val = is_post ? post_valid : pre_valid;
    IntensityWindow out{cv::Mat::zeros(w.height, w.width, CV_32F),
                        cv::Mat::zeros(w.height, w.width, CV_8U)};
    const cv::Rect inside =
        cv::Rect(w.x, w.y, w.width, w.height) & cv::Rect(0, 0, img.cols, img.rows);
    if (inside.area() > 0) {
      const cv::Rect dst(inside.x - w.x, inside.y - w.y, inside.width, inside.height);
      img(inside).copyTo(out.image(dst));
      val(inside).copyTo(out.valid(dst));
    }
    return out;
  };
}

/// RMS over a 16 px lattice of the grid of |model d - true d|, over positions whose content is in
/// the post scene.
double model_rmse(const Registration& reg, const Warp& truth, cv::Size size,
                  double* max_err = nullptr) {
  double ss = 0, mx = 0;
  int n = 0;
  for (int y = 0; y < size.height; y += 16) {
    for (int x = 0; x < size.width; x += 16) {
      const cv::Point2d t = truth({double(x), double(y)});
      if (x + t.x < 0 || y + t.y < 0 || x + t.x > size.width - 1 || y + t.y > size.height - 1)
        continue;
      const cv::Point2d m = displacement(reg, x, y);
      const double e = std::hypot(m.x - t.x, m.y - t.y);
      ss += e * e;
      mx = std::max(mx, e);
      ++n;
    }
  }
  if (max_err) *max_err = mx;
  return n ? std::sqrt(ss / n) : 1e9;
}

struct Case {
  std::string name;
  Warp truth;
  AlignConfig config;
  double bound;            // RMSE bound, px
  std::string want_model;  // "" = any
};

std::vector<Case> cases(cv::Size size) {
  const cv::Point2d c((size.width - 1) / 2.0, (size.height - 1) / 2.0);
  std::vector<Case> out;
  AlignConfig def;
  out.push_back({"translation (17.4, -9.3)", [](cv::Point2d) { return cv::Point2d(17.4, -9.3); },
                 def, 0.05, "translation"});
  const double a = 0.5 * kPi / 180, s = 1.003;
  out.push_back({"affine 0.5 deg, 0.3 %, (3, -2)",
                 [=](cv::Point2d p) {
                   const cv::Point2d r = p - c;
                   const cv::Point2d q(s * (std::cos(a) * r.x - std::sin(a) * r.y) + 3,
                                       s * (std::sin(a) * r.x + std::cos(a) * r.y) - 2);
                   return c + q - p;
                 },
                 def, 0.1, "affine"});
  AlignConfig dense;
  dense.window_size = 128;
  dense.spacing = 64;
  dense.max_windows = 400;
  const double L = 0.8 * size.width;
  out.push_back({"smooth warp, amplitude 3 px",
                 [=](cv::Point2d p) {
                   return cv::Point2d(
                       3 * std::sin(2 * kPi * p.x / L + 0.3) * std::cos(2 * kPi * p.y / L + 0.2),
                       3 * std::cos(2 * kPi * p.x / L + 0.7) * std::sin(2 * kPi * p.y / L + 0.5));
                 },
                 dense, 0.25, "field"});
  out.push_back({"shift 150 px", [](cv::Point2d) { return cv::Point2d(150, -40); }, def, 0.05,
                 "translation"});
  return out;
}

TEST(KnownDistortions, RealImagery) {
  for (const Image& im : real_images()) {
    ASSERT_FALSE(im.img.empty()) << "cannot read the sample image " << im.name;
    const cv::Mat pre_valid(im.img.size(), CV_8U, cv::Scalar(255));
    for (const Case& k : cases(im.img.size())) {
      cv::Mat post0, post_valid;
      make_post(im.img, k.truth, post0, post_valid);
      for (const bool radiometric : {false, true}) {
        cv::Mat post = post0.clone();
        if (radiometric) radiometric_change(post, 7);
        const Registration reg = estimate_registration(
            im.img.cols, im.img.rows, k.config, memory_reader(im.img, pre_valid, post, post_valid));
        double max_err = 0;
        const double rmse = model_rmse(reg, k.truth, im.img.size(), &max_err);
        const std::string label =
            im.name + ", " + k.name + (radiometric ? ", gain 1.3 + offset + noise" : "");
        std::cout << "[align] " << label << ": model " << reg.model << " (" << reg.method
                  << "), tie points kept " << reg.kept << " dropped " << reg.dropped
                  << ", RMSE over the grid " << rmse << " px (max " << max_err << "), tie RMSE "
                  << reg.rmse_before << " -> " << reg.rmse_after << " px, cv " << reg.cv_translation
                  << "/" << reg.cv_affine << "/" << reg.cv_field
                  << (reg.warning.empty() ? "" : ", warning: " + reg.warning) << "\n";
        ::testing::Test::RecordProperty(im.name + "_" +
                                            std::to_string(static_cast<int>(radiometric)) + "_" +
                                            k.name.substr(0, k.name.find(' ')) + "_rmse_px",
                                        std::to_string(rmse));
        EXPECT_LE(rmse, k.bound) << label;
        if (!k.want_model.empty()) {
          EXPECT_EQ(reg.model, k.want_model) << label;
        }
        EXPECT_TRUE(std::isfinite(reg.shift.x) && std::isfinite(reg.shift.y));
        // The margin bounds the displacement everywhere on the grid.
        for (int y = 0; y < im.img.rows; y += 64) {
          for (int x = 0; x < im.img.cols; x += 64) {
            const cv::Point2d d = displacement(reg, x, y);
            EXPECT_LE(std::max(std::abs(d.x), std::abs(d.y)) + 2, registration_margin(reg) + 1e-9);
          }
        }
      }
    }
  }
}

/// Beyond the pyramid: a 10 degree rotation with 8 % scale; phase correlation alone fails, the ORB
/// prior rescues it.
TEST(KnownDistortions, FeatureFallbackForLargeRotationAndScale) {
  const Image im = real_images()[1];
  ASSERT_FALSE(im.img.empty());
  const cv::Point2d c((im.img.cols - 1) / 2.0, (im.img.rows - 1) / 2.0);
  const double a = 10 * kPi / 180, s = 1.08;
  const Warp truth = [=](cv::Point2d p) {
    const cv::Point2d r = p - c;
    return c +
           cv::Point2d(s * (std::cos(a) * r.x - std::sin(a) * r.y) + 25,
                       s * (std::sin(a) * r.x + std::cos(a) * r.y) - 30) -
           p;
  };
  cv::Mat post, post_valid;
  make_post(im.img, truth, post, post_valid);
  radiometric_change(post, 11);
  const cv::Mat pre_valid(im.img.size(), CV_8U, cv::Scalar(255));
  AlignConfig off;
  off.feature_fallback = false;
  const Registration without = estimate_registration(
      im.img.cols, im.img.rows, off, memory_reader(im.img, pre_valid, post, post_valid));
  const Registration reg = estimate_registration(
      im.img.cols, im.img.rows, AlignConfig{}, memory_reader(im.img, pre_valid, post, post_valid));
  double max_err = 0;
  const double rmse = model_rmse(reg, truth, im.img.size(), &max_err);
  std::cout << "[align] xbd, rotation 10 deg + scale 8 % + (25, -30): without fallback model "
            << without.model << " kept " << without.kept << " RMSE "
            << model_rmse(without, truth, im.img.size()) << " px; with: model " << reg.model << " ("
            << reg.method << "), kept " << reg.kept << ", RMSE over the grid " << rmse
            << " px (max " << max_err << "), warning: " << reg.warning << "\n";
  EXPECT_NE(reg.method.find("feature"), std::string::npos);
  EXPECT_LE(rmse, 0.25);
  EXPECT_FALSE(reg.warning.empty());
}

/// The estimate does not depend on the order (or concurrency) in which windows are measured.
TEST(KnownDistortions, IndependentOfTheWindowOrder) {
  const Image im = real_images()[1];
  ASSERT_FALSE(im.img.empty());
  const Warp truth = [](cv::Point2d p) {
    return cv::Point2d(3.7 + 0.002 * p.x, -1.2 + 0.001 * p.y);
  };
  cv::Mat post, post_valid;
  make_post(im.img, truth, post, post_valid);
  const cv::Mat all(im.img.size(), CV_8U, cv::Scalar(255));
  const ForEach reversed = [](std::size_t n, const std::function<void(std::size_t)>& body) {
    for (std::size_t i = n; i-- > 0;) body(i);
  };
  const WindowReader read = memory_reader(im.img, all, post, post_valid);
  const Registration a = estimate_registration(im.img.cols, im.img.rows, AlignConfig{}, read);
  const Registration b =
      estimate_registration(im.img.cols, im.img.rows, AlignConfig{}, read, reversed);
  EXPECT_EQ(a.model, b.model);
  for (int k = 0; k < 6; ++k) EXPECT_EQ(a.affine.val[k], b.affine.val[k]);
  ASSERT_EQ(a.ties.size(), b.ties.size());
  for (std::size_t i = 0; i < a.ties.size(); ++i) EXPECT_EQ(a.ties[i].shift, b.ties[i].shift);
}

TEST(KnownDistortions, DegenerateScenesWarnNeverNaN) {
  const Image im = real_images()[0];
  const Image other = real_images()[1];
  ASSERT_FALSE(im.img.empty());
  ASSERT_FALSE(other.img.empty());
  const cv::Mat all(im.img.size(), CV_8U, cv::Scalar(255));
  auto finite = [](const Registration& r) {
    bool ok = std::isfinite(r.shift.x) && std::isfinite(r.shift.y) && std::isfinite(r.rmse_after) &&
              std::isfinite(r.max_displacement);
    for (int i = 0; i < 6; ++i) ok = ok && std::isfinite(r.affine.val[i]);
    for (const auto& t : r.ties) ok = ok && std::isfinite(t.residual);
    return ok;
  };
  {  // constant scenes
    const cv::Mat flat(im.img.size(), CV_32F, cv::Scalar(100));
    const Registration r = estimate_registration(flat.cols, flat.rows, AlignConfig{},
                                                 memory_reader(flat, all, flat, all));
    std::cout << "[align] constant scene: model " << r.model << ", warning: " << r.warning << "\n";
    EXPECT_EQ(r.model, "identity");
    EXPECT_NE(r.warning.find("no reliable tie points"), std::string::npos) << r.warning;
    EXPECT_NE(r.warning.find("no texture"), std::string::npos) << r.warning;
    EXPECT_TRUE(finite(r));
    EXPECT_EQ(registration_margin(r), 0);
  }
  {  // the post scene is nodata on its right half
    const Warp shift = [](cv::Point2d) { return cv::Point2d(5.2, 3.1); };
    cv::Mat post, post_valid;
    make_post(im.img, shift, post, post_valid);
    post_valid(cv::Rect(post.cols / 2, 0, post.cols - post.cols / 2, post.rows)).setTo(0);
    post.setTo(0, post_valid == 0);
    const Registration r = estimate_registration(post.cols, post.rows, AlignConfig{},
                                                 memory_reader(im.img, all, post, post_valid));
    std::cout << "[align] post half nodata: model " << r.model << " shift (" << r.shift.x << ", "
              << r.shift.y << "), kept " << r.kept << ", warning: " << r.warning << "\n";
    EXPECT_EQ(r.model, "translation");
    EXPECT_LT(std::hypot(r.shift.x - 5.2, r.shift.y - 3.1), 0.05);
    EXPECT_NE(r.warning.find("too few valid pixels"), std::string::npos) << r.warning;
    EXPECT_TRUE(finite(r));
  }
  {  // no texture in common: two unrelated places
    const Registration r = estimate_registration(im.img.cols, im.img.rows, AlignConfig{},
                                                 memory_reader(im.img, all, other.img, all));
    std::cout << "[align] unrelated scenes: model " << r.model << ", kept " << r.kept
              << ", warning: " << r.warning << "\n";
    EXPECT_EQ(r.model, "identity");
    EXPECT_FALSE(r.warning.empty());
    EXPECT_TRUE(finite(r));
  }
}

}  // namespace
}  // namespace aftermath
