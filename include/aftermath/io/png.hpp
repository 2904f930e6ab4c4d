#pragma once
/// @file png.hpp
/// PNG encoding for quicklooks, plots and the report, through GDAL's PNG driver (no image-codec
/// library of its own: OpenCV's would load DICOM and OpenEXR libraries into every command).
#include <cstdint>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

namespace aftermath {

/// The PNG bytes of an 8-bit image: 1 channel (grey), 3 (BGR, OpenCV's order) or 4 (BGRA).
/// Throws Error(internal) for any other type or when GDAL fails.
std::vector<std::uint8_t> encode_png(const cv::Mat& image);

/// Writes encode_png(image) to `path`. Throws Error(output) naming the path when it cannot be
/// written.
void write_png(const std::string& path, const cv::Mat& image);

}  // namespace aftermath
