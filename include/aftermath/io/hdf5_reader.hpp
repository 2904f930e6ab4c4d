#pragma once
/// @file hdf5_reader.hpp
/// Reads back what Hdf5Writer wrote: the grid, attributes, layers (whole or by window) and table
/// columns. Used by rescore, export and batch (idempotence records). Read-only; one thread.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "aftermath/core/grid.hpp"

namespace aftermath {

class Hdf5Reader {
 public:
  /// Opens `path` read-only. Throws Error(input) naming the file if it is missing or not HDF5.
  explicit Hdf5Reader(const std::string& path);
  ~Hdf5Reader();
  Hdf5Reader(const Hdf5Reader&) = delete;
  Hdf5Reader& operator=(const Hdf5Reader&) = delete;

  /// The analysis grid: size from the layers' x/y, geotransform and CRS from /crs (a plain pixel
  /// grid when there is no /crs).
  Grid grid() const;
  bool has(const std::string& object_path) const;
  /// A string attribute of an object ("/" for the root); nullopt if absent or not a string.
  std::optional<std::string> string_attribute(const std::string& object_path, const std::string& name) const;
  std::optional<double> number_attribute(const std::string& object_path, const std::string& name) const;
  /// A 2-D layer as stored (CV_32F for float32, CV_16U for uint16, e.g. the packed change_score
  /// codes, CV_8U for uint8), whole or a window of it.
  cv::Mat layer(const std::string& name) const;
  cv::Mat layer(const std::string& name, const Window& window) const;
  /// 1-D columns of a table group, e.g. column("footprints/damage_class").
  std::vector<double> column_double(const std::string& path) const;
  std::vector<std::int64_t> column_int64(const std::string& path) const;
  std::vector<std::uint8_t> column_uint8(const std::string& path) const;
  std::vector<std::string> column_string(const std::string& path) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace aftermath
