#include "classify.hpp"

#include <fmt/compile.h>
#include <fmt/format.h>
#include <tbb/parallel_pipeline.h>

#include <atomic>
#include <chrono>
#include <ctime>

#include "aftermath/core/error.hpp"
#include "aftermath/detect/detector.hpp"
#include "aftermath/io/output_read.hpp"
#include "aftermath/io/scene.hpp"
#include "aftermath/score/built_up.hpp"
#include "aftermath/score/threshold.hpp"

namespace aftermath::engine {

std::vector<LayerSpec> output_layers(const JobConfig& cfg) {
  return {
      {"change_score",
       LayerType::uint16,
       double(kScoreCodeInvalid),
       fmt::format("change score of detector {} (0 no change, 1 certain change)",
                   cfg.detect.method),
       "1",
       {},
       {},
       kScoreCodeScale,
       cfg.output.score_deflate_level},
      {"damage_mask",
       LayerType::uint8,
       kMaskInvalid,
       "damage mask (score >= threshold, opened)",
       "",
       {0, 1, 255},
       "unchanged changed invalid",
       /*scale_factor=*/0,
       /*deflate_level=*/-1,  // output.deflate_level
       /*run_length=*/true},
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
    w.chunks.push_back(
        encode_chunk(layers[0], codes_core, cfg.tiling.tile_size, cfg.output.deflate_level));
  }
  w.chunks.push_back(
      encode_chunk(layers[1], mask_core, cfg.tiling.tile_size, cfg.output.deflate_level));
  if (layers.size() < 2 + w.detector_layers.size())
    throw Error(ErrorKind::internal, "classify: more detector layers than outputs");
  for (std::size_t k = 0; k < w.detector_layers.size(); ++k) {
    cv::Mat layer_core = w.detector_layers[k](core).clone();
    layer_core.setTo(kDetectorLayerFill, valid_core == 0);
    w.chunks.push_back(
        encode_chunk(layers[2 + k], layer_core, cfg.tiling.tile_size, cfg.output.deflate_level));
  }
  w.detector_layers.clear();
  if (ctx.features && !ctx.features->empty()) {
    w.partials = accumulate_tile(*ctx.features, ctx.index->in_tile(t.index), t,
                                 TileLayers{codes_core, valid_core, mask_core, w.misregistration, ctx.collect_codes});
    if (ctx.collect_codes) settle_single_tile_partials(w.partials, *ctx.index);
  }
  w.misregistration.release();
  if (cfg.sites.enabled) {
    // Components wholly inside the core are finished here; only the others' runs go on.
    w.runs = mask_runs(t.core, mask_core, codes_core, w.built_up);
    w.sites = take_inner_sites(w.runs, t.core, ctx.site_min_pixels,
                               site_min_built_up_fraction(cfg.sites));
    for (DamageSite& s : w.sites) pack_site_outline(s);
  }
  w.built_up.release();
  w.score.release();
  w.valid.release();
}

std::vector<int> strip_order(const TileGrid& tiles, int strip_tiles) {
  std::vector<int> order;
  order.reserve(static_cast<std::size_t>(tiles.count()));
  const int step = std::max(1, strip_tiles);
  for (int c0 = 0, strip = 0; c0 < tiles.cols(); c0 += step, ++strip) {
    for (int k = 0; k < tiles.rows(); ++k) {
      const int r = strip % 2 == 0 ? k : tiles.rows() - 1 - k;
      for (int c = c0; c < std::min(c0 + step, tiles.cols()); ++c)
        order.push_back(r * tiles.cols() + c);
    }
  }
  return order;
}

void run_tile_pipeline(tbb::task_arena& arena, const TileGrid& tiles, int tokens,
                       const ClassifyContext& ctx, const PipelineStages& stages,
                       const std::function<void(const char*)>& check_cancel,
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
        tbb::make_filter<void,
                         int>(tbb::filter_mode::serial_in_order, [&](tbb::flow_control& fc) -> int {
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
          if (stages.load) {
            const StageClock clock(stages.times ? &stages.times->load : nullptr);
            stages.load(*w);
          }
          item_stage[static_cast<std::size_t>(i)].store(1, std::memory_order_release);
          source_turn.store(next, std::memory_order_release);
          return i;
        }) & tbb::make_filter<int, int>(tbb::filter_mode::parallel, [&](int i) {
          (void)item_stage[static_cast<std::size_t>(i)].load(std::memory_order_acquire);
          TileWork& w = *works[static_cast<std::size_t>(i)];
          try {
            if (stages.compute) {
              const StageClock clock(stages.times ? &stages.times->compute : nullptr);
              stages.compute(w);
            }
            const StageClock clock(stages.times ? &stages.times->classify : nullptr);
            classify_tile(ctx, w);
          } catch (const Error& e) {
            throw e.with_context("score", {}, w.tile.index);
          } catch (const cv::Exception& e) {
            throw Error(ErrorKind::internal, std::string("OpenCV: ") + e.what(), "score", {},
                        w.tile.index);
          }
          item_stage[static_cast<std::size_t>(i)].store(2, std::memory_order_release);
          return i;
        }) & tbb::make_filter<int, void>(tbb::filter_mode::serial_in_order, [&](int i) {
          (void)store_turn.load(std::memory_order_acquire);
          (void)item_stage[static_cast<std::size_t>(i)].load(std::memory_order_acquire);
          auto& w = works[static_cast<std::size_t>(i)];
          {
            const StageClock clock(stages.times ? &stages.times->store : nullptr);
            stages.store(*w);
          }
          w.reset();
          store_turn.store(i + 1, std::memory_order_release);
          stored.fetch_add(1, std::memory_order_release);
        }));
  });
  if (stored.load(std::memory_order_acquire) != n)
    throw Error(ErrorKind::internal, "tile pipeline incomplete");
}

