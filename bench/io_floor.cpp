// The I/O floor of a run: what `aftermath run` cannot go below on this machine for this pair.
// Reads and decodes every pixel of both scenes through the engine's reader (SceneReader with the
// run's shared block caches, tile windows on the pre scene's grid, the same thread count), then
// writes an output of the run's layout and size (uint16 change_score unfiltered, uint8 damage_mask
// deflated) with the run's writer, and commits it. No alignment, no detector, no mask: the science
// is what a run adds. Prints one JSON object: seconds for read, write and total, Mpx/s.
//
// Usage: aftermath_io_floor PRE POST OUT.h5 [threads (default all)] [tile size (default 512)]
#include <tbb/enumerable_thread_specific.h>
#include <tbb/global_control.h>
#include <tbb/info.h>
#include <tbb/parallel_for.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "aftermath/config/config.hpp"
#include "aftermath/core/error.hpp"
#include "aftermath/core/grid.hpp"
#include "aftermath/core/util.hpp"
#include "aftermath/io/hdf5_writer.hpp"
#include "aftermath/io/scene.hpp"

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

int main(int argc, char** argv) {
  using namespace aftermath;
  keep_freed_memory_in_heap();  // as `aftermath run`
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s PRE POST OUT.h5 [threads] [tile_size]\n", argv[0]);
    return 2;
  }
  const std::string pre_path = argv[1], post_path = argv[2], out_path = argv[3];
  const int threads = argc > 4 ? std::atoi(argv[4]) : tbb::info::default_concurrency();
  const int tile = argc > 5 ? std::atoi(argv[5]) : 512;
  try {
    init_gdal();
    tbb::global_control parallelism(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(threads));
    const SceneInfo pre = open_scene(pre_path, InputConfig{});
    const SceneInfo post = open_scene(post_path, InputConfig{});
    const Grid grid = pre.grid;
    const TileGrid tiles(grid.width, grid.height, tile, 0);

    const auto t0 = Clock::now();
    struct Readers {
      SceneReader pre, post;
    };
    // The run's reading path: blocks decoded once into a cache per scene shared by the threads'
    // readers (GDAL's own block cache, left to fill, reads a fifth slower), windows assembled in
    // the file's type (read_native: no float copy).
    const auto pre_blocks = std::make_shared<SceneBlockCache>(std::size_t{64} << 20);
    const auto post_blocks = std::make_shared<SceneBlockCache>(std::size_t{64} << 20);
    tbb::enumerable_thread_specific<std::unique_ptr<Readers>> readers;
    std::atomic<long long> valid{0};
    tbb::parallel_for(0, tiles.count(), [&](int i) {
      auto& r = readers.local();
      if (!r) {
        r = std::make_unique<Readers>(Readers{SceneReader(pre, grid, ReadOptions{}, pre_blocks),
                                              SceneReader(post, grid, ReadOptions{}, post_blocks)});
      }
      const Window w = tiles.tile(i).core;
      const SceneWindow a = r->pre.read_native(w);
      const SceneWindow b = r->post.read_native(w);
      valid += cv::countNonZero(a.valid) + cv::countNonZero(b.valid);
    });
    const double read_s = since(t0);

    const auto t1 = Clock::now();
    {
      const std::vector<LayerSpec> layers = {
          {"change_score", LayerType::uint16, 65535, "", "1", {}, {}, 1.0 / 65536, 0},
          {"damage_mask", LayerType::uint8, 255, "", "", {}, {}, 0, 4},
      };
      Hdf5Writer writer(out_path, grid, tile, layers, 4);
      std::vector<EncodedChunk> chunks(static_cast<std::size_t>(tiles.count() * 2));
      // Encoding in parallel (as the run does): the score chunk is a copy, the mask deflated.
      tbb::parallel_for(0, tiles.count(), [&](int i) {
        const Window w = tiles.tile(i).core;
        const cv::Mat score(w.height, w.width, CV_16U, cv::Scalar(1000 + i % 7));
        const cv::Mat mask(w.height, w.width, CV_8U, cv::Scalar(0));
        chunks[static_cast<std::size_t>(2 * i)] = encode_chunk(layers[0], score, tile, 0);
        chunks[static_cast<std::size_t>(2 * i + 1)] = encode_chunk(layers[1], mask, tile, 4);
      });
      for (int i = 0; i < tiles.count(); ++i) {
        writer.write_chunk(0, tiles.tile(i), chunks[static_cast<std::size_t>(2 * i)]);
        writer.write_chunk(1, tiles.tile(i), chunks[static_cast<std::size_t>(2 * i + 1)]);
      }
      writer.commit();
    }
    const double write_s = since(t1);
    const double total = read_s + write_s;
    std::printf(
        "{\"width\": %d, \"height\": %d, \"threads\": %d, \"read_s\": %.3f, \"write_s\": %.3f, \"total_s\": %.3f, "
        "\"mpx_per_s\": %.1f, \"valid_px\": %lld}\n",
        grid.width, grid.height, threads, read_s, write_s, total, grid.width * double(grid.height) / 1e6 / total,
        valid.load());
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "io_floor: %s\n", e.what());
    return 1;
  }
}
