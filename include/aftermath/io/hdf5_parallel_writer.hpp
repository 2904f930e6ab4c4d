#pragma once
/// @file hdf5_parallel_writer.hpp
/// The layers of one output written by every MPI rank into one file with parallel HDF5 (builds
/// with AFTERMATH_MPI only). The file has the layout of Hdf5Writer (hdf5_layout.hpp: the same
/// coordinates, grid mapping, chunking, shuffle + deflate levels and fill values); chunks are
/// written with H5Dwrite, so HDF5 compresses them, and their decoded values are those of
/// Hdf5Writer's pre-encoded chunks. Tables and attributes are not written here: after close(),
/// rank 0 takes the file over with Hdf5Writer::adopt and commits it.
///
/// Every member is collective: all ranks of MPI_COMM_WORLD call it in the same order with the
/// same layout arguments, from one thread each (HDF5's filtered parallel writes must be
/// collective: a rank without a tile in a round still writes, an empty selection).
#include <memory>
#include <string>
#include <vector>

#include "aftermath/core/grid.hpp"
#include "aftermath/io/hdf5_writer.hpp"

namespace aftermath {

/// Creates the temporary file of `final_path` for the parallel writer (on one rank: `Hdf5Writer`'s
/// naming, ".<name>.tmp-<pid>-<random>" beside the target, created empty with O_EXCL); returns its
/// path. Throws Error(output) naming the path.
std::string create_temporary_output(const std::string& final_path);

class Hdf5ParallelWriter {
 public:
  /// Opens `temp_path` (from create_temporary_output on one rank, the same path on every rank)
  /// with the MPI-IO driver, truncating it, and creates the layout. `removes_temp`: this rank
  /// removes the file when the writer is destroyed before release() (one rank, e.g. rank 0).
  Hdf5ParallelWriter(const std::string& final_path, const std::string& temp_path, bool removes_temp,
                     const Grid& grid, int chunk_size, std::vector<LayerSpec> layers,
                     int deflate_level);
  /// Closes the file (collective) and, unless released, removes it on the rank that removes it.
  ~Hdf5ParallelWriter();
  Hdf5ParallelWriter(const Hdf5ParallelWriter&) = delete;
  Hdf5ParallelWriter& operator=(const Hdf5ParallelWriter&) = delete;

  /// One collective write of layer `layer`: this rank's `tile` core from `raw_chunk` (its
  /// encode_chunk at deflate level 0: chunk_size x chunk_size native values, the core at the
  /// top left), or nothing when `tile` is null. The core must start on a chunk boundary.
  void write_round(int layer, const Tile* tile, const EncodedChunk* raw_chunk);
  /// Closes the file (collective; its layers are complete). The rank that removed the file on
  /// failure still does so until release().
  void close();
  /// The file is handed over (Hdf5Writer::adopt): this writer no longer removes it.
  void release();
  const std::string& temp_path() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace aftermath
