// run_job: plan -> estimate -> score -> classify -> write, with one oneTBB parallel_pipeline.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <tbb/enumerable_thread_specific.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_pipeline.h>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>

#include "aftermath/align/registration.hpp"
#include "aftermath/core/error.hpp"
#include "aftermath/detect/detector.hpp"
#include "aftermath/engine/job.hpp"
#include "aftermath/io/footprints.hpp"
#include "aftermath/io/hdf5_writer.hpp"
#include "aftermath/io/scene.hpp"
#include "aftermath/radiometry/normalisation.hpp"
#include "aftermath/score/built_up.hpp"
#include "aftermath/score/footprint_accumulator.hpp"
#include "aftermath/score/threshold.hpp"
#include "alignment.hpp"
#include "classify.hpp"
#include "distributed.hpp"
#include "plan.hpp"
#include "quicklook.hpp"
#include "ranked_tiles.hpp"

namespace aftermath {

namespace {
std::atomic<bool> g_cancel{false};
static_assert(std::atomic<bool>::is_always_lock_free);

void throw_if_cancelled(const char* stage) {
  if (g_cancel.load(std::memory_order_relaxed)) {
    throw Error(ErrorKind::internal, "interrupted: the job was cancelled (signal)", stage);
  }
}
}  // namespace

void request_cancel() noexcept { g_cancel.store(true, std::memory_order_relaxed); }
bool cancel_requested() noexcept { return g_cancel.load(std::memory_order_relaxed); }

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kStripPx = 4096;  // width of the vertical strips of tiles the run goes through
// The resident memory is checked after this many pixels of tile cores (8 tiles of 512^2 px): see
// the write stage.
constexpr std::int64_t kCheckMemoryEveryPx = std::int64_t{2} << 20;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Per-thread GDAL handles: a dataset handle is never shared across threads.
struct Readers {
  SceneReader pre;
  SceneReader post;
  std::vector<SceneReader> more_pre, more_post;  // stacks (RunRequest::more_pre/more_post)
};

// Everything the estimate stage learns, used read-only by the parallel tile stage.
struct JobModel {
  Registration registration;
  Normalisation normalisation;
  std::unique_ptr<Detector> detector;
  double threshold = 0.5;
  engine::Stretch pre_stretch, post_stretch;
  double brightness_range = 1;  // pre scene p99 - p1 brightness, for the building index (sites.built_up_only)
};

// NaN/Inf pixels of each scene in a region (R18: they are masked, and the user is told how many).
struct NonFiniteCounts {
  std::int64_t pre = 0, post = 0;
};

// Reads one window of both scenes, the post aligned onto the pre grid and normalised. With
// `count`, the non-finite pixels of both scenes inside `count_region` (a grid window) are added.
BandPair read_pair(Readers& r, const Window& w, const Registration& reg,
                   const Normalisation* norm, NonFiniteCounts* count = nullptr,
                   const Window& count_region = {}) {
  SceneWindow pre = r.pre.read(w);
  const Window src = registration_source(reg, w);  // the tile mapped by the model, plus the taps
  SceneWindow post = r.post.read_native(src);      // uint16 stays uint16 until it is resampled
  if (count) {
    auto in = [&](const cv::Mat& m, const Window& read) -> std::int64_t {
      if (m.empty()) return 0;
      return cv::countNonZero(m(cv::Rect(count_region.x - read.x, count_region.y - read.y,
                                         count_region.width, count_region.height)));
    };
    count->pre += in(pre.non_finite, w);
    count->post += in(post.non_finite, src);
  }
  BandPair pair;
  cv::Mat post_valid;
  // The normalisation is applied to each resampled row while it is in the cache (a pass over
  // the tile's post bands otherwise).
  RowEpilogue normalise;
  if (norm && changes_values(*norm)) {
    normalise = [norm](std::size_t band, float* row, int cols) {
      apply_to_row(*norm, band, row, cols);
    };
  }
  apply_registration(reg, post.bands, post.valid, src, w, pair.post, post_valid, normalise);
  pair.pre = std::move(pre.bands);
  cv::bitwise_and(pre.valid, post_valid, pair.valid);
  // Stacks: a pixel is valid only where every scene is. Further post scenes are read and
  // registered like the post scene (assumed co-registered with it).
  for (auto& reader : r.more_pre) {
    SceneWindow s = reader.read(w);
    cv::bitwise_and(pair.valid, s.valid, pair.valid);
    pair.more_pre.push_back(std::move(s.bands));
  }
  for (auto& reader : r.more_post) {
    SceneWindow s = reader.read_native(src);
    std::vector<cv::Mat> bands;
    cv::Mat valid;
    apply_registration(reg, s.bands, s.valid, src, w, bands, valid, normalise);
    cv::bitwise_and(pair.valid, valid, pair.valid);
    pair.more_post.push_back(std::move(bands));
  }
  return pair;
}

// The run's per-tile extra: quicklook pieces and non-finite counts of the tile's core.
struct RunTileExtra {
  cv::Rect rect;
  cv::Mat pre, post, score;
  NonFiniteCounts non_finite;
  EncodedChunk misregistration;
  EncodedChunk built_up;  // sites.built_up_only
};


std::string crs_short_name(const std::string& wkt) {
  if (wkt.empty()) return "pixel grid (not georeferenced)";
  // The WKT's first quoted string is the CRS name.
  const auto a = wkt.find('"');
  const auto b = a == std::string::npos ? a : wkt.find('"', a + 1);
  return b == std::string::npos ? "unnamed CRS" : wkt.substr(a + 1, b - a - 1);
}

// Joins a task group's tasks inside `arena` when the job ends early (an exception). With one
// thread the arena has no worker: only a thread inside it runs (or cancels) the tasks, and the
// task group's destructor, outside it, would wait for them forever.
class JoinInArena {
 public:
  JoinInArena(tbb::task_arena& arena, tbb::task_group& group) : arena_(arena), group_(group) {}
  ~JoinInArena() {
    arena_.execute([&] {
      group_.cancel();
      try {
        group_.wait();
      } catch (...) {  // the job is already failing with its own error
      }
    });
  }
  JoinInArena(const JoinInArena&) = delete;
  JoinInArena& operator=(const JoinInArena&) = delete;