ClassCounts count_classes(const std::vector<Footprint>& features, const std::vector<FeatureResult>& results) {
  ClassCounts c;
  for (const auto& f : features) {
    if (static_cast<std::size_t>(f.kind) < c.kinds.size()) ++c.kinds[static_cast<std::size_t>(f.kind)];
  }
  for (const auto& r : results) {
    if (r.status == FeatureStatus::scored && r.grade[0] < c.grades.size()) ++c.grades[r.grade[0]];
    if (r.status == FeatureStatus::outside)
      ++c.outside;
    else if (r.status == FeatureStatus::no_data)
      ++c.no_data;
    else if (static_cast<int>(r.damage) < 4)
      ++c.classes[static_cast<std::size_t>(r.damage)];
  }
  c.features = static_cast<std::int64_t>(results.size());
  return c;
}

Table footprint_table(std::vector<Footprint>& features,
                      const std::vector<FeatureResult>& results, const Grid& grid,
                      const DamageConfig& damage) {
  Table t;
  t.group = "footprints";
  t.dimension = "feature";
  const std::size_t n = features.size();
  const DamageScheme scheme = damage_scheme_from_string(damage.scheme).value_or(DamageScheme::xbd);
  std::vector<std::int64_t> id(n), pixels(n), segment(n);
  std::vector<std::string> source(n), wkt(n), centerline(n);
  std::vector<std::uint8_t> kind(n), geometry(n), status(n), damage_class(n), truth(n);
  std::array<std::vector<std::uint8_t>, kOperatingPoints> grade;
  for (auto& g : grade) g.resize(n);
  std::vector<double> area(n), length(n), coverage(n), valid(n), mean(n), median(n), p90(n),
      changed(n), length_changed(n), misregistration(n), confidence(n);
  const double metres = pixel_size_in_metres(grid);
  const double px_area_m2 = metres * metres;
  bool any_truth = false, any_line = false, any_misregistration = false;
  for (std::size_t i = 0; i < n; ++i) {
    auto& f = features[i];
    const auto& r = results[i];
    id[i] = f.id;
    source[i] = std::move(f.source_id);
    wkt[i] = std::move(f.wkt);
    centerline[i] = std::move(f.centerline_wkt);
    segment[i] = f.segment;
    kind[i] = static_cast<std::uint8_t>(f.kind);
    geometry[i] = static_cast<std::uint8_t>(f.source_geometry);
    pixels[i] = r.sums.inside;
    area[i] = px_area_m2 > 0 ? f.area_px * px_area_m2 : f.area_px;
    length[i] = centerline_length_px(f) * (metres > 0 ? metres : 1.0);
    coverage[i] = r.coverage;
    valid[i] = r.valid_fraction;
    mean[i] = r.mean_score;
    median[i] = r.median_score;
    p90[i] = r.p90_score;
    changed[i] = r.changed_fraction;
    length_changed[i] = r.length_changed_fraction;
    misregistration[i] = r.misregistration;
    status[i] = static_cast<std::uint8_t>(r.status);
    damage_class[i] = static_cast<std::uint8_t>(r.damage);
    for (int k = 0; k < kOperatingPoints; ++k)
      grade[static_cast<std::size_t>(k)][i] = r.grade[static_cast<std::size_t>(k)];
    confidence[i] = r.confidence;
    truth[i] = static_cast<std::uint8_t>(f.truth);
    any_truth = any_truth || f.truth != DamageClass::unclassified;
    any_line = any_line || !f.centerline.empty();
    any_misregistration = any_misregistration || r.misregistration >= 0;
  }
  const std::string class_values = "0 1 2 3 255";
  const std::string class_meanings = "no_damage minor_damage major_damage destroyed unclassified";
  std::string grade_values;
  for (int k = 0; k < class_count(scheme); ++k) grade_values += std::to_string(k) + " ";
  grade_values += "255";
  const std::string grade_meanings = class_flag_meanings(scheme) + " unclassified";
  const std::string length_units = metres > 0 ? "m" : "pixel";
  t.attributes["damage_scheme"] = damage.scheme;
  t.attributes["damage_metric"] = damage.metric;
  t.columns.push_back({"id", std::move(id), "row of the feature in this table", "", {}});
  t.columns.push_back(
      {"source_id", std::move(source), "id of the feature in the source file", "", {}});
  t.columns.push_back({"kind",
                       std::move(kind),
                       "feature kind",
                       "",
                       {{"flag_values", std::string("0 1 2 3")},
                        {"flag_meanings", std::string("building road infrastructure rail")}}});
  t.columns.push_back({"source_geometry",
                       std::move(geometry),
                       "geometry in the source (lines and points are buffered)",
                       "",
                       {{"flag_values", std::string("0 1 2")},
                        {"flag_meanings", std::string("polygon line point")}}});
  t.columns.push_back({"segment",
                       std::move(segment),
                       "lines: index of the segment along its source line (-1: not a line)",
                       "",
                       {}});
  t.columns.push_back({"area",
                       std::move(area),
                       "feature area (lines: the corridor, points: the disc)",
                       px_area_m2 > 0 ? "m2" : "pixel2",
                       {}});
  t.columns.push_back({"length",
                       std::move(length),
                       "lines: centerline length of the segment (0 otherwise)",
                       length_units,
                       {}});
  t.columns.push_back({"pixels",
                       std::move(pixels),
                       "analysis-grid pixels whose centre is inside the feature",
                       "1",
                       {}});
  t.columns.push_back(
      {"coverage", std::move(coverage), "fraction of the feature on the analysis grid", "1", {}});
  t.columns.push_back({"valid_fraction",
                       std::move(valid),
                       "fraction of the feature's pixels valid in both scenes",
                       "1",
                       {}});
  t.columns.push_back(
      {"mean_score", std::move(mean), "mean change score over valid pixels", "1", {}});
  t.columns.push_back({"median_score",
                       std::move(median),
                       "median change score over valid pixels (lower median)",
                       "1",
                       {}});
  t.columns.push_back({"p90_score",
                       std::move(p90),
                       "90th percentile of the change score over valid pixels (nearest rank)",
                       "1",
                       {}});
  t.columns.push_back({"changed_fraction",
                       std::move(changed),
                       "fraction of valid pixels in the damage mask",
                       "1",
                       {}});
  if (any_line) {
    t.columns.push_back(
        {"length_changed_fraction",
         std::move(length_changed),
         "lines: fraction of the valid centerline length on pixels in the damage mask",
         "1",
         {}});
  }
  if (any_misregistration) {
    t.columns.push_back({"misregistration",
                         std::move(misregistration),
                         "mean residual misregistration over valid pixels (-1: none known)",
                         "pixel",
                         {}});
  }
  t.columns.push_back({"status",
                       std::move(status),
                       "scoring status",
                       "",
                       {{"flag_values", std::string("0 1 2")},
                        {"flag_meanings", std::string("scored no_data outside")}}});
  t.columns.push_back({"damage_class",
                       std::move(damage_class),
                       "damage class on the xBD scale (of the default grade)",
                       "",
                       {{"flag_values", class_values}, {"flag_meanings", class_meanings}}});
  const char* grade_names[kOperatingPoints] = {"damage_grade", "damage_grade_high_precision",
                                               "damage_grade_high_recall"};
  const char* grade_long[kOperatingPoints] = {
      "damage class in the configured scheme (default operating point)",
      "damage class at the high-precision operating point",
      "damage class at the high-recall operating point"};
  for (int k = 0; k < kOperatingPoints; ++k) {
    t.columns.push_back({grade_names[k],
                         std::move(grade[static_cast<std::size_t>(k)]),
                         grade_long[k],
                         "",
                         {{"flag_values", grade_values},
                          {"flag_meanings", grade_meanings},
                          {"scheme", damage.scheme}}});
  }
  t.columns.push_back({"confidence", std::move(confidence), "confidence of the class", "1", {}});
  t.columns.push_back({"geometry_wkt",
                       std::move(wkt),
                       "feature geometry as WKT in the grid's CRS (pixel units for a pixel grid)",
                       "",
                       {}});
  if (any_line) {
    t.columns.push_back({"centerline_wkt",
                         std::move(centerline),
                         "lines: the segment's centerline as WKT in the grid's CRS",
                         "",
                         {}});
  }
  if (any_truth) {
    t.columns.push_back({"truth_class",
                         std::move(truth),
                         "damage class given by the source labels",
                         "",
                         {{"flag_values", class_values}, {"flag_meanings", class_meanings}}});
  }
  return t;
}

