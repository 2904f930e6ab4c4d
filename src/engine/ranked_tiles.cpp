// A run over MPI ranks: tile shares, batches + collective write rounds, reductions.
#include "ranked_tiles.hpp"

#include <spdlog/spdlog.h>
#include <tbb/info.h>

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <thread>

#include "aftermath/core/error.hpp"
#include "aftermath/io/hdf5_parallel_writer.hpp"

namespace aftermath::engine {

namespace {
// Rank r's block of tile rows: [first_row(r), first_row(r + 1)).
int first_row(int rows, int rank, int size) {
  return static_cast<int>(static_cast<std::int64_t>(rows) * rank / size);
}
}  // namespace

std::vector<int> rank_tile_order(const TileGrid& tiles, int strip_tiles, int rank, int ranks) {
  std::vector<int> order = strip_order(tiles, strip_tiles);
  if (ranks == 1) return order;
  const int r0 = first_row(tiles.rows(), rank, ranks);
  const int r1 = first_row(tiles.rows(), rank + 1, ranks);
  std::erase_if(order, [&](int i) {
    const int row = i / tiles.cols();
    return row < r0 || row >= r1;
  });
  return order;
}

std::vector<LayerSpec> raw_chunk_layers(std::vector<LayerSpec> layers) {
  for (auto& l : layers) l.deflate_level = 0;
  return layers;
}

int test_fail_tile() {
  const char* v = std::getenv("AFTERMATH_TEST_FAIL_TILE");
  if (v == nullptr || *v == '\0') return -1;
  char* end = nullptr;
  const long tile = std::strtol(v, &end, 10);
  if (*end != '\0' || tile < 0)
    throw Error(ErrorKind::usage, "AFTERMATH_TEST_FAIL_TILE must be a tile index");
  return static_cast<int>(tile);
}

void check_same_model(const Communicator& comm, double threshold,
                      const Normalisation& normalisation, const FitReport& detector_fit) {
  if (!comm.distributed()) return;
  ByteWriter w;
  w.put(threshold);
  w.put_string(normalisation.method);
  for (const auto* v : {&normalisation.linear.gain, &normalisation.linear.offset}) {
    for (double x : *v) w.put(x);
  }
  for (const auto* q : {&normalisation.histogram.post_q, &normalisation.histogram.pre_q}) {
    for (const auto& band : *q) {
      for (double x : band) w.put(x);
    }
  }
  w.put(normalisation.invariant_pixels);
  for (const auto& [key, values] : detector_fit) {
    w.put_string(key);
    for (double x : values) w.put(x);
  }
  std::uint64_t hash = 14695981039346656037ull;  // FNV-1a
  for (std::uint8_t b : w.take()) hash = (hash ^ b) * 1099511628211ull;
  const bool same = comm.all_equal(hash);
  comm.run_agreed([&] {
    if (!same) {
      throw Error(ErrorKind::internal,
                  "the MPI ranks fitted different job statistics (threshold, normalisation, "
                  "detector) from the same "
                  "samples: run all ranks on nodes of one kind",
                  "estimate");
    }
  });
}

void warn_if_bound_to_one_core(const Communicator& comm, int requested_threads) {
  if (!comm.distributed() || requested_threads == 1) return;
  const unsigned cores = std::thread::hardware_concurrency();
  if (tbb::info::default_concurrency() == 1 && cores > 1) {
    spdlog::warn(
        "this rank may run on one core of {} (bound by the MPI launcher?): start mpirun with "
        "--bind-to none, or give each rank several cores (srun --cpus-per-task)",
        cores);
  }
}

void sum_over_ranks(const Communicator& comm, std::vector<std::int64_t*> counters) {
  if (!comm.distributed()) return;
  std::vector<std::int64_t> values;
  for (auto* c : counters) values.push_back(*c);
  comm.sum(values);
  for (std::size_t i = 0; i < counters.size(); ++i) *counters[i] = values[i];
}

void merge_over_ranks(const Communicator& comm, FootprintAccumulator& accumulator, const FootprintIndex& index) {
  if (!comm.distributed() || comm.size() == 1) return;
  // Rank 0 merges every rank's state (the merge does not depend on the order), then every rank
  // takes rank 0's result, so that all ranks report the same classes.
  const std::vector<Bytes> states = comm.gather(accumulator.serialize(), 0);
  Bytes merged;
  if (comm.is_root()) {
    for (std::size_t r = 1; r < states.size(); ++r) accumulator.merge_serialized(states[r]);
    merged = accumulator.serialize();
  }
  comm.broadcast(merged, 0);
  if (!comm.is_root()) {
    FootprintAccumulator all(index.feature_count(), index);  // the same kind of state as rank 0's
    all.merge_serialized(merged);
    accumulator = std::move(all);
  }
}

void merge_over_ranks(const Communicator& comm, SiteAccumulator& sites) {
  if (!comm.distributed() || comm.size() == 1) return;
  const std::vector<Bytes> states = comm.gather(sites.serialize(), 0);
  if (comm.is_root()) {
    for (std::size_t r = 1; r < states.size(); ++r) sites.merge_serialized(states[r]);
  }
}

void merge_over_ranks(const Communicator& comm, Quicklook& quicklook) {
  if (!comm.distributed() || comm.size() == 1) return;
  const std::vector<Bytes> pieces = comm.gather(quicklook.pasted_pieces(), 0);
  for (std::size_t r = 1; r < pieces.size(); ++r) quicklook.paste_pieces(pieces[r]);
}

#if AFTERMATH_MPI

RankedLayerOutput::RankedLayerOutput(const Communicator& comm, const std::string& final_path,
                                     const Grid& grid, int chunk_size,
                                     std::vector<LayerSpec> layers, int deflate_level)
    : comm_(comm),
      final_path_(final_path),
      grid_(grid),
      chunk_size_(chunk_size),
      deflate_level_(deflate_level),
      layers_(std::move(layers)) {
  const Bytes name = comm_.share_from_root([&] {
    const std::string path = create_temporary_output(final_path_);
    return Bytes(path.begin(), path.end());
  });
  const std::string temp_path(name.begin(), name.end());
  comm_.run_agreed([&] {
    try {
      writer_ = std::make_unique<Hdf5ParallelWriter>(final_path_, temp_path, comm_.is_root(), grid_,
                                                     chunk_size_, layers_, deflate_level_);
    } catch (...) {
      // Rank 0 created the file: it removes it when this rank alone failed to open it.
      if (comm_.is_root()) ::unlink(temp_path.c_str());
      throw;
    }
  });
}

RankedLayerOutput::~RankedLayerOutput() = default;

void RankedLayerOutput::keep(const Tile& tile, std::vector<EncodedChunk> chunks) {
  kept_.push_back({tile, std::move(chunks)});
}

void RankedLayerOutput::run_tiles(tbb::task_arena& arena, const TileGrid& tiles, int tokens,
                                  const ClassifyContext& ctx, const PipelineStages& stages,
                                  const std::function<void(const char*)>& check_cancel,
                                  const std::vector<int>& order) {
  // Every rank runs as many rounds as the largest share has tiles (the shares differ by the
  // rows' split), so that all of them make the same collective calls.
  int rounds_total = 0;
  for (int r = 0; r < comm_.size(); ++r) {
    const int rows =
        first_row(tiles.rows(), r + 1, comm_.size()) - first_row(tiles.rows(), r, comm_.size());
    rounds_total = std::max(rounds_total, rows * tiles.cols());
  }
  // A batch keeps 4 x tokens tiles' raw chunks (a few MB each) between its pipeline and its
  // writes: enough tiles to keep the threads busy, bounded whatever the scene size.
  const int batch = std::max(1, 4 * tokens);
  const int mine = static_cast<int>(order.size());
  for (int first = 0; first < rounds_total; first += batch) {
    const int rounds = std::min(batch, rounds_total - first);
    const std::vector<int> part(order.begin() + std::min(first, mine),
                                order.begin() + std::min(first + rounds, mine));
    std::exception_ptr failed;
    try {
      if (!part.empty()) run_tile_pipeline(arena, tiles, tokens, ctx, stages, check_cancel, part);
    } catch (...) {
      failed = std::current_exception();
    }
    comm_.agree(failed);  // a bad tile on any rank: every rank throws before writing
    write_rounds(rounds);
  }
}

void RankedLayerOutput::write_rounds(int rounds) {
  // A rank whose write fails keeps making the remaining collective calls with empty selections,
  // so that no other rank waits for it; the ranks then agree on the failure.
  std::exception_ptr failed;
  for (int k = 0; k < rounds; ++k) {
    const KeptTile* t = k < static_cast<int>(kept_.size()) && !failed
                            ? &kept_[static_cast<std::size_t>(k)]
                            : nullptr;
    for (std::size_t l = 0; l < layers_.size(); ++l) {
      try {
        if (t != nullptr && t->chunks.size() != layers_.size()) {
          throw Error(ErrorKind::internal, "collective write: a tile without a chunk per layer",
                      "write", {}, t->tile.index);
        }
        writer_->write_round(static_cast<int>(l), t ? &t->tile : nullptr,
                             t ? &t->chunks[l] : nullptr);
      } catch (const Error& e) {
        if (!failed)
          failed = std::make_exception_ptr(e.with_context("write", {}, t ? t->tile.index : -1));
        t = nullptr;
      } catch (...) {
        if (!failed) failed = std::current_exception();
        t = nullptr;
      }
    }
  }
  kept_.clear();
  comm_.agree(failed);
}

std::unique_ptr<Hdf5Writer> RankedLayerOutput::finish() {
  comm_.run_agreed([&] { writer_->close(); });
  // Every rank has closed the file (the agreement above is a barrier): rank 0 reopens it alone.
  std::unique_ptr<Hdf5Writer> adopted;
  comm_.run_agreed([&] {
    if (!comm_.is_root()) return;
    adopted = Hdf5Writer::adopt(final_path_, writer_->temp_path(), grid_, chunk_size_, layers_,
                                deflate_level_);
    writer_->release();  // the adopted writer removes the file unless it commits it
  });
  writer_.reset();
  return adopted;
}

#else  // a build without MPI never runs a job over ranks (Communicator::world() is this process)

RankedLayerOutput::RankedLayerOutput(const Communicator& comm, const std::string&, const Grid&, int,
                                     std::vector<LayerSpec>, int)
    : comm_(comm) {
  throw Error(ErrorKind::internal, "this aftermath was built without MPI (AFTERMATH_MPI off)");
}
RankedLayerOutput::~RankedLayerOutput() = default;
void RankedLayerOutput::keep(const Tile&, std::vector<EncodedChunk>) {}
void RankedLayerOutput::run_tiles(tbb::task_arena&, const TileGrid&, int, const ClassifyContext&,
                                  const PipelineStages&, const std::function<void(const char*)>&,
                                  const std::vector<int>&) {}
std::unique_ptr<Hdf5Writer> RankedLayerOutput::finish() { return nullptr; }
void RankedLayerOutput::write_rounds(int) {}

#endif

}  // namespace aftermath::engine