 private:
  tbb::task_arena& arena_;
  tbb::task_group& group_;
};

}  // namespace

RunSummary run_job(const RunRequest& req, const ProgressFn& progress) {
  const auto t_start = Clock::now();
  const auto log_memory = [](const char* after) {
    const ResidentMemory m = resident_memory();
    spdlog::debug("memory after {}: {:.0f} MB resident, {:.0f} MB at the peak so far", after,
                  m.now_mb, m.peak_mb);
  };
  RunSummary summary;
  const JobConfig& cfg = req.config;
  init_gdal();
  // Over MPI ranks (README "MPI"): every rank runs this function; each phase that can fail on
  // one rank ends in an agreement (comm.agree), so that all ranks fail together. Alone, the
  // communicator does nothing and agree() just rethrows.
  const engine::Communicator comm = req.across_ranks ? engine::Communicator::world() : engine::Communicator::self();

  // ---- plan: validate everything before reading a pixel --------------------------------
  engine::Plan plan;
  std::exception_ptr plan_failed;
  try {
    validate(cfg);
    if ((!req.more_pre.empty() || !req.more_post.empty()) && cfg.detect.method != "ttest" &&
        !(cfg.detect.method == "ensemble" && cfg.detect.ensemble_ttest > 0)) {
      throw Error(ErrorKind::usage, "several scenes per side (--pre/--post given more than once) need detect.method "
                                    "ttest (or an ensemble with detect.ensemble_ttest > 0)");
    }
    engine::check_output(req);
    if (!req.footprints.empty() && !std::filesystem::exists(req.footprints)) {
      throw_input(fmt::format("footprints file {} does not exist", req.footprints));
    }
    try {
      plan = engine::make_plan(req);
    } catch (const Error& e) {
      throw e.with_context("plan");
    }
  } catch (...) {
    plan_failed = std::current_exception();
  }
  comm.agree(plan_failed);
  summary.warnings = plan.warnings;
  for (const auto& w : plan.warnings) spdlog::warn("{}", w);
  const Grid& grid = plan.grid;
  summary.grid = grid;
  summary.crs_name = crs_short_name(grid.crs_wkt);
  spdlog::info("analysis grid: {} x {} px, {}, origin ({}, {}), pixel size ({}, {})", grid.width,
               grid.height, summary.crs_name, grid.geotransform[0], grid.geotransform[3],
               grid.geotransform[1], grid.geotransform[5]);

  // 0 = off; checks an explicit halo against the building index's reach.
  const int built_up_size_px = engine::built_up_size_px(cfg, grid);
  const int halo = engine::tile_halo(cfg, built_up_size_px);
  const TileGrid tiles(grid.width, grid.height, cfg.tiling.tile_size, halo);
  summary.times.plan = seconds_since(t_start);

  engine::warn_if_bound_to_one_core(comm, req.threads);
  const int threads = req.threads > 0 ? req.threads : tbb::info::default_concurrency();
  tbb::global_control parallelism(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(threads));
  tbb::task_arena arena(threads);
  // The footprints are read by a task in the job's arena while the estimate stage runs (they
  // are not needed before the tiles; 88k polygons took 1.3 s on one core). A bad footprint file
  // still fails the run before any output is created.
  FootprintSet footprints;
  // Release/acquire pairs: the hand-offs to and from the task, visible to TSan (TBB's are not).
  // Everything a task touches is declared before its join, so that it outlives the task when
  // the job ends early.
  std::atomic<bool> footprints_handed{false}, footprints_read{false};
  tbb::task_group footprint_loading;
  const JoinInArena join_footprint_loading(arena, footprint_loading);
  if (!req.footprints.empty()) {
    footprints_handed.store(true, std::memory_order_release);
    arena.execute([&] {
      footprint_loading.run([&] {
        (void)footprints_handed.load(std::memory_order_acquire);
        try {
          footprints = read_footprints(req.footprints, grid, {req.footprint_layer, {}, cfg.features});
        } catch (const Error& e) {
          throw e.with_context("plan", req.footprints);
        }
        footprints_read.store(true, std::memory_order_release);
      });
    });
  }
  // The inputs' SHA-256 (provenance) are tasks in the job's arena, run by whichever thread is
  // free (from the estimate stage's serial parts on) instead of one after the other at the end: a
  // run of large scenes spent a tenth of its time hashing on one core. With one thread they
  // simply take their turn.
  std::string pre_sha256, post_sha256;
  std::atomic<bool> hashing_handed{false};  // release/acquire: the hand-offs, visible to TSan
  std::atomic<int> hashed{0};
  // A job that fails (the group is cancelled) or is cancelled by a signal stops hashing at once.
  const auto keep_hashing = [] {
    return !tbb::is_current_task_group_canceling() && !g_cancel.load(std::memory_order_relaxed);
  };
  tbb::task_group hashing;
  const JoinInArena join_hashing(arena, hashing);
  hashing_handed.store(true, std::memory_order_release);
  if (comm.is_root())
    arena.execute([&] {  // over ranks, rank 0 writes the provenance
      hashing.run([&] {
        (void)hashing_handed.load(std::memory_order_acquire);
        pre_sha256 = sha256_file(req.pre, keep_hashing);
        hashed.fetch_add(1, std::memory_order_release);
      });
      hashing.run([&] {
        (void)hashing_handed.load(std::memory_order_acquire);
        post_sha256 = sha256_file(req.post, keep_hashing);
        hashed.fetch_add(1, std::memory_order_release);
      });
    });
  // Decoded input blocks shared by the threads' readers of each scene (a block under the halo of
  // neighbouring tiles is decoded once). Sized for about three tile rows of a tile strip (the
  // order below) at 2 bytes per band and pixel plus the validity byte: the tiles' reads are
  // announced (below), so a block goes after its last read and what stays has a future, the
  // blocks under a strip's border for the next strip among them (at 8192^2, 1,068 decodes for
  // 1,024 blocks a scene; least recently used alone, 1,286 with strips half as wide).
  const int strip_px = std::max(1, kStripPx / cfg.tiling.tile_size) * cfg.tiling.tile_size;
  auto block_cache = [&](const SceneInfo& scene) {
    const std::size_t window_px = static_cast<std::size_t>(strip_px + 2 * halo + 1024) *
                                  static_cast<std::size_t>(cfg.tiling.tile_size + 2 * halo);
    // At most 256 MB a scene (GDAL's own bound before): huge tiles re-decode some blocks instead.
    return std::make_shared<SceneBlockCache>(
        std::min<std::size_t>(3 * window_px * (2 * static_cast<std::size_t>(scene.band_count) + 1),
                              std::size_t{256} << 20));
  };
  auto pre_blocks = block_cache(plan.pre), post_blocks = block_cache(plan.post);
  tbb::enumerable_thread_specific<std::optional<Readers>> readers;
  auto thread_readers = [&]() -> Readers& {
    auto& slot = readers.local();
    if (!slot) {
      std::vector<SceneReader> more_pre, more_post;
      for (const auto& s : plan.more_pre) more_pre.emplace_back(s, grid, plan.pre_read);
      for (const auto& s : plan.more_post) more_post.emplace_back(s, grid, plan.post_read);
      slot.emplace(Readers{SceneReader(plan.pre, grid, plan.pre_read, pre_blocks),
                           SceneReader(plan.post, grid, plan.post_read, post_blocks),
                           std::move(more_pre), std::move(more_post)});
    }
    return *slot;
  };

  // ---- estimate: registration, normalisation, detector statistics, threshold ------------
  const auto t_est = Clock::now();
  JobModel model;
  const auto windows = tie_point_windows(grid.width, grid.height, cfg.align);
  // Over ranks the registration (the expensive part: the tie-point windows) is estimated by
  // rank 0 alone, with its threads, and sent to the others: every rank gets bit-identical
  // parameters. The statistics below are cheap and fitted by every rank from the same samples.
  std::exception_ptr estimate_failed;
  try {
    model.registration = engine::share_registration(comm, [&] {
      Registration registration;
      if (!req.alignment.empty()) {
        // A stored model (aftermath align --out): reused as is, on the same analysis grid.
        registration = engine::read_alignment(req.alignment, grid);
        spdlog::info("alignment: reusing the {} model stored in {}", registration.model, req.alignment);
      } else if (cfg.align.enabled) {
        const WindowReader read_intensity = [&](bool post, const Window& w) {
          Readers& r = thread_readers();
          const SceneWindow s = post ? r.post.read(w) : r.pre.read(w);
          return IntensityWindow{to_intensity(s.bands), s.valid};
        };
        registration = engine::estimate_alignment(grid, cfg, read_intensity, engine::arena_for_each(arena), req.post);
        if (!registration.warning.empty()) {
          spdlog::warn("{}", registration.warning);
          summary.warnings.push_back(registration.warning);
        }
      } else {
        registration.model = "identity";
      }
      return registration;
    });
    const auto& reg = model.registration;
    spdlog::info("alignment: {} shift ({:.3f}, {:.3f}) px; tie points kept {} dropped {}; RMSE "
                 "{:.3f} -> {:.3f} px",
                 reg.model, reg.shift.x, reg.shift.y, reg.kept, reg.dropped, reg.rmse_before, reg.rmse_after);

    const double t_aligned = seconds_since(t_est);
    // Samples for the job-level statistics: the central part (at most 128 px square) of the same
    // windows, post aligned: a few hundred thousand pixels spread over the scene are plenty for
    // medians and histograms, and keep the estimate stage short.
    std::vector<BandPair> samples(windows.size());
    engine::arena_for_each(arena)(windows.size(), [&](std::size_t i) {
      const Window& w = windows[i];
      const int sw = std::min(w.width, 128), sh = std::min(w.height, 128);
      const Window centre{w.x + (w.width - sw) / 2, w.y + (w.height - sh) / 2, sw, sh};
      samples[i] = read_pair(thread_readers(), centre, reg, nullptr);
    });
    const double t_sampled = seconds_since(t_est);
    // Normalisation fitted on all samples at once (concatenated as one row per window).
    std::vector<cv::Mat> pre_cat, post_cat;
    cv::Mat valid_cat;
    {
      // Band by band side by side (the validity mask as one more), each a copy of its samples.
      const std::size_t nb = samples.empty() ? 0 : samples[0].pre.size();
      pre_cat.resize(nb);
      post_cat.resize(nb);
      engine::arena_for_each(arena)(samples.empty() ? 0 : nb + 1, [&](std::size_t b) {
        std::vector<cv::Mat> a, p;
        for (auto& s : samples) {
          if (b == nb) {
            a.push_back(s.valid.reshape(1, 1));
            continue;
          }
          a.push_back(s.pre[b].reshape(1, 1));
          p.push_back(s.post[b].reshape(1, 1));
        }
        cv::hconcat(a, b == nb ? valid_cat : pre_cat[b]);
        if (b < nb) cv::hconcat(p, post_cat[b]);
      });
    }
    model.normalisation = fit_normalisation(cfg.radiometry, pre_cat, post_cat, valid_cat,
                                            engine::arena_for_each(arena));
    if (model.normalisation.method == "irmad") {
      const auto& m = model.normalisation.irmad;
      spdlog::info("radiometry irmad: {} iterations ({}), canonical correlations [{:.4f}], {} invariant pixels",
                   m.iterations, m.converged ? "converged" : "not converged", fmt::join(m.rho, ", "),
                   model.normalisation.invariant_pixels);
    }
    for (auto& s : samples) aftermath::apply(model.normalisation, s.post);
    const double t_normalised = seconds_since(t_est);
    model.detector = make_detector(cfg.detect);
    model.detector->fit(samples, engine::arena_for_each(arena));
    const double t_fitted = seconds_since(t_est);
    for (const auto& [key, values] : model.detector->fit_report()) {
      spdlog::info("detector {}: {} = [{}]", model.detector->name(), key, fmt::join(values, ", "));
    }
    ScoreHistogram hist;
    // On the stored codes' values, as a rescore sees them (its Otsu threshold is then the run's).
    for (const auto& s : samples) {
      hist.add(decode_scores(encode_scores(model.detector->score(s), s.valid), 0.0f), s.valid);
    }
    model.threshold = resolve_threshold(cfg.threshold, hist);
    std::vector<std::vector<cv::Mat>> pre_bands, post_bands;
    std::vector<cv::Mat> valids;
    for (const auto& s : samples) {
      pre_bands.push_back(s.pre);
      post_bands.push_back(s.post);
      valids.push_back(s.valid);
    }
    if (built_up_size_px > 0) {
      model.brightness_range = brightness_range(pre_cat, valid_cat);
    }
    if (!req.quicklook.empty()) {
      model.pre_stretch = engine::fit_stretch(pre_bands, valids);
      model.post_stretch = engine::fit_stretch(post_bands, valids);
    }
    summary.times.parts = {{"estimate: alignment", t_aligned},
                           {"estimate: samples", t_sampled - t_aligned},
                           {"estimate: radiometry fit", t_normalised - t_sampled},
                           {"estimate: detector fit", t_fitted - t_normalised},
                           {"estimate: threshold, stretches", seconds_since(t_est) - t_fitted}};
    if (hist.total() == 0) {
      const std::string w = "no valid pixel in the sampled windows: every feature will be no-data";
      spdlog::warn("{}", w);
      summary.warnings.push_back(w);
    }
  } catch (const Error& e) {
    estimate_failed = std::make_exception_ptr(e.with_context("estimate"));
  } catch (...) {
    estimate_failed = std::current_exception();
  }
  comm.agree(estimate_failed);
  engine::check_same_model(comm, model.threshold, model.normalisation, model.detector->fit_report());
  spdlog::info("detector {}: threshold {:.4f} ({})", model.detector->name(), model.threshold, cfg.threshold.method);
  summary.times.estimate = seconds_since(t_est);

  if (!req.footprints.empty()) {
    comm.run_agreed([&] {
      arena.execute([&] { footprint_loading.wait(); });  // rethrows a bad footprint file
      if (!footprints_read.load(std::memory_order_acquire)) throw Error(ErrorKind::internal, "footprints not read", "plan");
    });
    for (const auto& w : footprints.warnings) {
      spdlog::warn("{}", w);
      summary.warnings.push_back(w);
    }
    spdlog::info("{} features from {}", footprints.features.size(), req.footprints);
  }
  release_free_heap();  // the estimate stage's and the footprint reader's transients
  std::int64_t px_since_check = 0;
  int heap_releases = 0;
  log_memory("the estimate stage and the footprints");
  // The tiles may use as much memory as the stages before them did at their peak (the estimate's
  // windows, the footprint reader): beyond it, the heap's free pages go back to the system.
  const double tiles_memory_mb = resident_memory().peak_mb;
  const auto log_blocks = [&](const char* after) {
    for (const auto* blocks : {pre_blocks.get(), post_blocks.get()}) {
      const auto st = blocks->stats();
      spdlog::debug("input blocks after {}: {} decoded, {} reads from the shared cache", after,
                    st.decoded, st.reused);
    }
  };
  log_blocks("the estimate stage");

  // ---- score + classify (parallel) -> write (serial, in tile order) ----------------------
  const auto t_score = Clock::now();
  std::vector<LayerSpec> layers = engine::output_layers(cfg);
  for (auto& l : engine::detector_output_layers(cfg)) layers.push_back(std::move(l));
  const int misregistration_index = static_cast<int>(layers.size());
  layers.push_back(engine::misregistration_layer());
  const int built_up_index_layer = built_up_size_px > 0 ? static_cast<int>(layers.size()) : -1;
  if (built_up_size_px > 0) layers.push_back(engine::built_up_layer());
  // Over ranks the chunks are handed to H5Dwrite raw (HDF5 compresses them); alone, pre-encoded.
  const std::vector<LayerSpec> chunk_layers = comm.distributed() ? engine::raw_chunk_layers(layers) : layers;
  const FootprintIndex index(footprints.features, tiles);
  FootprintAccumulator accumulator(footprints.features.size(), index);
  SiteAccumulator sites;
  engine::Quicklook quicklook(grid.width, grid.height);
  const bool want_ql = !req.quicklook.empty();
  std::unique_ptr<Hdf5Writer> writer;
  std::unique_ptr<engine::RankedLayerOutput> ranked;  // over ranks: the collective output
  try {
    if (comm.distributed()) {
      ranked = std::make_unique<engine::RankedLayerOutput>(comm, req.out, grid, cfg.tiling.tile_size, layers,
                                                           cfg.output.deflate_level);
    } else {
      writer = std::make_unique<Hdf5Writer>(req.out, grid, cfg.tiling.tile_size, layers, cfg.output.deflate_level);
    }
  } catch (const Error& e) {
    throw e.with_context("write");
  }
  const int tokens = cfg.tiling.tiles_in_flight > 0 ? cfg.tiling.tiles_in_flight : 2 * threads;
  // Strips about 4096 px wide: the input blocks under the tile row above stay cached. Over
  // ranks, this rank's block of tile rows.
  const std::vector<int> order = engine::rank_tile_order(
      tiles, std::max(1, kStripPx / cfg.tiling.tile_size), comm.rank(), comm.size());
  const int n_tiles = static_cast<int>(order.size());
  {
    // Every block the tiles will read, as many times as they read it: a block is dropped after
    // its last read, so the bounded cache keeps the blocks still to be read (those under a strip's
    // border, read again by the next strip, among them).
    Readers& r = thread_readers();
    std::vector<std::int64_t> pre_keys, post_keys;
    for (const int i : order) {
      const Window& outer = tiles.tile(i).outer;
      for (const std::int64_t k : r.pre.block_keys(outer)) pre_keys.push_back(k);
      for (const std::int64_t k : r.post.block_keys(registration_source(model.registration, outer)))
        post_keys.push_back(k);
    }
    pre_blocks->expect_reads(pre_keys);
    post_blocks->expect_reads(post_keys);
  }
  int written = 0;
  NonFiniteCounts non_finite;
  engine::ClassifyContext ctx{&cfg, model.threshold, &chunk_layers, &footprints.features, &index};
  ctx.site_min_pixels = engine::site_min_pixels(cfg.sites, grid);
  const int fail_tile = engine::test_fail_tile();
  engine::PipelineStages stages;
  engine::TileStageTimes stage_times;
  stages.times = &stage_times;
  std::atomic<std::int64_t> read_ns{0};  // inside compute: reading, registering and normalising
  // Parallel: aligned read of the outer window, score (then the shared classify step).
  stages.compute = [&](engine::TileWork& w) {
    const Tile& t = w.tile;
    if (t.index == fail_tile) {
      throw Error(ErrorKind::input, "tile failed on purpose (test hook AFTERMATH_TEST_FAIL_TILE)", "score", {}, t.index);
    }
    auto q = std::make_shared<RunTileExtra>();
    BandPair pair = [&] {
      const engine::StageClock clock(&read_ns);
      return read_pair(thread_readers(), t.outer, model.registration, &model.normalisation,
                       &q->non_finite, t.core);
    }();
    if (built_up_size_px > 0) {
      const cv::Mat index = engine::built_up_index_core(pair.pre, pair.valid, t, built_up_size_px, model.brightness_range);
      w.built_up = index >= cfg.sites.built_up_index_threshold;  // as rescore reads it back
      q->built_up = encode_chunk(chunk_layers[static_cast<std::size_t>(built_up_index_layer)], index,
                                 cfg.tiling.tile_size, cfg.output.deflate_level);
    }
    w.score = model.detector->score_with_layers(pair, w.detector_layers);
    w.valid = pair.valid;
    w.misregistration = engine::misregistration_core(model.registration, t.core, pair.valid(t.core_in_outer()));
    q->misregistration = encode_chunk(chunk_layers[static_cast<std::size_t>(misregistration_index)], w.misregistration,
                                      cfg.tiling.tile_size, cfg.output.deflate_level);
    if (want_ql) {
      const cv::Rect core = t.core_in_outer();
      const cv::Mat valid_core = pair.valid(core);
      q->rect = quicklook.canvas_rect(t.core);
      std::vector<cv::Mat> pre_core, post_core;
      for (auto& b : pair.pre) pre_core.push_back(b(core));
      for (auto& b : pair.post) post_core.push_back(b(core));
      q->pre = quicklook.render_rgb(pre_core, valid_core, model.pre_stretch, q->rect);
      q->post = quicklook.render_rgb(post_core, valid_core, model.post_stretch, q->rect);
      q->score = quicklook.render_score(w.score(core), valid_core, q->rect);
    }
    w.extra = std::move(q);
  };
  // Serial, in tile order: one writer.
  stages.store = [&](engine::TileWork& w) {
    auto* extra = static_cast<RunTileExtra*>(w.extra.get());
    if (ranked) {
      // Over ranks the chunks wait for their batch's collective write rounds.
      std::vector<EncodedChunk> chunks = std::move(w.chunks);
      chunks.push_back(std::move(extra->misregistration));
      if (built_up_index_layer >= 0) chunks.push_back(std::move(extra->built_up));
      ranked->keep(w.tile, std::move(chunks));
    } else {
      try {
        for (std::size_t l = 0; l < w.chunks.size(); ++l) writer->write_chunk(static_cast<int>(l), w.tile, w.chunks[l]);
        writer->write_chunk(misregistration_index, w.tile, extra->misregistration);
        if (built_up_index_layer >= 0) writer->write_chunk(built_up_index_layer, w.tile, extra->built_up);
      } catch (const Error& e) {
        throw e.with_context("write", {}, w.tile.index);
      }
    }
    accumulator.add(w.partials);
    sites.add(std::move(w.runs), std::move(w.sites));
    summary.valid_pixels += w.valid_count;
    summary.changed_pixels += w.changed_count;
    const auto* q = static_cast<const RunTileExtra*>(w.extra.get());
    non_finite.pre += q->non_finite.pre;
    non_finite.post += q->non_finite.post;
    if (want_ql) {
      quicklook.paste(0, q->rect, q->pre);
      quicklook.paste(1, q->rect, q->post);
      quicklook.paste(2, q->rect, q->score);
    }
    ++written;
    // The heap fragments as tiles go (every thread's malloc arena keeps the high-water mark of
    // the buffers it served, pinned by long-lived small blocks): the resident memory crept up
    // with the scene (466 MB at 16384^2 against 336 at 4096^2). Its free pages go back to the
    // system when the resident memory passes the peak of the stages before; not at a fixed
    // rate: the next tiles fault the released pages in again (every 8 Mpx cost ~3% of a run).
    px_since_check += static_cast<std::int64_t>(w.tile.core.width) * w.tile.core.height;
    if (px_since_check >= kCheckMemoryEveryPx) {
      px_since_check = 0;
      if (resident_memory().now_mb > tiles_memory_mb) {
        release_free_heap();
        ++heap_releases;
      }
    }
    if (progress) progress("score", written, n_tiles);
  };
  // On an exception the pipeline stops, and the writer's destructor removes the temporary file.
  if (ranked) {
    ranked->run_tiles(arena, tiles, tokens, ctx, stages, throw_if_cancelled, order);
    writer = ranked->finish();  // rank 0: the file, for the tables and attributes below
  } else {
    engine::run_tile_pipeline(arena, tiles, tokens, ctx, stages, throw_if_cancelled, order);
  }
  summary.times.score = seconds_since(t_score);
  // The scenes are read: their readers and decoded blocks (two thirds of the memory in use)
  // make room for the tables.
  log_blocks("the tiles");
  readers.clear();
  pre_blocks.reset();
  post_blocks.reset();
  release_free_heap();
  log_memory("the tiles");
  spdlog::debug("free heap released to the system {} times during the tiles", heap_releases);
  {
    const auto sec = [](std::int64_t ns) { return static_cast<double>(ns) * 1e-9; };
    const double read = sec(read_ns.load());
    summary.times.parts.insert(
        summary.times.parts.end(),
        {{"tiles: read, register, normalise (thread-s)", read},
         {"tiles: detect, misregistration, quicklook (thread-s)",
          sec(stage_times.compute.load()) - read},
         {"tiles: mask, features, sites, encode (thread-s)", sec(stage_times.classify.load())},
         {"tiles: write, one thread in tile order", sec(stage_times.store.load())}});
  }
  // Over ranks: every rank's counts and per-feature sums, and rank 0's quicklook gets the pieces.
  engine::sum_over_ranks(comm, {&summary.valid_pixels, &summary.changed_pixels, &non_finite.pre, &non_finite.post});
  engine::merge_over_ranks(comm, accumulator, index);
  engine::merge_over_ranks(comm, sites);
  if (want_ql) engine::merge_over_ranks(comm, quicklook);

  for (const auto& [count, path] : {std::pair{non_finite.pre, req.pre}, std::pair{non_finite.post, req.post}}) {
    if (count == 0) continue;
    const std::string w = fmt::format("{}: {} non-finite pixels (NaN/Inf) treated as invalid", path, count);
    spdlog::warn("{}", w);
    summary.warnings.push_back(w);
  }
  comm.run_agreed([] { throw_if_cancelled("write"); });
  // ---- finalize: per-feature classes, tables, provenance, atomic commit ----------------
  const auto t_fin = Clock::now();
  const auto results = accumulator.finalize(footprints.features, cfg.damage);
  accumulator = FootprintAccumulator(0);  // its sums are in `results` now
  const engine::ClassCounts counts = engine::count_classes(footprints.features, results);
  summary.scheme = cfg.damage.scheme;
  summary.grade_counts = counts.grades;
  summary.kind_counts = counts.kinds;
  summary.outside = counts.outside;
  summary.no_data = counts.no_data;
  summary.class_counts = counts.classes;
  summary.features = counts.features;
  if (!footprints.features.empty() && summary.outside == summary.features) {
    const std::string w = fmt::format("0 of {} features intersect the analysis grid", summary.features);
    spdlog::warn("{}", w);
    summary.warnings.push_back(w);
  }
  const Registration& reg = model.registration;
  std::exception_ptr write_failed;
  if (writer) try {  // over ranks: rank 0 only
      // The damage sites (joined across tiles, then outlined in parallel) are made by the arena's
      // threads while this thread writes the footprint table: HDF5 is written by one thread, and
      // the two took ~45 ms each at 8192^2, one after the other.
      std::vector<DamageSite> found;
      std::vector<std::string> outlines;
      // Release/acquire pairs: the hand-offs to and from the task, visible to TSan (TBB's are not).
      // Declared before the join below, so that they outlive the task when the job ends early.
      std::atomic<bool> sites_handed{false}, sites_made{false};
      tbb::task_group site_making;
      const JoinInArena join_site_making(arena, site_making);
      if (cfg.sites.enabled) {
        spdlog::debug(
            "damage sites: {} finished in their tile, {} runs of changed pixels kept to the end",
            sites.finished_count(), sites.run_count());
        sites_handed.store(true, std::memory_order_release);
        arena.execute([&] {
          site_making.run([&] {
            (void)sites_handed.load(std::memory_order_acquire);
            found = std::move(sites).finalize(engine::site_min_pixels(cfg.sites, grid),
                                              engine::site_min_built_up_fraction(cfg.sites));
            outlines = engine::site_outlines(found, grid, engine::arena_for_each(arena));
            sites_made.store(true, std::memory_order_release);
          });
        });
      }
      writer->write_table(engine::footprint_table(footprints.features, results, grid, cfg.damage));
      if (cfg.sites.enabled) {
        arena.execute([&] { site_making.wait(); });  // rethrows a failure
        if (!sites_made.load(std::memory_order_acquire)) {
          throw Error(ErrorKind::internal, "damage sites not made", "write");
        }
        writer->write_table(
            engine::site_table(found, std::move(outlines), grid, cfg.sites.built_up_only));
        summary.sites = static_cast<std::int64_t>(found.size());
      }
    engine::write_alignment(*writer, reg, grid);
    if (!req.alignment.empty()) writer->set_attribute("/alignment", "reused_from", req.alignment);
    writer->set_attribute("/", "Conventions", std::string("CF-1.8"));
    writer->set_attribute("/", "title", std::string("aftermath change and damage layers"));
    writer->set_attribute("/", "history", fmt::format("{} aftermath {} run", utc_timestamp(), AFTERMATH_VERSION));
    writer->set_attribute("/", "aftermath_version", std::string(AFTERMATH_VERSION));
    writer->set_attribute("/", "schema_version", static_cast<std::int64_t>(1));
    const std::string config_yaml = to_yaml(cfg);
    writer->set_attribute("/", "config", config_yaml);
    writer->set_attribute("/", "config_sha256", sha256_text(config_yaml));
    writer->set_attribute("/", "config_path", req.config_path);
    writer->set_attribute("/", "detector", model.detector->name());
    writer->set_attribute("/", "threshold", model.threshold);
    if (built_up_size_px > 0) writer->set_attribute("/", "built_up_brightness_range", model.brightness_range);
    const Normalisation& norm = model.normalisation;
    writer->set_attribute("/", "normalisation_method", norm.method);
    if (norm.method == "robust-linear" || norm.method == "irmad") {
      writer->set_attribute("/", "normalisation_gain", norm.linear.gain);
      writer->set_attribute("/", "normalisation_offset", norm.linear.offset);
    }
    if (norm.method == "irmad") {
      writer->set_attribute("/", "normalisation_irmad_iterations", static_cast<std::int64_t>(norm.irmad.iterations));
      writer->set_attribute("/", "normalisation_irmad_converged", static_cast<std::int64_t>(norm.irmad.converged));
      writer->set_attribute("/", "normalisation_irmad_canonical_correlations", norm.irmad.rho);
      writer->set_attribute("/", "normalisation_invariant_pixels", norm.invariant_pixels);
    }
    for (const auto& [key, values] : model.detector->fit_report()) {
      writer->set_attribute("/", "detector_" + key, values);
    }
    writer->set_attribute("/", "created", utc_timestamp());
    writer->set_attribute("/", "input_pre", req.pre);
    arena.execute([&] { hashing.wait(); });  // rethrows a failed read
    if (hashed.load(std::memory_order_acquire) != 2) throw Error(ErrorKind::internal, "input hashing incomplete", "write");
    writer->set_attribute("/", "input_pre_sha256", pre_sha256);
    writer->set_attribute("/", "input_post", req.post);
    writer->set_attribute("/", "input_post_sha256", post_sha256);
    // Stacks: the further scenes, one per line, and their SHA-256 in the same order.
    for (const auto& [key, paths] : {std::pair{std::string("input_more_pre"), &req.more_pre},
                                     std::pair{std::string("input_more_post"), &req.more_post}}) {
      if (paths->empty()) continue;
      std::string names, sums;
      for (const auto& p : *paths) {
        names += (names.empty() ? "" : "\n") + p;
        sums += (sums.empty() ? "" : "\n") + sha256_file(p);
      }
      writer->set_attribute("/", key, names);
      writer->set_attribute("/", key + "_sha256", sums);
    }
    if (!req.footprints.empty()) {
      writer->set_attribute("/", "input_footprints", req.footprints);
      writer->set_attribute("/", "input_footprints_sha256", sha256_file(req.footprints));
    }
    if (want_ql) quicklook.write(req.quicklook, footprints.features, results);
    log_memory("the tables and attributes");
    const auto t_commit = Clock::now();
    summary.times.parts.emplace_back("finalize: classes, tables, attributes", seconds_since(t_fin));
    writer->commit();
    summary.times.parts.emplace_back("finalize: commit (flush, fsync, rename)",
                                     seconds_since(t_commit));
  } catch (const Error& e) {
    write_failed = std::make_exception_ptr(e.with_context("write"));
  } catch (...) {
    write_failed = std::current_exception();
  }
  comm.agree(write_failed);
  summary.output = req.out;
  summary.alignment_model = reg.model;
  summary.alignment_method = reg.method;
  summary.shift_x = reg.shift.x;
  summary.shift_y = reg.shift.y;
  summary.rmse_before = reg.rmse_before;
  summary.rmse_after = reg.rmse_after;
  summary.ties_kept = reg.kept;
  summary.ties_dropped = reg.dropped;
  summary.threshold = model.threshold;
  summary.times.finalize = seconds_since(t_fin);
  summary.times.total = seconds_since(t_start);
  return summary;
}

}  // namespace aftermath