Table site_table(const std::vector<DamageSite>& sites, std::vector<std::string> outlines,
                 const Grid& grid, bool with_built_up) {
  Table t;
  t.group = "sites";
  t.dimension = "site";
  const std::size_t n = sites.size();
  std::vector<std::int64_t> id(n), pixels(n);
  std::vector<double> area(n), mean(n), max(n), built(n), cx(n), cy(n);
  std::vector<std::int64_t> col0(n), row0(n), cols(n), rows(n);
  const double metres = pixel_size_in_metres(grid);
  const double px_area = metres > 0 ? metres * metres : 1.0;
  for (std::size_t i = 0; i < n; ++i) {
    const DamageSite& s = sites[i];
    id[i] = s.id;
    pixels[i] = s.pixels;
    area[i] = static_cast<double>(s.pixels) * px_area;
    mean[i] = s.mean_score;
    max[i] = s.max_score;
    built[i] = s.built_up_fraction;
    const cv::Point2d c = grid.pixel_to_map(s.centroid.x, s.centroid.y);
    cx[i] = c.x;
    cy[i] = c.y;
    col0[i] = s.bbox.x;
    row0[i] = s.bbox.y;
    cols[i] = s.bbox.width;
    rows[i] = s.bbox.height;
  }
  const std::string map_units = grid.georeferenced() ? "crs" : "pixel";
  t.columns.push_back(
      {"id", std::move(id), "site number, in order of its first pixel (row, then column)", "", {}});
  t.columns.push_back({"pixels", std::move(pixels), "changed pixels of the site", "1", {}});
  t.columns.push_back({"area", std::move(area), "site area", metres > 0 ? "m2" : "pixel2", {}});
  t.columns.push_back({"mean_score", std::move(mean), "mean change score of its pixels", "1", {}});
  t.columns.push_back({"max_score", std::move(max), "largest change score of its pixels", "1", {}});
  if (with_built_up)
    t.columns.push_back({"built_up_fraction",
                         std::move(built),
                         "fraction of its pixels on built-up ground",
                         "1",
                         {}});
  t.columns.push_back(
      {"centroid_x", std::move(cx), "centroid, map x of the grid's CRS", map_units, {}});
  t.columns.push_back(
      {"centroid_y", std::move(cy), "centroid, map y of the grid's CRS", map_units, {}});
  t.columns.push_back({"col", std::move(col0), "bounding box: first grid column", "pixel", {}});
  t.columns.push_back({"row", std::move(row0), "bounding box: first grid row", "pixel", {}});
  t.columns.push_back({"width", std::move(cols), "bounding box: columns", "pixel", {}});
  t.columns.push_back({"height", std::move(rows), "bounding box: rows", "pixel", {}});
  t.columns.push_back(
      {"geometry_wkt",
       std::move(outlines),
       "outline along pixel edges (4-connected, as GDALPolygonize) as WKT in the grid's CRS",
       "",
       {}});
  return t;
}

