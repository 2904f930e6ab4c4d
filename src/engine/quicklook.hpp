#pragma once
// Quicklook canvases (private to the engine): downsampled pre, post and score panels filled tile
// by tile in the write stage, so memory stays bounded whatever the scene size.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <opencv2/core.hpp>

#include "aftermath/core/footprint.hpp"
#include "aftermath/core/grid.hpp"
#include "aftermath/score/footprint_accumulator.hpp"

namespace aftermath::engine {

/// Linear display stretch per band (value -> 0..255), from sample percentiles.
struct Stretch {
  std::vector<double> lo, hi;
};
Stretch fit_stretch(const std::vector<std::vector<cv::Mat>>& band_samples,
                    const std::vector<cv::Mat>& valid_samples);

class Quicklook {
 public:
  Quicklook(int grid_width, int grid_height, int max_side = 1024);
  double scale() const { return scale_; }
  /// The canvas rectangle a grid window maps to (consistent across tiles: no seams).
  cv::Rect canvas_rect(const Window& w) const;
  /// Renders a tile core's pieces (parallel stage): 8-bit BGR, canvas_rect size.
  cv::Mat render_rgb(const std::vector<cv::Mat>& bands, const cv::Mat& valid, const Stretch& s,
                     const cv::Rect& target) const;
  cv::Mat render_score(const cv::Mat& score, const cv::Mat& valid, const cv::Rect& target) const;
  /// Pastes pieces (serial stage).
  void paste(int panel, const cv::Rect& target, const cv::Mat& piece);
  /// What paste() put in the panels so far (each panel and rectangle with its pixels), to paste
  /// into another canvas of the same grid with paste_pieces() (an MPI rank's tiles into rank 0's).
  std::vector<std::uint8_t> pasted_pieces() const;
  void paste_pieces(const std::vector<std::uint8_t>& bytes);
  /// Draws footprints on the post panel coloured by class and writes pre | post | score as PNG.
  void write(const std::string& path, const std::vector<Footprint>& features,
             const std::vector<FeatureResult>& results) const;

 private:
  double scale_;
  cv::Size size_;
  std::vector<cv::Mat> panels_;  // pre, post, score
  std::vector<std::pair<int, cv::Rect>> pasted_;  // panel, rectangle
};

}  // namespace aftermath::engine
