#include "synthetic.hpp"

#include <algorithm>
#include <random>

#include <opencv2/imgproc.hpp>

namespace aftermath::test {

cv::Mat make_texture(int width, int height, unsigned seed) {
  cv::RNG rng(seed);
  cv::Mat acc = cv::Mat::zeros(height, width, CV_32F);
  const double sigmas[] = {1.5, 4.0, 12.0};
  const double weights[] = {0.35, 0.4, 0.6};
  for (int i = 0; i < 3; ++i) {
    cv::Mat n(height, width, CV_32F);
    rng.fill(n, cv::RNG::NORMAL, 0.0, 1.0);
    cv::GaussianBlur(n, n, cv::Size(0, 0), sigmas[i], sigmas[i], cv::BORDER_REFLECT);
    cv::Scalar mean, sd;
    cv::meanStdDev(n, mean, sd);
    acc += (n - mean[0]) / std::max(sd[0], 1e-9) * weights[i];
  }
  acc = acc * 25.0 + 110.0;
  cv::min(cv::max(acc, 0.0), 255.0, acc);
  return acc;
}

cv::Mat shift_image(const cv::Mat& in, cv::Point2d shift) {
  cv::Mat m = (cv::Mat_<double>(2, 3) << 1, 0, shift.x, 0, 1, shift.y);
  cv::Mat out;
  cv::warpAffine(in, out, m, in.size(), cv::INTER_LANCZOS4, cv::BORDER_REFLECT);
  return out;
}

cv::Mat mean_of(const std::vector<cv::Mat>& bands) {
  cv::Mat acc = cv::Mat::zeros(bands[0].size(), CV_32F);
  for (const auto& b : bands) acc += b;
  return acc / static_cast<double>(bands.size());
}

SyntheticPair make_synthetic_pair(const SyntheticOptions& o) {
  SyntheticPair pair;
  std::mt19937 gen(o.seed);
  const int w = o.width, h = o.height;
  // Ground: one texture per band, correlated (shared base) so bands look like a real scene.
  cv::Mat base = make_texture(w, h, o.seed * 7 + 1);
  for (int b = 0; b < o.bands; ++b) {
    cv::Mat own = make_texture(w, h, o.seed * 7 + 2 + b);
    pair.pre.push_back(base * 0.7 + own * 0.3);
  }
  // Roads: a horizontal and a vertical band of uniform asphalt.
  const int road_w = std::max(3, std::min(w, h) / 40);
  for (auto& band : pair.pre) {
    band(cv::Rect(0, h / 3, w, std::min(road_w, h - h / 3))).setTo(70.0);
    band(cv::Rect(w / 3, 0, std::min(road_w, w - w / 3), h)).setTo(70.0);
  }
  // Buildings on a jittered lattice, away from the roads, none touching.
  const int side = std::max(8, std::min(w, h) / 24);
  std::uniform_int_distribution<int> jitter(0, std::max(1, side / 3));
  std::vector<cv::Rect> spots;
  for (int y = side; y + 2 * side < h; y += 2 * side + side / 2) {
    for (int x = side; x + 2 * side < w; x += 2 * side + side / 2) {
      cv::Rect r(x + jitter(gen), y + jitter(gen), side + jitter(gen), side + jitter(gen));
      r &= cv::Rect(0, 0, w, h);
      const bool on_road = (r.y < h / 3 + road_w + 2 && r.br().y > h / 3 - 2) ||
                           (r.x < w / 3 + road_w + 2 && r.br().x > w / 3 - 2);
      if (!on_road) spots.push_back(r);
    }
  }
  std::shuffle(spots.begin(), spots.end(), gen);
  spots.resize(std::min<std::size_t>(spots.size(), static_cast<std::size_t>(o.buildings)));
  const int n_destroyed = static_cast<int>(std::lround(o.destroyed_fraction * spots.size()));
  for (std::size_t i = 0; i < spots.size(); ++i) {
    pair.buildings.push_back({spots[i], static_cast<int>(i) < n_destroyed});
  }
  std::sort(pair.buildings.begin(), pair.buildings.end(), [](const auto& a, const auto& b) {
    return a.rect.y != b.rect.y ? a.rect.y < b.rect.y : a.rect.x < b.rect.x;
  });
  for (std::size_t b = 0; b < pair.pre.size(); ++b) {
    for (const auto& bl : pair.buildings) pair.pre[b](bl.rect).setTo(200.0 + 10.0 * b);
  }
  // Post: same scene, destroyed roofs replaced by rubble, then shifted, radiometry and noise.
  cv::RNG rng(o.seed * 31 + 5);
  for (std::size_t b = 0; b < pair.pre.size(); ++b) {
    cv::Mat post = pair.pre[b].clone();
    for (const auto& bl : pair.buildings) {
      if (!bl.destroyed) continue;
      cv::Mat rubble(bl.rect.size(), CV_32F);
      rng.fill(rubble, cv::RNG::UNIFORM, 40.0, 120.0);
      rubble.copyTo(post(bl.rect));
    }
    if (o.shift.x != 0 || o.shift.y != 0) post = shift_image(post, o.shift);
    post = post * o.gain + o.offset;
    if (o.noise > 0) {
      cv::Mat n(post.size(), CV_32F);
      rng.fill(n, cv::RNG::NORMAL, 0.0, o.noise);
      post += n;
    }
    pair.post.push_back(post);
  }
  return pair;
}

}  // namespace aftermath::test