std::string outline_wkt(const std::vector<std::vector<cv::Point>>& rings, const Grid& grid) {
  // fmt's shortest round-trip form of each coordinate: exact, and ~20x faster than OGR's WKT
  // export (which dominated a rescore's time with a few thousand sites); the format is parsed at
  // compile time, not once per coordinate. Built in a scratch buffer and returned at its exact
  // size: sites keep their outline to the end of the job.
  fmt::memory_buffer wkt;
  const auto append = [&](std::string_view s) { wkt.append(s.data(), s.data() + s.size()); };
  append("POLYGON (");
  for (std::size_t r = 0; r < rings.size(); ++r) {
    append(r ? ",(" : "(");
    const auto& ring = rings[r];
    for (std::size_t k = 0; k <= ring.size(); ++k) {
      const cv::Point& p = ring[k % ring.size()];
      const cv::Point2d m = grid.pixel_to_map(p.x, p.y);
      fmt::format_to(std::back_inserter(wkt), FMT_COMPILE("{}{} {}"), k ? "," : "", m.x, m.y);
    }
    append(")");
  }
  append(")");
  return fmt::to_string(wkt);
}

void pack_site_outline(DamageSite& site) {
  site.outline = pack_outline(site_outline(site));
  std::vector<MaskRun>().swap(site.runs);
}

