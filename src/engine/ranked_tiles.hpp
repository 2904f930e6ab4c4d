#pragma once
// A run over MPI ranks (private to the engine; README "MPI", docs/architecture.md): which tiles
// a rank computes, how their layers reach the one output file (batches of the TBB pipeline, then
// collective write rounds from the rank's main thread), and the reductions after the tiles.
// Alone (Communicator::distributed() false) none of this is used: run_job writes each chunk from
// the pipeline's store stage as it always did.
#include <tbb/task_arena.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "aftermath/core/grid.hpp"
#include "aftermath/detect/detector.hpp"
#include "aftermath/io/hdf5_writer.hpp"
#include "aftermath/radiometry/normalisation.hpp"
#include "aftermath/score/footprint_accumulator.hpp"
#include "classify.hpp"
#include "distributed.hpp"
#include "quicklook.hpp"

namespace aftermath {
class Hdf5ParallelWriter;
}

namespace aftermath::engine {

/// The tiles rank `rank` of `ranks` computes, in the order they go through its pipeline: its
/// block of tile rows [rows x rank / ranks, rows x (rank + 1) / ranks) in strip_order(tiles,
/// strip_tiles). One rank: every tile, strip_order(tiles, strip_tiles).
std::vector<int> rank_tile_order(const TileGrid& tiles, int strip_tiles, int rank, int ranks);

/// The layers' chunks as the collective writer takes them: deflate level 0 (encode_chunk then
/// pads without compressing; HDF5 applies the layers' shuffle + deflate inside H5Dwrite).
std::vector<LayerSpec> raw_chunk_layers(std::vector<LayerSpec> layers);

/// Test hook (docs/architecture.md "Tests"): the tile index in AFTERMATH_TEST_FAIL_TILE, whose
/// compute stage then fails as a bad tile would; -1 when unset.
int test_fail_tile();

/// The output of a run over ranks: the layers, written collectively into one temporary file;
/// then rank 0 writes the tables and attributes and commits it.
class RankedLayerOutput {
 public:
  /// Collective. Rank 0 creates the temporary file beside `final_path`, every rank opens it with
  /// the layout of Hdf5Writer (`layers` with their real deflate levels). Agreed on failure.
  RankedLayerOutput(const Communicator& comm, const std::string& final_path, const Grid& grid,
                    int chunk_size, std::vector<LayerSpec> layers, int deflate_level);
  ~RankedLayerOutput();  ///< collective when the file is still open; rank 0 then removes it

  /// The pipeline's store stage (serial, in order, any thread): keeps a tile's chunks, one per
  /// layer from raw_chunk_layers(), until its batch is written.
  void keep(const Tile& tile, std::vector<EncodedChunk> chunks);

  /// Collective. Runs this rank's `order` (rank_tile_order) through run_tile_pipeline in batches
  /// of 4 x tokens tiles. After each batch the ranks agree (a failed tile fails every rank before
  /// any write), then write it in rounds: in round k each rank writes its k-th kept tile (or an
  /// empty selection), layer by layer. Every rank runs as many rounds as the largest share.
  void run_tiles(tbb::task_arena& arena, const TileGrid& tiles, int tokens,
                 const ClassifyContext& ctx, const PipelineStages& stages,
                 const std::function<void(const char*)>& check_cancel,
                 const std::vector<int>& order);

  /// Collective. Closes the file; rank 0 returns an Hdf5Writer on it for the tables, attributes
  /// and commit (removing it if not committed), the other ranks nullptr.
  std::unique_ptr<Hdf5Writer> finish();

 private:
  struct KeptTile {
    Tile tile;
    std::vector<EncodedChunk> chunks;
  };
  void write_rounds(int rounds);

  Communicator comm_;
  std::string final_path_;
  Grid grid_;
  int chunk_size_ = 0, deflate_level_ = 0;
  std::vector<LayerSpec> layers_;
  std::unique_ptr<Hdf5ParallelWriter> writer_;
  std::vector<KeptTile> kept_;
};

/// Over ranks: fails every rank (agreed) unless all of them fitted the same threshold,
/// normalisation and detector statistics. They fit them from the same samples with the same
/// code, so a difference means nodes whose libraries compute differently (e.g. other SIMD paths).
void check_same_model(const Communicator& comm, double threshold,
                      const Normalisation& normalisation, const FitReport& detector_fit);

/// Over ranks: warns when this rank can use one core only although the machine has more (Open
/// MPI binds each rank to one core unless `--bind-to none`), as TBB then runs one thread;
/// silent when one thread was asked for (`requested_threads` 1).
void warn_if_bound_to_one_core(const Communicator& comm, int requested_threads);

/// The sum over the ranks of each counter (alone: unchanged).
void sum_over_ranks(const Communicator& comm, std::vector<std::int64_t*> counters);

/// Every rank's per-feature state becomes the merge of all ranks' states, through
/// FootprintAccumulator::serialize / merge_serialized only (alone: unchanged).
void merge_over_ranks(const Communicator& comm, FootprintAccumulator& accumulator, const FootprintIndex& index);

/// Rank 0's damage-site state becomes the merge of all ranks' runs (SiteAccumulator::serialize /
/// merge_serialized); only rank 0 writes the sites (alone: unchanged).
void merge_over_ranks(const Communicator& comm, SiteAccumulator& sites);

/// Rank 0's quicklook gets every rank's pasted pieces (alone: unchanged).
void merge_over_ranks(const Communicator& comm, Quicklook& quicklook);

}  // namespace aftermath::engine
