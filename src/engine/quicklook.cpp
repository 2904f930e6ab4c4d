#include "quicklook.hpp"

#include <algorithm>
#include <cmath>
#include <opencv2/imgproc.hpp>

#include "aftermath/core/error.hpp"
#include "aftermath/io/png.hpp"
#include "distributed.hpp"

namespace aftermath::engine {

Stretch fit_stretch(const std::vector<std::vector<cv::Mat>>& band_samples,
                    const std::vector<cv::Mat>& valid_samples) {
  Stretch s;
  if (band_samples.empty()) return s;
  const std::size_t nb = band_samples.front().size();
  for (std::size_t b = 0; b < nb; ++b) {
    std::vector<float> v;
    for (std::size_t i = 0; i < band_samples.size(); ++i) {
      const cv::Mat& m = band_samples[i][b];
      const cv::Mat& ok = valid_samples[i];
      for (int r = 0; r < m.rows; ++r) {
        const float* p = m.ptr<float>(r);
        const uchar* q = ok.ptr<uchar>(r);
        for (int c = 0; c < m.cols; ++c)
          if (q[c]) v.push_back(p[c]);
      }
    }
    double lo = 0, hi = 255;
    if (!v.empty()) {
      auto at = [&](double f) {
        auto it = v.begin() + static_cast<long>(f * static_cast<double>(v.size() - 1));
        std::nth_element(v.begin(), it, v.end());
        return static_cast<double>(*it);
      };
      lo = at(0.02);
      hi = at(0.98);
      if (hi <= lo) hi = lo + 1;
    }
    s.lo.push_back(lo);
    s.hi.push_back(hi);
  }
  return s;
}

Quicklook::Quicklook(int w, int h, int max_side) {
  scale_ = std::min(1.0, static_cast<double>(max_side) / std::max(w, h));
  size_ = cv::Size(std::max(1, static_cast<int>(std::lround(w * scale_))),
                   std::max(1, static_cast<int>(std::lround(h * scale_))));
  for (int i = 0; i < 3; ++i) panels_.emplace_back(size_, CV_8UC3, cv::Scalar(40, 40, 40));
}

cv::Rect Quicklook::canvas_rect(const Window& w) const {
  auto edge = [&](int v, int limit) { return std::clamp(static_cast<int>(std::lround(v * scale_)), 0, limit); };
  const int x0 = edge(w.x, size_.width), x1 = edge(w.x + w.width, size_.width);
  const int y0 = edge(w.y, size_.height), y1 = edge(w.y + w.height, size_.height);
  return {x0, y0, x1 - x0, y1 - y0};
}

cv::Mat Quicklook::render_rgb(const std::vector<cv::Mat>& bands, const cv::Mat& valid,
                              const Stretch& s, const cv::Rect& target) const {
  if (target.area() == 0 || bands.empty()) return {};
  // RGB from the first three bands (or grey from one), shown as BGR.
  std::vector<cv::Mat> chans;
  for (int i = 0; i < 3; ++i) {
    const std::size_t b = std::min<std::size_t>(static_cast<std::size_t>(i), bands.size() - 1);
    const double lo = b < s.lo.size() ? s.lo[b] : 0, hi = b < s.hi.size() ? s.hi[b] : 255;
    cv::Mat c;
    bands[b].convertTo(c, CV_8U, 255.0 / (hi - lo), -lo * 255.0 / (hi - lo));
    c.setTo(0, valid == 0);
    chans.push_back(c);
  }
  std::swap(chans[0], chans[2]);
  cv::Mat rgb, out;
  cv::merge(chans, rgb);
  cv::resize(rgb, out, target.size(), 0, 0, cv::INTER_AREA);
  return out;
}

cv::Mat Quicklook::render_score(const cv::Mat& score, const cv::Mat& valid, const cv::Rect& target) const {
  if (target.area() == 0) return {};
  cv::Mat s8, colour, out;
  score.convertTo(s8, CV_8U, 255.0);
  cv::applyColorMap(s8, colour, cv::COLORMAP_INFERNO);
  colour.setTo(cv::Scalar(40, 40, 40), valid == 0);
  cv::resize(colour, out, target.size(), 0, 0, cv::INTER_AREA);
  return out;
}

void Quicklook::paste(int panel, const cv::Rect& target, const cv::Mat& piece) {
  if (target.area() == 0 || piece.empty()) return;
  piece.copyTo(panels_[static_cast<std::size_t>(panel)](target));
  pasted_.emplace_back(panel, target);
}

std::vector<std::uint8_t> Quicklook::pasted_pieces() const {
  ByteWriter w;
  w.put<std::uint64_t>(pasted_.size());
  for (const auto& [panel, rect] : pasted_) {
    w.put<std::int32_t>(panel);
    for (const int v : {rect.x, rect.y, rect.width, rect.height}) w.put<std::int32_t>(v);
    w.put_mat(panels_[static_cast<std::size_t>(panel)](rect));
  }
  return w.take();
}

void Quicklook::paste_pieces(const std::vector<std::uint8_t>& bytes) {
  ByteReader r(bytes);
  const auto n = r.get<std::uint64_t>();
  for (std::uint64_t i = 0; i < n; ++i) {
    const int panel = r.get<std::int32_t>();
    cv::Rect rect;
    rect.x = r.get<std::int32_t>();
    rect.y = r.get<std::int32_t>();
    rect.width = r.get<std::int32_t>();
    rect.height = r.get<std::int32_t>();
    const cv::Mat piece = r.get_mat();
    const cv::Rect canvas(0, 0, size_.width, size_.height);
    if (panel < 0 || panel >= static_cast<int>(panels_.size()) || (rect & canvas) != rect ||
        piece.size() != rect.size() || piece.type() != panels_[0].type()) {
      throw Error(ErrorKind::internal, "quicklook: a piece from another rank does not fit the canvas");
    }
    paste(panel, rect, piece);
  }
}

void Quicklook::write(const std::string& path, const std::vector<Footprint>& features,
                      const std::vector<FeatureResult>& results) const {
  cv::Mat post = panels_[1].clone();
  // xBD-like colours: no damage green, minor yellow, major orange, destroyed red; grey no-data.
  const cv::Scalar colours[] = {{80, 200, 80}, {0, 230, 255}, {0, 140, 255}, {0, 0, 255}};
  for (std::size_t i = 0; i < features.size() && i < results.size(); ++i) {
    const auto& r = results[i];
    if (r.status == FeatureStatus::outside) continue;
    const cv::Scalar col = r.status == FeatureStatus::no_data
                               ? cv::Scalar(160, 160, 160)
                               : colours[std::min<int>(static_cast<int>(r.damage), 3)];
    for (const auto& ring : features[i].rings) {
      std::vector<cv::Point> pts;
      for (const auto& p : ring) pts.emplace_back(cvRound(p.x * scale_), cvRound(p.y * scale_));
      if (pts.size() >= 2) cv::polylines(post, pts, true, col, 1, cv::LINE_AA);
    }
  }
  const int gap = 8;
  cv::Mat canvas(size_.height, size_.width * 3 + gap * 2, CV_8UC3, cv::Scalar(255, 255, 255));
  panels_[0].copyTo(canvas(cv::Rect(0, 0, size_.width, size_.height)));
  post.copyTo(canvas(cv::Rect(size_.width + gap, 0, size_.width, size_.height)));
  panels_[2].copyTo(canvas(cv::Rect(2 * (size_.width + gap), 0, size_.width, size_.height)));
  try {
    write_png(path, canvas);
  } catch (const Error& e) {
    throw_output(std::string("cannot write quicklook PNG: ") + e.what(), path);
  }
}

}  // namespace aftermath::engine