std::vector<std::string> site_outlines(std::vector<DamageSite>& sites, const Grid& grid,
                                       const ForEach& for_each) {
  // Independent per site, each result in its own slot.
  std::vector<std::string> out(sites.size());
  for_each(sites.size(), [&](std::size_t i) {
    DamageSite& s = sites[i];
    out[i] = outline_wkt(s.outline.empty() ? site_outline(s) : unpack_outline(s.outline), grid);
    std::vector<MaskRun>().swap(s.runs);
    std::vector<std::uint8_t>().swap(s.outline);
  });
  return out;
}

double site_min_built_up_fraction(const SitesConfig& sites) {
  return sites.built_up_only ? sites.min_built_up_fraction : 0.0;
}

int built_up_size_px(const JobConfig& cfg, const Grid& grid) {
  if (!cfg.sites.enabled || !cfg.sites.built_up_only) return 0;
  const double metres = pixel_size_in_metres(grid);
  const int size = std::max(3, static_cast<int>(std::ceil(cfg.sites.built_up_max_size_m / (metres > 0 ? metres : 1.0))));
  const int reach = built_up_reach(size);
  if (cfg.tiling.halo > 0 && cfg.tiling.halo < reach) {
    throw Error(ErrorKind::usage,
                fmt::format("sites.built_up_only: the building index looks {} px around each pixel "
                            "(sites.built_up_max_size_m {} m at {:.3g} m pixels); set tiling.halo to at least {} "
                            "(now {}), or lower sites.built_up_max_size_m",
                            reach, cfg.sites.built_up_max_size_m, metres > 0 ? metres : 1.0, reach, cfg.tiling.halo),
                "plan");
  }
  return size;
}

int tile_halo(const JobConfig& cfg, int building_index_px) {
  if (cfg.tiling.halo > 0) return cfg.tiling.halo;
  const int halo = std::max(detect_radius(cfg.detect) + 2 * cfg.threshold.open_radius,
                            building_index_px > 0 ? built_up_reach(building_index_px) : 0);
  if (halo >= cfg.tiling.tile_size) {
    throw Error(
        ErrorKind::usage,
        fmt::format(
            "tiles of {} px are too small for the {} px the detector, the mask's opening and the "
            "building index reach around each pixel: raise tiling.tile_size",
            cfg.tiling.tile_size, halo),
        "plan");
  }
  return halo;
}

LayerSpec built_up_layer() {
  return {"built_up_index", LayerType::float32, -1.0,
          "morphological building index of the pre scene (fraction of its brightness range; built-up >= "
          "sites.built_up_index_threshold)",
          "1", {}, {}};
}

cv::Mat built_up_index_core(const std::vector<cv::Mat>& pre_outer, const cv::Mat& valid_outer, const Tile& tile,
                            int size_px, double brightness_range) {
  cv::Mat index = built_up_index(pre_outer, valid_outer, size_px, brightness_range)(tile.core_in_outer()).clone();
  index.setTo(-1.0f, valid_outer(tile.core_in_outer()) == 0);
  return index;
}

std::int64_t site_min_pixels(const SitesConfig& sites, const Grid& grid) {
  const double metres = pixel_size_in_metres(grid);
  const double px_area = metres > 0 ? metres * metres : 1.0;
  return std::max<std::int64_t>(
      1, static_cast<std::int64_t>(std::ceil(sites.min_area_m2 / px_area - 1e-9)));
}

}  // namespace aftermath::engine
