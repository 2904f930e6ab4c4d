#pragma once
/// @file hdf5_writer.hpp
/// The output file: HDF5 laid out as netCDF-4 / CF-1.8 so GDAL, QGIS and xarray open it
/// georeferenced. Layers are chunked to the tile and written chunk by chunk: chunks are encoded
/// (padded, shuffled, deflated) by `encode_chunk` in the parallel stage, and written by the single
/// writer with H5Dwrite_chunk. The file is written under a temporary name beside the target and
/// renamed into place by commit(); a writer destroyed without commit() removes its temporary file.
#include <cstdint>
#include <map>
#include <memory>
#include <opencv2/core.hpp>
#include <string>
#include <variant>
#include <vector>

#include "aftermath/core/grid.hpp"
#include "aftermath/core/util.hpp"

namespace aftermath {

enum class LayerType { float32, uint8, uint16 };

/// A 2-D layer [y, x] on the analysis grid.
struct LayerSpec {
  std::string name;        ///< dataset name at the root, e.g. "change_score"
  LayerType type = LayerType::float32;
  double fill_value = 0;   ///< _FillValue: the value of invalid pixels and of padding
  std::string long_name;
  std::string units;       ///< "" = none ("1" for dimensionless)
  std::vector<int> flag_values;  ///< for class layers (uint8), with flag_meanings
  std::string flag_meanings;     ///< space-separated, CF style
  /// CF packing: > 0 writes scale_factor (and add_offset 0), so readers unpack value x scale
  /// (e.g. change_score: uint16 codes, scale 2^-16). 0 = not packed.
  double scale_factor = 0;
  /// Deflate level of this layer's chunks; -1 = the writer's (and encode_chunk's) default level.
  int deflate_level = -1;
  /// Deflate the chunks with zlib's run-length strategy (Z_RLE: matches at distance 1 only)
  /// instead of libdeflate. On the damage masks of four runs (real and synthetic pairs) it
  /// encoded 1.5-2x faster and 10-50% smaller; on the misregistration layer of an affine model
  /// 2x larger, and on patterns that repeat whole rows libdeflate's far matches win too
  /// (docs/performance.md). The same DEFLATE filter either way: every HDF5 reader inflates it.
  bool run_length = false;
};

/// A compressed chunk ready for H5Dwrite_chunk.
struct EncodedChunk {
  ByteBuffer bytes;  ///< core/util.hpp: resize() does not zero
};

/// Pads `core` (CV_32F, CV_8U or CV_16U matching spec.type, at most chunk_size x chunk_size) to a
/// full chunk with spec.fill_value, byte-shuffles it and deflates it (zlib format, as HDF5's
/// deflate filter) at spec.deflate_level, or at `deflate_level` when that is -1, with zlib's
/// run-length strategy when spec.run_length. Level 0 stores the chunk unfiltered. Pure and
/// thread-safe.
EncodedChunk encode_chunk(const LayerSpec& spec, const cv::Mat& core, int chunk_size,
                          int deflate_level);

/// Attribute values for groups and the root.
using AttrValue = std::variant<std::string, double, std::int64_t, std::vector<double>>;

/// A column of a table; all columns of a table have the same length.
struct Column {
  std::string name;
  std::variant<std::vector<double>, std::vector<std::int64_t>, std::vector<std::uint8_t>,
               std::vector<std::string>>
      values;
  std::string long_name;
  std::string units;
  std::map<std::string, AttrValue> attributes;  ///< e.g. flag_values/flag_meanings as strings
};

/// A table stored as a group of 1-D datasets sharing one dimension (xarray/netCDF friendly).
struct Table {
  std::string group;  ///< e.g. "footprints", "alignment/tie_points"
  std::string dimension = "row";  ///< name of the shared dimension, e.g. "feature"
  std::vector<Column> columns;
  std::map<std::string, AttrValue> attributes;
};

class Hdf5Writer {
 public:
  /// Creates the temporary file beside `final_path` (".<name>.tmp-<pid>-<random>"), the CF
  /// coordinate variables x/y, the crs grid-mapping variable and one chunked dataset per layer.
  /// Throws Error(output) naming the path if it cannot be created.
  Hdf5Writer(const std::string& final_path, const Grid& grid, int chunk_size,
             std::vector<LayerSpec> layers, int deflate_level);
  /// Takes over `temp_path`, the temporary file of `final_path` whose layout and layers were
  /// written by Hdf5ParallelWriter (and closed): opens it for write_table and set_attribute;
  /// commit() renames it onto final_path, and a writer destroyed without commit() removes it.
  /// The arguments after temp_path are those the file was made with.
  static std::unique_ptr<Hdf5Writer> adopt(const std::string& final_path, const std::string& temp_path,
                                           const Grid& grid, int chunk_size, std::vector<LayerSpec> layers,
                                           int deflate_level);
  ~Hdf5Writer();
  Hdf5Writer(const Hdf5Writer&) = delete;
  Hdf5Writer& operator=(const Hdf5Writer&) = delete;

  /// Writes one encoded chunk of layer `layer` (index into the specs) for `tile`.
  /// The tile's core must start on a chunk boundary (TileGrid tiles with tile_size == chunk_size).
  void write_chunk(int layer, const Tile& tile, const EncodedChunk& chunk);  ///< (not after adopt())
  void write_table(const Table& table);
  void set_attribute(const std::string& object_path, const std::string& name, const AttrValue& value);
  /// Flushes, closes, fsyncs and renames the file onto final_path (replacing it atomically).
  void commit();
  const std::string& temp_path() const;

 private:
  Hdf5Writer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace aftermath
