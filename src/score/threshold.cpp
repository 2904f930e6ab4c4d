#include "aftermath/score/threshold.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include <opencv2/imgproc.hpp>

#include "aftermath/core/error.hpp"

namespace aftermath {

namespace {

/// Bin of a score: min(int(score * 1024), 1023), scores clamped to [0, 1] (NaN -> 0).
/// score * 1024 is exact in double, so bin >= k  <=>  score >= k / 1024 exactly.
int bin_of(float score) {
  const double s = score > 0.0f ? static_cast<double>(score) : 0.0;
  if (!(s < 1.0)) return ScoreHistogram::kBins - 1;
  return std::min(static_cast<int>(s * ScoreHistogram::kBins), ScoreHistogram::kBins - 1);
}

}  // namespace

void ScoreHistogram::add(const cv::Mat& score, const cv::Mat& valid) {
  if (score.empty()) return;
  if (score.type() != CV_32F || valid.type() != CV_8U || score.size() != valid.size()) {
    throw Error(ErrorKind::internal, "ScoreHistogram::add: expects CV_32F scores and a CV_8U mask of equal size");
  }
  for (int r = 0; r < score.rows; ++r) {
    const auto* s = score.ptr<float>(r);
    const auto* v = valid.ptr<std::uint8_t>(r);
    for (int c = 0; c < score.cols; ++c) {
      if (v[c] != 0) ++counts[static_cast<std::size_t>(bin_of(s[c]))];
    }
  }
}

void ScoreHistogram::merge(const ScoreHistogram& other) {
  for (int i = 0; i < kBins; ++i) counts[static_cast<std::size_t>(i)] += other.counts[static_cast<std::size_t>(i)];
}

std::int64_t ScoreHistogram::total() const {
  std::int64_t t = 0;
  for (auto c : counts) t += c;
  return t;
}

double otsu_threshold(const ScoreHistogram& h) {
  // Class 0 = bins [0, k], class 1 = bins [k+1, 1023]; values are bin indices. Integer prefix
  // sums make the between-class variance of every k exactly reproducible, and equal for all k
  // across an empty gap. The threshold is the upper edge of bin k, (k + 1) / 1024, so the mask
  // (score >= threshold) is exactly class 1. Among equal maxima (a gap between modes) the
  // middle k of the first run of maxima is taken.
  constexpr int n = ScoreHistogram::kBins;
  std::int64_t total = 0, total_sum = 0;
  int nonempty = 0;
  for (int i = 0; i < n; ++i) {
    const std::int64_t c = h.counts[static_cast<std::size_t>(i)];
    total += c;
    total_sum += c * i;
    nonempty += c > 0 ? 1 : 0;
  }
  if (total <= 0 || nonempty < 2) return 0.5;
  std::int64_t w0 = 0, s0 = 0;
  double best = -1.0;
  int best_first = -1, best_last = -1;
  bool in_run = false;
  for (int k = 0; k < n - 1; ++k) {
    const std::int64_t c = h.counts[static_cast<std::size_t>(k)];
    w0 += c;
    s0 += c * k;
    const std::int64_t w1 = total - w0;
    double var = 0.0;
    if (w0 > 0 && w1 > 0) {
      const double mu0 = static_cast<double>(s0) / static_cast<double>(w0);
      const double mu1 = static_cast<double>(total_sum - s0) / static_cast<double>(w1);
      var = static_cast<double>(w0) * static_cast<double>(w1) * (mu0 - mu1) * (mu0 - mu1);
    }
    if (var > best) {
      best = var;
      best_first = best_last = k;
      in_run = true;
    } else if (in_run && var == best) {
      best_last = k;
    } else {
      in_run = false;
    }
  }
  if (best <= 0.0 || best_first < 0) return 0.5;
  const int k = best_first + (best_last - best_first) / 2;
  return static_cast<double>(k + 1) / n;
}

double resolve_threshold(const ThresholdConfig& config, const ScoreHistogram& histogram) {
  if (config.method == "fixed") return config.value;
  if (config.method == "otsu") return otsu_threshold(histogram);
  throw Error(ErrorKind::usage, "unknown threshold method '" + config.method + "' (threshold.method; known: fixed, otsu)");
}

namespace {

// `changed` (CV_8U, 0 or non-zero) -> opened -> MaskValue layer with `valid` (CV_8U 0/255).
// Whole-matrix OpenCV operations (SIMD, dispatched at run time): the mask is on the critical
// path of rescore.
cv::Mat finish_mask(cv::Mat changed, const cv::Mat& valid, int open_radius) {
  if (open_radius > 0 && !changed.empty()) {
    const int d = 2 * open_radius + 1;
    const cv::Mat kernel = cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(d, d));
    // Default borders: erosion treats outside as set, dilation as unset, so the window border
    // never erodes; the engine's halo (>= 2 x radius) makes core results tile-independent.
    cv::morphologyEx(changed, changed, cv::MORPH_OPEN, kernel);
  }
  // changed -> 1, then invalid -> 255: (changed != 0 ? 1 : 0) | (valid == 0 ? 255 : 0).
  cv::Mat out, invalid;
  cv::min(changed, 1, out);
  cv::compare(valid, 0, invalid, cv::CMP_EQ);
  cv::bitwise_or(out, invalid, out);
  return out;
}

}  // namespace

