#include "common.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "aftermath/core/error.hpp"
#include "aftermath/core/util.hpp"

namespace aftermath::detect {

void check_pair(const BandPair& p, const char* who) {
  if (p.valid.type() != CV_8U)
    throw Error(ErrorKind::internal, std::string(who) + ": validity mask is not CV_8U");
  auto check_scene = [&](const std::vector<cv::Mat>& bands) {
    if (bands.size() != p.pre.size()) {
      throw Error(ErrorKind::internal, std::string(who) + ": scenes differ in band count");
    }
    for (const auto& b : bands) {
      if (b.type() != CV_32F || b.size() != p.valid.size()) {
        throw Error(ErrorKind::internal,
                    std::string(who) + ": bands must be CV_32F of the validity mask's size");
      }
    }
  };
  check_scene(p.pre);
  check_scene(p.post);
  for (const auto& s : p.more_pre) check_scene(s);
  for (const auto& s : p.more_post) check_scene(s);
}

cv::Mat usable_mask(const BandPair& p) {
  cv::Mat ok(p.valid.size(), CV_8U);
  for (int r = 0; r < ok.rows; ++r) {
    const auto* v = p.valid.ptr<std::uint8_t>(r);
    auto* o = ok.ptr<std::uint8_t>(r);
    for (int c = 0; c < ok.cols; ++c) o[c] = v[c] != 0 ? 1 : 0;
  }
  auto clear_non_finite = [&](const std::vector<cv::Mat>& bands) {
    for (const auto& b : bands) {
      for (int r = 0; r < ok.rows; ++r) {
        const auto* x = b.ptr<float>(r);
        auto* o = ok.ptr<std::uint8_t>(r);
        for (int c = 0; c < ok.cols; ++c) {
          if (!std::isfinite(x[c])) o[c] = 0;
        }
      }
    }
  };
  clear_non_finite(p.pre);
  clear_non_finite(p.post);
  for (const auto& s : p.more_pre) clear_non_finite(s);
  for (const auto& s : p.more_post) clear_non_finite(s);
  return ok;
}

double no_change_sigma(std::vector<double>& abs_dev) {
  if (abs_dev.empty()) return 1.0;
  const auto k = static_cast<std::ptrdiff_t>(static_cast<double>(abs_dev.size() - 1) * 0.25);
  std::nth_element(abs_dev.begin(), abs_dev.begin() + k, abs_dev.end());
  return abs_dev[static_cast<std::size_t>(k)] / 0.31864;
}

RobustScale robust_scale(std::vector<double>& values, double floor) {
  RobustScale s;
  if (values.empty()) return s;
  s.median = median_of(values);
  for (double& x : values) x = std::abs(x - s.median);
  s.sigma = std::max(no_change_sigma(values), floor);
  return s;
}

cv::Mat box_sum(const cv::Mat& src, int r) {
  CV_Assert(src.type() == CV_64F);
  if (r <= 0) return src.clone();
  const int rows = src.rows, cols = src.cols;
  cv::Mat tmp(rows, cols, CV_64F), out(rows, cols, CV_64F);
  // Row pass. Every pixel sums its row neighbours from the leftmost in the box rightwards, so
  // the interior (written as whole-row adds that the compiler vectorises) and the clipped edges
  // add in the same order.
  const int lo_end = std::min(r, cols), hi_begin = std::max(lo_end, cols - r);
  for (int y = 0; y < rows; ++y) {
    const double* s = src.ptr<double>(y);
    double* t = tmp.ptr<double>(y);
    auto clipped = [&](int x) {
      double sum = 0;
      const int x0 = std::max(0, x - r), x1 = std::min(cols - 1, x + r);
      for (int k = x0; k <= x1; ++k) sum += s[k];
      t[x] = sum;
    };
    for (int x = 0; x < lo_end; ++x) clipped(x);
    for (int x = hi_begin; x < cols; ++x) clipped(x);
    for (int x = lo_end; x < hi_begin; ++x) t[x] = 0.0 + s[x - r];
    for (int k = 1; k <= 2 * r; ++k) {
      for (int x = lo_end; x < hi_begin; ++x) t[x] += s[x - r + k];
    }
  }
  std::vector<const double*> in_rows(static_cast<std::size_t>(rows));
  for (int y = 0; y < rows; ++y) in_rows[static_cast<std::size_t>(y)] = tmp.ptr<double>(y);
  for (int y = 0; y < rows; ++y) {
    double* o = out.ptr<double>(y);
    const int y0 = std::max(0, y - r), y1 = std::min(rows - 1, y + r);
    for (int x = 0; x < cols; ++x) o[x] = 0.0;
    for (int k = y0; k <= y1; ++k) {
      const double* t = in_rows[static_cast<std::size_t>(k)];
      for (int x = 0; x < cols; ++x) o[x] += t[x];
    }
  }
  return out;
}

std::vector<double> collect(const std::vector<BandPair>& samples,
                            const std::vector<cv::Mat>& values_per_sample) {
  std::vector<double> out;
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const cv::Mat ok = usable_mask(samples[i]);
    const cv::Mat& v = values_per_sample[i];
    for (int r = 0; r < ok.rows; ++r) {
      const auto* o = ok.ptr<std::uint8_t>(r);
      const auto* x = v.ptr<double>(r);
      for (int c = 0; c < ok.cols; ++c) {
        if (o[c] && std::isfinite(x[c])) out.push_back(x[c]);
      }
    }
  }
  return out;
}

}  // namespace aftermath::detect
