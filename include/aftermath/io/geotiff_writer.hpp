#pragma once
/// @file geotiff_writer.hpp
/// A GeoTIFF written window by window (tiled, deflate), for generated scenes and exports that
/// must not hold a whole scene in memory.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "aftermath/core/grid.hpp"

namespace aftermath {

class GeoTiffWriter {
 public:
  /// `cv_depth`: CV_8U, CV_16U or CV_32F. Throws Error(output) naming the path.
  GeoTiffWriter(const std::string& path, const Grid& grid, int bands, int cv_depth,
                std::optional<double> nodata = std::nullopt);
  ~GeoTiffWriter();
  GeoTiffWriter(const GeoTiffWriter&) = delete;
  GeoTiffWriter& operator=(const GeoTiffWriter&) = delete;
  /// Writes `bands` (one single-channel Mat per band, of the writer's depth) at `window`.
  void write(const Window& window, const std::vector<cv::Mat>& bands);
  /// Flushes and closes; errors throw Error(output).
  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace aftermath
