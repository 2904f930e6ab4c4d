#include "classify.hpp"

#include <atomic>

#include <ctime>

#include <fmt/format.h>
#include <tbb/parallel_pipeline.h>

#include "aftermath/core/error.hpp"
#include "aftermath/detect/detector.hpp"
#include "aftermath/io/output_read.hpp"
#include "aftermath/io/scene.hpp"
#include "aftermath/score/threshold.hpp"

namespace aftermath::engine {

std::vector<LayerSpec> output_layers(const JobConfig& cfg) {
  return {
      {"change_score", LayerType::uint16, double(kScoreCodeInvalid),
       fmt::format("change score of detector {} (0 no change, 1 certain change)", cfg.detect.method), "1", {}, {},
       kScoreCodeScale, cfg.output.score_deflate_level},
      {"damage_mask", LayerType::uint8, kMaskInvalid, "damage mask (score >= threshold, opened)", "", {0, 1, 255},
       "unchanged changed invalid"},
  };
}

std::vector<LayerSpec> detector_output_layers(const JobConfig& cfg) {
  std::vector<LayerSpec> out;
  for (const auto& l : detector_layers(cfg.detect)) {
    out.push_back({l.name, LayerType::float32, kDetectorLayerFill, l.long_name, l.units, {}, {}});
  }
  return out;
}

cv::Mat read_scores(const Hdf5Reader& reader, const Window& window) {
  const cv::Mat stored = reader.layer("change_score", window);
  return stored.type() == CV_16U ? decode_scores(stored, kScoreFill) : stored;
}

void classify_tile(const ClassifyContext& ctx, TileWork& w) {
  const JobConfig& cfg = *ctx.config;
  const auto& layers = *ctx.layers;
  const Tile& t = w.tile;
  // Everything downstream sees the stored codes, so a rescore (which only has the codes) makes
  // exactly the run's mask, sums and classes.
  const cv::Mat codes = w.score.type() == CV_16U ? w.score : encode_scores(w.score, w.valid);
  cv::Mat mask = damage_mask_from_codes(codes, ctx.threshold, cfg.threshold.open_radius);
  const cv::Rect core = t.core_in_outer();
  const cv::Mat codes_core = codes(core), mask_core = mask(core);
  const cv::Mat valid_core = mask_core != kMaskInvalid;
  w.valid_count = cv::countNonZero(valid_core);
  w.changed_count = cv::countNonZero(mask_core == kMaskChanged);
  w.chunks.clear();
  if (w.score_chunk) {
    w.chunks.push_back(std::move(*w.score_chunk));
    w.score_chunk.reset();
  } else {
    w.chunks.push_back(encode_chunk(layers[0], codes_core, cfg.tiling.tile_size, cfg.output.deflate_level));
  }
  w.chunks.push_back(encode_chunk(layers[1], mask_core, cfg.tiling.tile_size, cfg.output.deflate_level));
  if (layers.size() < 2 + w.detector_layers.size()) throw Error(ErrorKind::internal, "classify: more detector layers than outputs");
  for (std::size_t k = 0; k < w.detector_layers.size(); ++k) {
    cv::Mat layer_core = w.detector_layers[k](core).clone();
    layer_core.setTo(kDetectorLayerFill, valid_core == 0);
    w.chunks.push_back(encode_chunk(layers[2 + k], layer_core, cfg.tiling.tile_size, cfg.output.deflate_level));
  }
  w.detector_layers.clear();
  if (ctx.features && !ctx.features->empty()) {
    w.partials = accumulate_tile(*ctx.features, ctx.index->in_tile(t.index), t, codes_core,
                                 valid_core, mask_core);
  }
  w.score.release();
  w.valid.release();
}

std::vector<int> strip_order(const TileGrid& tiles, int strip_tiles) {
  std::vector<int> order;
  order.reserve(static_cast<std::size_t>(tiles.count()));
  const int step = std::max(1, strip_tiles);
  for (int c0 = 0; c0 < tiles.cols(); c0 += step) {
    for (int r = 0; r < tiles.rows(); ++r) {
      for (int c = c0; c < std::min(c0 + step, tiles.cols()); ++c) order.push_back(r * tiles.cols() + c);
    }
  }
  return order;
}

void run_tile_pipeline(tbb::task_arena& arena, const TileGrid& tiles, int tokens, const ClassifyContext& ctx,
                       const PipelineStages& stages, const std::function<void(const char*)>& check_cancel,
                       const std::vector<int>& order) {
  int next = 0;
  const int n = order.empty() ? tiles.count() : static_cast<int>(order.size());
  for (const int i : order) {
    if (i < 0 || i >= tiles.count()) throw Error(ErrorKind::internal, "tile pipeline: no tile " + std::to_string(i));
  }
  // The work items live here, not in the pipeline: when a stage throws, TBB drops the items in
  // flight without destroying them, so the pipeline passes only tile indices and this vector
  // frees whatever was in flight.
  std::vector<std::unique_ptr<TileWork>> works(static_cast<std::size_t>(n));
  // Stored tiles, counted with release/acquire: states in our code (where ThreadSanitizer sees it)
  // the happens-before that TBB's own, uninstrumented synchronisation gives. The same for every
  // hand-off inside the pipeline: from one serial-stage call to the next (`source_turn`,
  // `store_turn`) and along each item, source -> compute -> store (`item_stage`). They order
  // nothing TBB does not already order; they make it visible.
  std::atomic<int> stored{0}, source_turn{0}, store_turn{0};
  std::vector<std::atomic<int>> item_stage(static_cast<std::size_t>(n));
  arena.execute([&] {
    tbb::parallel_pipeline(
        static_cast<std::size_t>(std::max(1, tokens)),
        tbb::make_filter<void, int>(tbb::filter_mode::serial_in_order,
                                    [&](tbb::flow_control& fc) -> int {
                                      (void)source_turn.load(std::memory_order_acquire);
                                      if (check_cancel) check_cancel("score");
                                      if (next >= n) {
                                        fc.stop();
                                        return -1;
                                      }
                                      const int i = next++;
                                      auto& w = works[static_cast<std::size_t>(i)];
                                      w = std::make_unique<TileWork>();
                                      w->tile = tiles.tile(order.empty() ? i : order[static_cast<std::size_t>(i)]);
                                      if (stages.load) stages.load(*w);
                                      item_stage[static_cast<std::size_t>(i)].store(1, std::memory_order_release);
                                      source_turn.store(next, std::memory_order_release);
                                      return i;
                                    }) &
            tbb::make_filter<int, int>(
                tbb::filter_mode::parallel,
                [&](int i) {
                  (void)item_stage[static_cast<std::size_t>(i)].load(std::memory_order_acquire);
                  TileWork& w = *works[static_cast<std::size_t>(i)];
                  try {
                    if (stages.compute) stages.compute(w);
                    classify_tile(ctx, w);
                  } catch (const Error& e) {
                    throw e.with_context("score", {}, w.tile.index);
                  } catch (const cv::Exception& e) {
                    throw Error(ErrorKind::internal, std::string("OpenCV: ") + e.what(), "score", {}, w.tile.index);
                  }
                  item_stage[static_cast<std::size_t>(i)].store(2, std::memory_order_release);
                  return i;
                }) &
            tbb::make_filter<int, void>(tbb::filter_mode::serial_in_order, [&](int i) {
              (void)store_turn.load(std::memory_order_acquire);
              (void)item_stage[static_cast<std::size_t>(i)].load(std::memory_order_acquire);
              auto& w = works[static_cast<std::size_t>(i)];
              stages.store(*w);
              w.reset();
              store_turn.store(i + 1, std::memory_order_release);
              stored.fetch_add(1, std::memory_order_release);
            }));
  });
  if (stored.load(std::memory_order_acquire) != n) throw Error(ErrorKind::internal, "tile pipeline incomplete");
}

ClassCounts count_classes(const std::vector<FeatureResult>& results) {
  ClassCounts c;
  for (const auto& r : results) {
    if (r.status == FeatureStatus::outside) ++c.outside;
    else if (r.status == FeatureStatus::no_data) ++c.no_data;
    else if (static_cast<int>(r.damage) < 4) ++c.classes[static_cast<std::size_t>(r.damage)];
  }
  c.features = static_cast<std::int64_t>(results.size());
  return c;
}

void normalise_to_stored_geometry(std::vector<Footprint>& features, const Grid& grid) {
  for (auto& f : features) {
    if (f.wkt.empty()) continue;
    auto rings = rings_from_wkt(f.wkt, grid);
    if (rings.empty()) continue;
    f.rings = std::move(rings);
    finalize_geometry(f);
  }
}

Table footprint_table(const std::vector<Footprint>& features, const std::vector<FeatureResult>& results,
                      const Grid& grid) {

  Table t;
  t.group = "footprints";
  t.dimension = "feature";
  const std::size_t n = features.size();
  std::vector<std::int64_t> id(n), pixels(n);
  std::vector<std::string> source(n), wkt(n);
  std::vector<std::uint8_t> kind(n), status(n), damage(n), truth(n);
  std::vector<double> area(n), coverage(n), valid(n), mean(n), changed(n), confidence(n);
  const double metres = linear_units_in_metres(grid.crs_wkt);
  const double px_area_m2 = metres > 0 ? grid.pixel_area() * metres * metres : 0;
  bool any_truth = false;
  for (std::size_t i = 0; i < n; ++i) {
    const auto& f = features[i];
    const auto& r = results[i];
    id[i] = f.id;
    source[i] = f.source_id;
    wkt[i] = f.wkt;
    kind[i] = static_cast<std::uint8_t>(f.kind);
    pixels[i] = r.sums.inside;
    area[i] = px_area_m2 > 0 ? f.area_px * px_area_m2 : f.area_px;
    coverage[i] = r.coverage;
    valid[i] = r.valid_fraction;
    mean[i] = r.mean_score;
    changed[i] = r.changed_fraction;
    status[i] = static_cast<std::uint8_t>(r.status);
    damage[i] = static_cast<std::uint8_t>(r.damage);
    confidence[i] = r.confidence;
    truth[i] = static_cast<std::uint8_t>(f.truth);
    any_truth = any_truth || f.truth != DamageClass::unclassified;
  }
  const std::string class_values = "0 1 2 3 255";
  const std::string class_meanings = "no_damage minor_damage major_damage destroyed unclassified";
  t.columns.push_back({"id", id, "row of the feature in this table", "", {}});
  t.columns.push_back({"source_id", source, "id of the feature in the source file", "", {}});
  t.columns.push_back({"kind", kind, "feature kind", "", {{"flag_values", std::string("0 1 2")}, {"flag_meanings", std::string("building road other")}}});
  t.columns.push_back({"area", area, "feature area", px_area_m2 > 0 ? "m2" : "pixel2", {}});
  t.columns.push_back({"pixels", pixels, "analysis-grid pixels whose centre is inside the feature", "1", {}});
  t.columns.push_back({"coverage", coverage, "fraction of the feature on the analysis grid", "1", {}});
  t.columns.push_back({"valid_fraction", valid, "fraction of the feature's pixels valid in both scenes", "1", {}});
  t.columns.push_back({"mean_score", mean, "mean change score over valid pixels", "1", {}});
  t.columns.push_back({"changed_fraction", changed, "fraction of valid pixels in the damage mask", "1", {}});
  t.columns.push_back({"status", status, "scoring status", "", {{"flag_values", std::string("0 1 2")}, {"flag_meanings", std::string("scored no_data outside")}}});
  t.columns.push_back({"damage_class", damage, "damage class (xBD scale)", "", {{"flag_values", class_values}, {"flag_meanings", class_meanings}}});
  t.columns.push_back({"confidence", confidence, "confidence of the class", "1", {}});
  t.columns.push_back({"geometry_wkt", wkt,
                       "feature geometry as WKT in the grid's CRS (pixel units for a pixel grid)", "", {}});
  if (any_truth) {
    t.columns.push_back({"truth_class", truth, "damage class given by the source labels", "", {{"flag_values", class_values}, {"flag_meanings", class_meanings}}});
  }
  return t;
}

}  // namespace aftermath::engine
