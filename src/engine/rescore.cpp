// rescore_job: the stored change_score -> the classify step of run_job (same code, same tile
// pipeline) with new thresholds -> a new output, committed atomically.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <tbb/global_control.h>
#include <tbb/info.h>
#include <tbb/task_arena.h>

#include "aftermath/align/registration.hpp"
#include "aftermath/core/error.hpp"
#include "aftermath/engine/analyst.hpp"
#include "aftermath/io/hdf5_reader.hpp"
#include "aftermath/io/hdf5_writer.hpp"
#include "aftermath/io/output_read.hpp"
#include "aftermath/io/scene.hpp"
#include "aftermath/score/threshold.hpp"
#include "alignment.hpp"
#include "classify.hpp"

namespace aftermath {

namespace {

using Clock = std::chrono::steady_clock;

// A stored chunk of change_score, decoded at most once by whichever tile needs it first.
struct LazyChunk {
  EncodedChunk raw;
  std::once_flag once;
  cv::Mat decoded;
};

// The stored change_score codes (CV_16U); older outputs held float scores and cannot be rescored.
cv::Mat stored_codes(const cv::Mat& layer, const std::string& path) {
  if (layer.type() != CV_16U) {
    throw Error(ErrorKind::input, path + ": change_score is not stored as uint16 codes (an output of an older "
                                         "aftermath): run it again to rescore");
  }
  return layer;
}

struct RescoreTile {
  std::vector<std::pair<Window, std::shared_ptr<LazyChunk>>> chunks;  // chunk window on the grid
  std::vector<EncodedChunk> carried;  // per carried layer: the stored chunk of the tile's core
};

/// A layer that does not depend on thresholds (misregistration, built_up): its chunks are
/// carried over, re-encoded only when the deflate level differs.
struct CarriedLayer {
  int index = -1;  // in the output's layers
  std::unique_ptr<Hdf5ChunkReader> reader;
};

}  // namespace

RescoreSummary rescore_job(const RescoreRequest& req, const ProgressFn& progress) {
  const auto t0 = Clock::now();
  RescoreSummary summary;
  init_gdal();
  const std::string out = req.out.empty() ? req.input : req.out;
  {
    std::error_code ec;
    const bool same = std::filesystem::equivalent(req.input, out, ec);
    if (!req.out.empty() && !same && std::filesystem::exists(out) && !req.overwrite) {
      throw Error(ErrorKind::output, out + ": exists (use --overwrite to replace it)");
    }
  }
  Hdf5Reader reader(req.input);
  const Grid grid = reader.grid();
  const auto stored_yaml = reader.string_attribute("/", "config");
  if (!stored_yaml) throw Error(ErrorKind::input, req.input + ": no config attribute (not an aftermath output?)");
  if (!reader.has("/change_score")) throw Error(ErrorKind::input, req.input + ": no /change_score layer");
  const JobConfig stored = parse_config(*stored_yaml, req.input + " (stored config)");
  JobConfig wanted = req.config ? *req.config : stored;
  apply_overrides(wanted, req.overrides);

  // What rescore can change: threshold.*, damage.*, sites.* (but the building index's element
  // size), output.*, tiles in flight. The rest made the scores, geometry and index, which are stored.
  JobConfig cfg = stored;
  cfg.threshold = wanted.threshold;
  cfg.damage = wanted.damage;
  cfg.sites = wanted.sites;
  cfg.sites.built_up_max_size_m = stored.sites.built_up_max_size_m;
  cfg.output = wanted.output;
  cfg.tiling.tiles_in_flight = wanted.tiling.tiles_in_flight;
  // An explicit halo grows with a wider opening (as the config's validation asks); 0 stays 0.
  if (stored.tiling.halo > 0) {
    cfg.tiling.halo =
        std::max(stored.tiling.halo, detect_radius(stored.detect) + 2 * cfg.threshold.open_radius);
  }
  {
    std::vector<std::string> ignored;
    if (!(wanted.grid == stored.grid)) ignored.push_back("grid");
    if (!(wanted.input == stored.input)) ignored.push_back("input");
    if (!(wanted.align == stored.align)) ignored.push_back("align");
    if (!(wanted.detect == stored.detect)) ignored.push_back("detect");
    if (!(wanted.radiometry == stored.radiometry)) ignored.push_back("radiometry");
    if (!(wanted.features == stored.features)) ignored.push_back("features");
    if (wanted.sites.built_up_max_size_m != stored.sites.built_up_max_size_m) ignored.push_back("sites.built_up_max_size_m");
    if (wanted.tiling.tile_size != stored.tiling.tile_size || wanted.tiling.halo != stored.tiling.halo) ignored.push_back("tiling");
    if (!ignored.empty()) {
      std::string list;
      for (const auto& s : ignored) list += (list.empty() ? "" : ", ") + s;
      const std::string w = "rescore keeps the stored scores: the config's " + list +
                            " section(s) differ from the run's and are ignored (run again to apply them)";
      spdlog::warn("{}", w);
      summary.warnings.push_back(w);
    }
  }
  validate(cfg);

  // The score threshold: unchanged threshold section -> the run's resolved threshold.
  const auto stored_threshold = reader.number_attribute("/", "threshold");
  double threshold = 0.5;
  if (cfg.threshold.method == stored.threshold.method && cfg.threshold.value == stored.threshold.value &&
      stored_threshold) {
    threshold = *stored_threshold;
    summary.threshold_reused = true;
  } else if (cfg.threshold.method == "fixed") {
    threshold = cfg.threshold.value;
  } else {
    // Otsu over the stored scores of the run's sample windows (the 128 px centres of the
    // tie-point windows).
    ScoreHistogram hist;
    for (const Window& w : tie_point_windows(grid.width, grid.height, stored.align)) {
      const int sw = std::min(w.width, 128), sh = std::min(w.height, 128);
      const Window centre = Window{w.x + (w.width - sw) / 2, w.y + (w.height - sh) / 2, sw, sh}.intersect(
          Window{0, 0, grid.width, grid.height});
      if (centre.empty()) continue;
      cv::Mat valid;
      const cv::Mat s = decode_scores(stored_codes(reader.layer("change_score", centre), req.input), 0.0f, &valid);
      hist.add(s, valid);
    }
    threshold = resolve_threshold(cfg.threshold, hist);
  }

  // Footprints from the stored geometry.
  std::vector<Footprint> features = read_output_footprints(reader, grid);
  // The scores are stored: the mask's opening is all a tile reads around itself.
  const int halo = cfg.tiling.halo > 0 ? cfg.tiling.halo : 2 * cfg.threshold.open_radius;
  const TileGrid tiles(grid.width, grid.height, cfg.tiling.tile_size, halo);
  const FootprintIndex index(features, tiles);
  FootprintAccumulator accumulator(features.size(), index);
  SiteAccumulator sites;
  std::vector<LayerSpec> layers = engine::output_layers(cfg);
  std::vector<CarriedLayer> carried;
  int misreg_slot = -1, built_up_slot = -1;  // positions in `carried`
  for (const LayerSpec& spec : {engine::misregistration_layer(), engine::built_up_layer()}) {
    if (!reader.has("/" + spec.name)) continue;
    (spec.name == "built_up_index" ? built_up_slot : misreg_slot) = static_cast<int>(carried.size());
    carried.push_back({static_cast<int>(layers.size()), std::make_unique<Hdf5ChunkReader>(req.input, spec.name)});
    layers.push_back(spec);
  }
  const bool want_built_up = cfg.sites.enabled && cfg.sites.built_up_only;
  if (want_built_up && built_up_slot < 0) {
    throw Error(ErrorKind::usage, req.input + ": sites.built_up_only needs the built_up_index layer, which this "
                                              "output has not: run it with sites.built_up_only: true");
  }
  Hdf5ChunkReader chunks(req.input, "change_score");
  if (chunks.chunk_size() != cfg.tiling.tile_size) {
    throw Error(ErrorKind::input, req.input + ": change_score chunks are not the stored tile size");
  }
  if (layers[0].type != LayerType::uint16 || chunks.element_size() != 2) {
    throw Error(ErrorKind::input, req.input + ": change_score is not stored as uint16 codes (an output of an older "
                                              "aftermath): run it again to rescore");
  }
  const int score_level = cfg.output.score_deflate_level;
  const bool reuse_score_chunks = chunks.filtered() == (score_level > 0) && chunks.deflate_level() == score_level;

  const double t_setup = std::chrono::duration<double>(Clock::now() - t0).count();
  const int threads = req.threads > 0 ? req.threads : tbb::info::default_concurrency();
  tbb::global_control parallelism(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(threads));
  tbb::task_arena arena(threads);
  Hdf5Writer writer(out, grid, cfg.tiling.tile_size, layers, cfg.output.deflate_level);

  // Serial load: the raw chunks under the tile's outer window (read once, kept while a tile row
  // above or below may still need them).
  std::map<int, std::shared_ptr<LazyChunk>> cache;  // by tile index
  const int ts = cfg.tiling.tile_size;
  // Per-feature figures that do not depend on thresholds come from the stored table (outputs of
  // this version have them): the score quantiles (exact as codes) and the mean misregistration.
  std::optional<std::vector<ScoreQuantiles>> known_quantiles;
  std::vector<double> known_misregistration;
  if (!features.empty() && reader.has("/footprints/median_score") && reader.has("/footprints/p90_score")) {
    const auto median = reader.column_double("footprints/median_score");
    const auto p90 = reader.column_double("footprints/p90_score");
    if (median.size() == features.size() && p90.size() == features.size()) {
      known_quantiles.emplace(features.size());
      const auto code = [](double score) {
        return static_cast<std::uint16_t>(std::clamp<long long>(std::llround(score * 65536.0), 0, kScoreCodeMax));
      };
      for (std::size_t i = 0; i < features.size(); ++i) (*known_quantiles)[i] = {code(median[i]), code(p90[i])};
    }
  }
  if (!features.empty() && reader.has("/footprints/misregistration")) {
    known_misregistration = reader.column_double("footprints/misregistration");
    if (known_misregistration.size() != features.size()) known_misregistration.clear();
  }
  engine::ClassifyContext ctx{&cfg, threshold, &layers, &features, &index};
  ctx.collect_codes = !known_quantiles;
  ctx.site_min_pixels = engine::site_min_pixels(cfg.sites, grid);
  engine::PipelineStages stages;
  engine::TileStageTimes stage_times;
  stages.times = &stage_times;
  // The load stage reads the input file and the store stage writes the output: TBB may run the
  // two serial stages at the same time on two threads, and the HDF5 library of an MPI build
  // (Debian's libhdf5-openmpi) is not thread-safe (the serial one is). Their HDF5 calls take
  // turns.
  std::mutex hdf5_calls;
  stages.load = [&](engine::TileWork& w) {
    const Tile& t = w.tile;
    auto rt = std::make_shared<RescoreTile>();
    const std::lock_guard<std::mutex> hdf5(hdf5_calls);
    const int c0 = t.outer.x / ts, c1 = (t.outer.x + t.outer.width - 1) / ts;
    const int r0 = t.outer.y / ts, r1 = (t.outer.y + t.outer.height - 1) / ts;
    for (int r = r0; r <= r1; ++r) {
      for (int c = c0; c <= c1; ++c) {
        const int idx = r * tiles.cols() + c;
        auto& slot = cache[idx];
        if (!slot) {
          slot = std::make_shared<LazyChunk>();
          slot->raw = chunks.read(c * ts, r * ts);
        }
        rt->chunks.emplace_back(tiles.tile(idx).core, slot);
        if (idx == t.index && reuse_score_chunks) w.score_chunk = slot->raw;
      }
    }
    for (const auto& c : carried) rt->carried.push_back(c.reader->read(t.core.x, t.core.y));
    // Chunks of rows above r0 are not needed by later tiles.
    while (!cache.empty() && cache.begin()->first / tiles.cols() < r0) cache.erase(cache.begin());
    w.extra = std::move(rt);
  };
  // Parallel: the outer window's scores from the decoded chunks; valid = not the fill value.
  stages.compute = [&](engine::TileWork& w) {
    const Tile& t = w.tile;
    const auto* rt = static_cast<const RescoreTile*>(w.extra.get());
    w.score.create(t.outer.height, t.outer.width, CV_16U);  // codes: classify reads validity from them
    for (const auto& entry : rt->chunks) {
      // Named, not a structured binding: clang 14 (the fuzz build) cannot capture those.
      const Window& cw = entry.first;
      const auto& lc = entry.second;
      std::call_once(lc->once, [&] {
        // An unfiltered chunk is the matrix itself: a view on the bytes read (kept by the chunk).
        const std::size_t raw_size = std::size_t(ts) * std::size_t(ts) * sizeof(std::uint16_t);
        lc->decoded = !chunks.filtered() && lc->raw.bytes.size() == raw_size
                          ? cv::Mat(ts, ts, CV_16U, lc->raw.bytes.data())
                          : decode_chunk(layers[0], lc->raw, ts, chunks.filtered());
      });
      const Window part = cw.intersect(t.outer);
      lc->decoded(cv::Rect(part.x - cw.x, part.y - cw.y, part.width, part.height))
          .copyTo(w.score(cv::Rect(part.x - t.outer.x, part.y - t.outer.y, part.width, part.height)));
    }
    const cv::Rect core_rect(0, 0, t.core.width, t.core.height);
    const auto decoded = [&](int slot) {
      const CarriedLayer& c = carried[static_cast<std::size_t>(slot)];
      return decode_chunk(layers[static_cast<std::size_t>(c.index)], rt->carried[static_cast<std::size_t>(slot)], ts,
                          c.reader->filtered())(core_rect)
          .clone();
    };
    // The per-feature mean misregistration and the sites' built-up ground read the stored
    // layers, as the run computed them.
    if (misreg_slot >= 0 && known_misregistration.empty() && !index.in_tile(t.index).empty()) {
      w.misregistration = decoded(misreg_slot);
    }
    if (built_up_slot >= 0 && want_built_up) {
      w.built_up = decoded(built_up_slot) >= cfg.sites.built_up_index_threshold;  // fill -1: never
    }
    auto out = std::make_shared<std::vector<EncodedChunk>>();
    for (std::size_t k = 0; k < carried.size(); ++k) {
      const CarriedLayer& c = carried[k];
      const bool same_filters = c.reader->filtered() == (cfg.output.deflate_level > 0) &&
                                c.reader->deflate_level() == cfg.output.deflate_level;
      out->push_back(same_filters ? rt->carried[k]
                                  : encode_chunk(layers[static_cast<std::size_t>(c.index)],
                                                 decoded(static_cast<int>(k)), ts, cfg.output.deflate_level));
    }
    w.extra = std::move(out);
  };
  int written = 0;
  stages.store = [&](engine::TileWork& w) {
    try {
      const std::lock_guard<std::mutex> hdf5(hdf5_calls);
      for (std::size_t l = 0; l < w.chunks.size(); ++l) writer.write_chunk(static_cast<int>(l), w.tile, w.chunks[l]);
      const auto& out = *static_cast<const std::vector<EncodedChunk>*>(w.extra.get());
      for (std::size_t k = 0; k < carried.size(); ++k) writer.write_chunk(carried[k].index, w.tile, out[k]);
    } catch (const Error& e) {
      throw e.with_context("write", {}, w.tile.index);
    }
    accumulator.add(w.partials);
    sites.add(std::move(w.runs), std::move(w.sites));
    summary.valid_pixels += w.valid_count;
    summary.changed_pixels += w.changed_count;
    ++written;
    if (progress) progress("rescore", written, tiles.count());
  };
  const int tokens = cfg.tiling.tiles_in_flight > 0 ? cfg.tiling.tiles_in_flight : 2 * threads;
  engine::run_tile_pipeline(arena, tiles, tokens, ctx, stages, [](const char* stage) {
    if (cancel_requested()) throw Error(ErrorKind::internal, "interrupted: the job was cancelled (signal)", stage);
  });
  cache.clear();
  const double t_tiles = std::chrono::duration<double>(Clock::now() - t0).count();
  {
    const auto sec = [](const std::atomic<std::int64_t>& ns) {
      return static_cast<double>(ns.load()) * 1e-9;
    };
    spdlog::debug(
        "rescore tiles (thread-s): load {:.3f}, scores {:.3f}, classify {:.3f}, store {:.3f}",
        sec(stage_times.load), sec(stage_times.compute), sec(stage_times.classify),
        sec(stage_times.store));
  }

  // Classes, tables, attributes (the run's, with the new config), commit.
  auto results = accumulator.finalize(features, cfg.damage, known_quantiles ? &*known_quantiles : nullptr);
  for (std::size_t i = 0; i < known_misregistration.size(); ++i) results[i].misregistration = known_misregistration[i];
  accumulator = FootprintAccumulator(0);  // its sums are in `results` now
  const engine::ClassCounts counts = engine::count_classes(features, results);
  summary.scheme = cfg.damage.scheme;
  summary.grade_counts = counts.grades;
  summary.kind_counts = counts.kinds;
  try {
    if (reader.has("/footprints")) writer.write_table(engine::footprint_table(features, results, grid, cfg.damage));
    if (cfg.sites.enabled) {
      auto found = std::move(sites).finalize(engine::site_min_pixels(cfg.sites, grid),
                                             engine::site_min_built_up_fraction(cfg.sites));
      auto outlines = engine::site_outlines(found, grid, engine::arena_for_each(arena));
      writer.write_table(
          engine::site_table(found, std::move(outlines), grid, cfg.sites.built_up_only));
      summary.sites = static_cast<std::int64_t>(found.size());
    }
    if (reader.has("/alignment/tie_points")) {
      // Columns in the run's order (the dimension scale lists its datasets in attach order).
      Table tp = read_table(req.input, "alignment/tie_points", "tie_point");
      static const std::vector<std::string> order = {"x",    "y",           "window_size", "shift_x",
                                                     "shift_y", "peak",     "residual",    "kept",
                                                     "reason",  "psr",      "ssim_before", "ssim_after",
                                                     "cv_residual"};
      const auto rank = [&](const Column& c) {
        return std::find(order.begin(), order.end(), c.name) - order.begin();
      };
      std::stable_sort(tp.columns.begin(), tp.columns.end(),
                       [&](const Column& a, const Column& b) { return rank(a) < rank(b); });
      writer.write_table(tp);
    }
    if (reader.has("/alignment/lattice")) {
      Table lattice = read_table(req.input, "alignment/lattice", "node");
      static const std::vector<std::string> order = {"x", "y", "dx", "dy", "sigma"};
      const auto rank = [&](const Column& c) { return std::find(order.begin(), order.end(), c.name) - order.begin(); };
      std::stable_sort(lattice.columns.begin(), lattice.columns.end(),
                       [&](const Column& a, const Column& b) { return rank(a) < rank(b); });
      writer.write_table(lattice);
      for (const auto& [k, v] : read_attributes(req.input, "/alignment/lattice")) {
        writer.set_attribute("/alignment/lattice", k, v);
      }
    }
    if (reader.has("/alignment")) {
      for (const auto& [k, v] : read_attributes(req.input, "/alignment")) writer.set_attribute("/alignment", k, v);
    }
    auto root = read_attributes(req.input, "/");
    const std::string yaml = to_yaml(cfg);
    root["config"] = yaml;
    root["config_sha256"] = sha256_text(yaml);
    if (!req.config_path.empty()) root["config_path"] = req.config_path;
    root["threshold"] = threshold;
    const auto* hist = std::get_if<std::string>(&root["history"]);
    root["history"] = (hist && !hist->empty() ? *hist + "\n" : std::string()) +
                      fmt::format("{} aftermath {} rescore", utc_timestamp(), AFTERMATH_VERSION);
    root["created"] = utc_timestamp();
    for (const auto& [k, v] : root) writer.set_attribute("/", k, v);
    if (reader.has("/evaluation")) {
      const std::string w = "the stored /evaluation is dropped (it described the old classes)";
      spdlog::info("{}", w);
    }
    const double t_tables = std::chrono::duration<double>(Clock::now() - t0).count();
    writer.commit();
    spdlog::debug(
        "rescore: setup {:.3f} s, tiles {:.3f} s, classes and tables {:.3f} s, commit {:.3f} s",
        t_setup, t_tiles - t_setup, t_tables - t_tiles,
        std::chrono::duration<double>(Clock::now() - t0).count() - t_tables);
  } catch (const Error& e) {
    throw e.with_context("write");
  }
  summary.output = out;
  summary.threshold = threshold;
  summary.features = counts.features;
  summary.outside = counts.outside;
  summary.no_data = counts.no_data;
  summary.class_counts = counts.classes;
  summary.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return summary;
}

}  // namespace aftermath