cv::Mat damage_mask(const cv::Mat& score, const cv::Mat& valid, double threshold, int open_radius) {
  if (score.type() != CV_32F || valid.type() != CV_8U || score.size() != valid.size()) {
    throw Error(ErrorKind::internal, "damage_mask: expects CV_32F scores and a CV_8U mask of equal size");
  }
  if (open_radius < 0) throw Error(ErrorKind::internal, "damage_mask: negative opening radius");
  cv::Mat changed(score.size(), CV_8U);
  for (int r = 0; r < score.rows; ++r) {
    const auto* s = score.ptr<float>(r);
    const auto* v = valid.ptr<std::uint8_t>(r);
    auto* m = changed.ptr<std::uint8_t>(r);
    for (int c = 0; c < score.cols; ++c) m[c] = v[c] != 0 && static_cast<double>(s[c]) >= threshold ? 1 : 0;
  }
  return finish_mask(std::move(changed), valid, open_radius);
}

cv::Mat encode_scores(const cv::Mat& score, const cv::Mat& valid) {
  if (score.type() != CV_32F || valid.type() != CV_8U || score.size() != valid.size()) {
    throw Error(ErrorKind::internal, "encode_scores: expects CV_32F scores and a CV_8U mask of equal size");
  }
  cv::Mat codes(score.size(), CV_16U);
  for (int r = 0; r < score.rows; ++r) {
    const auto* s = score.ptr<float>(r);
    const auto* v = valid.ptr<std::uint8_t>(r);
    auto* q = codes.ptr<std::uint16_t>(r);
    for (int c = 0; c < score.cols; ++c) {
      // x > 0 is false for NaN; +0.5 then truncation rounds half up (scores are non-negative).
      const float x = s[c] > 0.0f ? std::min(s[c] * 65536.0f + 0.5f, float(kScoreCodeMax)) : 0.0f;
      q[c] = v[c] != 0 ? static_cast<std::uint16_t>(x) : kScoreCodeInvalid;
    }
  }
  return codes;
}

cv::Mat decode_scores(const cv::Mat& codes, float invalid_value, cv::Mat* valid) {
  if (codes.type() != CV_16U) throw Error(ErrorKind::internal, "decode_scores: expects CV_16U codes");
  cv::Mat score(codes.size(), CV_32F);
  if (valid) valid->create(codes.size(), CV_8U);
  for (int r = 0; r < codes.rows; ++r) {
    const auto* q = codes.ptr<std::uint16_t>(r);
    auto* s = score.ptr<float>(r);
    for (int c = 0; c < codes.cols; ++c) {
      s[c] = q[c] == kScoreCodeInvalid ? invalid_value : static_cast<float>(q[c]) * float(kScoreCodeScale);
    }
    if (valid) {
      auto* v = valid->ptr<std::uint8_t>(r);
      for (int c = 0; c < codes.cols; ++c) v[c] = q[c] == kScoreCodeInvalid ? 0 : 255;
    }
  }
  return score;
}

std::uint16_t threshold_code(double threshold) {
  if (!(threshold > 0.0)) return 0;  // every score >= 0 (NaN: treated as 0)
  const double c = std::ceil(threshold * 65536.0);  // exact: a power-of-two scale
  return c > double(kScoreCodeMax) ? kScoreCodeInvalid : static_cast<std::uint16_t>(c);
}

cv::Mat damage_mask_from_codes(const cv::Mat& codes, double threshold, int open_radius) {
  if (codes.type() != CV_16U) throw Error(ErrorKind::internal, "damage_mask_from_codes: expects CV_16U codes");
  if (open_radius < 0) throw Error(ErrorKind::internal, "damage_mask_from_codes: negative opening radius");
  const std::uint16_t t = threshold_code(threshold);
  cv::Mat changed, valid;
  cv::compare(codes, double(kScoreCodeInvalid), valid, cv::CMP_NE);
  if (t > kScoreCodeMax) {
    changed = cv::Mat::zeros(codes.size(), CV_8U);
  } else {
    cv::inRange(codes, double(t), double(kScoreCodeMax), changed);  // 255 where t <= code <= max
  }
  return finish_mask(std::move(changed), valid, open_radius);
}

}  // namespace aftermath
