#pragma once
/// @file output_read.hpp
/// Reading back what a run stored, for rescore, evaluate and report: footprints from the
/// `/footprints` table (geometry from `geometry_wkt`), every attribute of an object, and the raw
/// (still compressed) chunks of a layer with their decoder. Read-only; call from one thread at a
/// time (HDF5 calls).
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "aftermath/core/footprint.hpp"
#include "aftermath/core/grid.hpp"
#include "aftermath/io/hdf5_writer.hpp"

namespace aftermath {

class Hdf5Reader;

/// Rings in grid pixel coordinates from a WKT (multi)polygon in the grid's CRS (pixel units for a
/// plain pixel grid), exactly as the footprint reader builds them from the same geometry (closing
/// vertex dropped, rings with fewer than 3 vertices skipped). Empty for an empty or unreadable
/// WKT or a non-polygon geometry.
std::vector<std::vector<cv::Point2d>> rings_from_wkt(const std::string& wkt, const Grid& grid);

/// Polylines in grid pixel coordinates from a WKT (multi)linestring in the grid's CRS. Empty for
/// an empty or unreadable WKT or a non-line geometry.
std::vector<std::vector<cv::Point2d>> lines_from_wkt(const std::string& wkt, const Grid& grid);

/// The features of an output: id, source_id, kind, source_geometry, segment and truth_class from
/// their columns, rings from `geometry_wkt` (rings_from_wkt), lines' centerlines from
/// `centerline_wkt`, bbox/area by finalize_geometry. Empty when there is no
/// `/footprints` table.
std::vector<Footprint> read_output_footprints(const Hdf5Reader& reader, const Grid& grid);

/// Every attribute of `object_path` in `path` (strings, scalar numbers as int64 or double, numeric
/// arrays as vector<double>), by name.
std::map<std::string, AttrValue> read_attributes(const std::string& path, const std::string& object_path);

/// A table group written by Hdf5Writer::write_table read back (columns in name order; the
/// dimension's coordinate variable and the dimension-scale attributes are left out).
Table read_table(const std::string& path, const std::string& group, const std::string& dimension);

/// Raw access to the chunks of a tiled 2-D layer written by Hdf5Writer (one chunk per tile core).
class Hdf5ChunkReader {
 public:
  /// Throws Error(input) naming the file if it cannot be opened or has no such layer.
  Hdf5ChunkReader(const std::string& path, const std::string& layer);
  ~Hdf5ChunkReader();
  Hdf5ChunkReader(const Hdf5ChunkReader&) = delete;
  Hdf5ChunkReader& operator=(const Hdf5ChunkReader&) = delete;
  int chunk_size() const;
  /// The stored bytes of the chunk whose corner is (x, y) (multiples of chunk_size), exactly as
  /// Hdf5Writer::write_chunk stored them (shuffle + deflate unless stored unfiltered).
  EncodedChunk read(int x, int y) const;
  /// True if the chunks are filtered (shuffle + deflate), false when stored raw.
  bool filtered() const;
  /// The deflate level recorded in the layer's filter pipeline (0 when unfiltered).
  int deflate_level() const;
  /// Bytes per stored element (4 float32, 2 uint16, 1 uint8).
  int element_size() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Inverse of encode_chunk: a full chunk_size x chunk_size CV_32F, CV_16U or CV_8U matrix (per
/// spec.type).
/// `filtered` says whether the bytes are shuffled + deflated. Pure and thread-safe.
cv::Mat decode_chunk(const LayerSpec& spec, const EncodedChunk& chunk, int chunk_size, bool filtered);

/// Adds (or replaces) group `group` with `tables` (sub-groups of it, or the group itself when a
/// table's group equals `group`) and `attributes` in the output file `path`, atomically: the file
/// is copied to a temporary beside it, changed, fsynced and renamed over `path`.
void store_group_atomically(const std::string& path, const std::string& group, const std::vector<Table>& tables,
                            const std::map<std::string, AttrValue>& attributes);

}  // namespace aftermath
