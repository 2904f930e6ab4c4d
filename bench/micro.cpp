// Kernel micro-benchmarks: one window or one tile each, on synthetic data.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <memory>
#include <opencv2/imgproc.hpp>

#include "aftermath/align/registration.hpp"
#include "aftermath/core/util.hpp"
#include "aftermath/detect/detector.hpp"
#include "aftermath/io/hdf5_writer.hpp"
#include "aftermath/radiometry/normalisation.hpp"
#include "aftermath/score/footprint_accumulator.hpp"
#include "aftermath/score/threshold.hpp"
#include "synthetic_scene.hpp"

using namespace aftermath;

namespace {

std::vector<cv::Mat> to_float(const std::vector<cv::Mat>& in) {
  std::vector<cv::Mat> out;
  for (const auto& m : in) {
    cv::Mat f;
    m.convertTo(f, CV_32F);
    out.push_back(f);
  }
  return out;
}

BandPair tile_pair(int size) {
  synth::SceneSpec spec;
  spec.width = spec.height = size;
  spec.shift_x = 0.4;
  BandPair p;
  p.pre = to_float(synth::render(spec, false, {0, 0, size, size}));
  p.post = to_float(synth::render(spec, true, {0, 0, size, size}));
  p.valid = cv::Mat(size, size, CV_8U, cv::Scalar(255));
  return p;
}

void BM_PhaseCorrelateWindow(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  BandPair p = tile_pair(n);
  const cv::Mat a = to_intensity(p.pre), b = to_intensity(p.post);
  for (auto _ : state) benchmark::DoNotOptimize(phase_correlate(a, b, cv::Mat(), cv::Mat(), 64));
  state.SetItemsProcessed(state.iterations() * n * n);
}
BENCHMARK(BM_PhaseCorrelateWindow)->Arg(256)->Unit(benchmark::kMillisecond);

void BM_CvaTile(benchmark::State& state) {
  BandPair p = tile_pair(512);
  auto det = make_detector(DetectConfig{});
  det->fit({p});
  for (auto _ : state) benchmark::DoNotOptimize(det->score(p));
  state.SetItemsProcessed(state.iterations() * 512 * 512);
}
BENCHMARK(BM_CvaTile)->Unit(benchmark::kMillisecond);

// Every detector on one 512 x 512 3-band tile (fit once on the tile; the figure is the scoring,
// which runs per tile). items = pixels, so items_per_second / 1e6 is Mpx/s on one thread.
void BM_DetectorTile(benchmark::State& state, const std::string& method) {
  BandPair p = tile_pair(512);
  DetectConfig cfg;
  cfg.method = method;
  auto det = make_detector(cfg);
  det->fit({p});
  std::vector<cv::Mat> layers;
  for (auto _ : state) benchmark::DoNotOptimize(det->score_with_layers(p, layers));
  state.SetItemsProcessed(state.iterations() * 512 * 512);
}
BENCHMARK_CAPTURE(BM_DetectorTile, cva, std::string("cva"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_DetectorTile, log_ratio, std::string("log-ratio"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_DetectorTile, irmad, std::string("irmad"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_DetectorTile, ssim, std::string("ssim"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_DetectorTile, texture, std::string("texture"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_DetectorTile, ttest, std::string("ttest"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_DetectorTile, ensemble, std::string("ensemble"))->Unit(benchmark::kMillisecond);

void BM_DamageMaskTile(benchmark::State& state) {
  BandPair p = tile_pair(512);
  auto det = make_detector(DetectConfig{});
  det->fit({p});
  const cv::Mat s = det->score(p);
  for (auto _ : state) benchmark::DoNotOptimize(damage_mask(s, p.valid, 0.5, 1));
  state.SetItemsProcessed(state.iterations() * 512 * 512);
}
BENCHMARK(BM_DamageMaskTile)->Unit(benchmark::kMillisecond);

void BM_RegistrationTile(benchmark::State& state) {
  BandPair p = tile_pair(516);
  Registration reg;
  reg.model = "translation";
  reg.shift = {0.4, 0.0};
  std::vector<cv::Mat> out;
  cv::Mat valid;
  for (auto _ : state) apply_registration(reg, p.post, p.valid, {0, 0, 516, 516}, {2, 2, 512, 512}, out, valid);
  state.SetItemsProcessed(state.iterations() * 512 * 512);
}
BENCHMARK(BM_RegistrationTile)->Unit(benchmark::kMillisecond);

// As `aftermath run` warps a tile of the bench's pairs: 4 uint16 bands (read_native), a shift
// fractional on both axes (cubic taps along x and y), a 512 px tile and its taps.
void BM_RegistrationTileUint16(benchmark::State& state) {
  BandPair p = tile_pair(520);
  std::vector<cv::Mat> bands;
  for (int k = 0; k < 4; ++k) {
    cv::Mat u;
    p.post[static_cast<std::size_t>(k) % p.post.size()].convertTo(u, CV_16U);
    bands.push_back(u);
  }
  Registration reg;
  reg.model = "translation";
  reg.shift = {2.3, -1.7};
  std::vector<cv::Mat> out;
  cv::Mat valid;
  for (auto _ : state)
    apply_registration(reg, bands, p.valid, {0, 0, 520, 520}, {2, 6, 512, 512}, out, valid);
  state.SetItemsProcessed(state.iterations() * 512 * 512);
}
BENCHMARK(BM_RegistrationTileUint16)->Unit(benchmark::kMillisecond);

/// The synthetic pair's buildings on a size x size tile, as footprints.
std::vector<Footprint> tile_footprints(int size) {
  synth::SceneSpec spec;
  spec.width = spec.height = size;
  std::vector<Footprint> fs;
  for (const auto& b : synth::buildings(spec)) {
    Footprint f;
    f.id = static_cast<std::int64_t>(fs.size());
    const auto& r = b.rect;
    f.rings = {{{double(r.x), double(r.y)}, {double(r.x + r.width), double(r.y)},
                {double(r.x + r.width), double(r.y + r.height)}, {double(r.x), double(r.y + r.height)}}};
    finalize_geometry(f);
    fs.push_back(f);
  }
  return fs;
}

void BM_FootprintAccumulateTile(benchmark::State& state) {
  const std::vector<Footprint> fs = tile_footprints(512);
  TileGrid grid(512, 512, 512, 0);
  FootprintIndex index(fs, grid);
  cv::Mat score(512, 512, CV_32F, cv::Scalar(0.3)), valid(512, 512, CV_8U, cv::Scalar(255)),
      mask(512, 512, CV_8U, cv::Scalar(0));
  for (auto _ : state) benchmark::DoNotOptimize(accumulate_tile(fs, index.in_tile(0), grid.tile(0), score, valid, mask));
  state.SetItemsProcessed(state.iterations() * 512 * 512);
  state.counters["features"] = static_cast<double>(fs.size());
}
BENCHMARK(BM_FootprintAccumulateTile)->Unit(benchmark::kMillisecond);

// As the run calls it: stored uint16 codes, a misregistration layer, the valid pixels' codes kept
// and the quantiles of the features wholly inside the tile settled there.
void BM_FootprintAccumulateTileAsRun(benchmark::State& state) {
  const std::vector<Footprint> fs = tile_footprints(512);
  TileGrid grid(512, 512, 512, 0);
  FootprintIndex index(fs, grid);
  // The detector's scores of the synthetic pair (destroyed buildings among them), as stored.
  BandPair p = tile_pair(512);
  auto det = make_detector(DetectConfig{});
  det->fit({p});
  const cv::Mat score = det->score(p);
  const cv::Mat codes = encode_scores(score, p.valid), valid = p.valid;
  const cv::Mat mask = damage_mask(score, p.valid, 0.5, 1);
  const cv::Mat misreg(512, 512, CV_32F, cv::Scalar(0.07f));
  std::size_t pixels = 0;
  for (auto _ : state) {
    auto parts = accumulate_tile(fs, index.in_tile(0), grid.tile(0),
                                 TileLayers{codes, valid, mask, misreg, true});
    settle_single_tile_partials(parts, index);
    pixels = 0;
    for (const auto& part : parts) pixels += static_cast<std::size_t>(part.sums.valid);
    benchmark::DoNotOptimize(parts);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(pixels));
  state.counters["features"] = static_cast<double>(fs.size());
  state.counters["feature_px"] = static_cast<double>(pixels);
}
BENCHMARK(BM_FootprintAccumulateTileAsRun)->Unit(benchmark::kMicrosecond);

void BM_EncodeChunk(benchmark::State& state) {
  BandPair p = tile_pair(512);
  auto det = make_detector(DetectConfig{});
  det->fit({p});
  const cv::Mat s = det->score(p);
  LayerSpec spec{"change_score", LayerType::float32, -1.0, "", "", {}, {}};
  const int level = static_cast<int>(state.range(0));
  std::size_t bytes = 0;
  for (auto _ : state) bytes = encode_chunk(spec, s, 512, level).bytes.size();
  state.SetItemsProcessed(state.iterations() * 512 * 512);
  state.counters["ratio"] = 512.0 * 512 * 4 / static_cast<double>(bytes);
}
BENCHMARK(BM_EncodeChunk)->Arg(1)->Arg(4)->Arg(6)->Unit(benchmark::kMillisecond);

// The damage mask's chunk (uint8 0/1, shuffle + DEFLATE at the level given; the second argument
// 1 = zlib's run-length strategy, as the run encodes it, 0 = libdeflate): the layer that
// `output.deflate_level` costs most for.
void BM_EncodeMaskChunk(benchmark::State& state) {
  BandPair p = tile_pair(512);
  auto det = make_detector(DetectConfig{});
  det->fit({p});
  const cv::Mat mask = damage_mask(det->score(p), p.valid, 0.5, 1);
  LayerSpec spec{"damage_mask", LayerType::uint8, 255.0, "", "", {0, 1, 255}, ""};
  spec.run_length = state.range(1) != 0;
  const int level = static_cast<int>(state.range(0));
  std::size_t bytes = 0;
  for (auto _ : state) bytes = encode_chunk(spec, mask, 512, level).bytes.size();
  state.SetItemsProcessed(state.iterations() * 512 * 512);
  state.counters["ratio"] = 512.0 * 512 / static_cast<double>(bytes);
  state.counters["changed"] = cv::countNonZero(mask == 1) / (512.0 * 512);
}
BENCHMARK(BM_EncodeMaskChunk)
    ->Args({4, 1})
    ->Args({1, 0})
    ->Args({2, 0})
    ->Args({4, 0})
    ->Args({6, 0})
    ->Unit(benchmark::kMillisecond);

// Writing one encoded chunk with the run's writer: the change_score's 512^2 uint16 codes
// (unfiltered, 512 KB) through H5Dwrite_chunk into a new 8192^2 file, chunk after chunk (the
// early write-back included; a new file, untimed, every 256 chunks; never committed).
void BM_WriteChunk(benchmark::State& state) {
  constexpr int kChunk = 512;
  synth::SceneSpec spec;
  spec.width = spec.height = 8192;
  const Grid grid = synth::scene_grid(spec);
  const TileGrid tiles(grid.width, grid.height, kChunk, 0);
  const std::vector<LayerSpec> layers = {
      {"change_score", LayerType::uint16, 65535, "", "1", {}, {}, 1.0 / 65536, 0}};
  cv::Mat codes(kChunk, kChunk, CV_16U);
  cv::randu(codes, 0, 65535);
  const EncodedChunk chunk = encode_chunk(layers[0], codes, kChunk, 0);
  const std::string path =
      (std::filesystem::temp_directory_path() / "aftermath-bench-write-chunk.h5").string();
  auto writer = std::make_unique<Hdf5Writer>(path, grid, kChunk, layers, 4);
  int next = 0;
  for (auto _ : state) {
    if (next == tiles.count()) {
      state.PauseTiming();
      writer =
          std::make_unique<Hdf5Writer>(path, grid, kChunk, layers, 4);  // the old one is removed
      next = 0;
      state.ResumeTiming();
    }
    writer->write_chunk(0, tiles.tile(next++), chunk);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(chunk.bytes.size()));
}
BENCHMARK(BM_WriteChunk)->Unit(benchmark::kMillisecond);

// The estimate stage's samples: 25 windows' centres of 128 x 128 px, 4 bands, as one row per
// band; post resampled at a sub-pixel shift (values no longer integers), with a gain and offset
// and a changed tenth. The robust-linear fit on them, on one thread.
struct FitSamples {
  std::vector<cv::Mat> pre, post;
  cv::Mat valid;
};
FitSamples fit_samples() {
  constexpr int kSide = 640;  // 640^2 = 25 x 128^2 px
  synth::SceneSpec spec;
  spec.width = spec.height = kSide;
  spec.bands = 4;
  FitSamples f;
  f.pre = to_float(synth::render(spec, false, {0, 0, kSide, kSide}));
  const auto post = to_float(synth::render(spec, true, {0, 0, kSide, kSide}));
  const cv::Mat shift = (cv::Mat_<double>(2, 3) << 1, 0, 0.3, 0, 1, -0.7);
  for (std::size_t b = 0; b < post.size(); ++b) {
    cv::Mat moved;
    cv::warpAffine(post[b], moved, shift, post[b].size(), cv::INTER_CUBIC, cv::BORDER_REFLECT);
    moved = moved * (1.0 + 0.05 * static_cast<double>(b)) + 12.0;
    f.pre[b] = f.pre[b].reshape(1, 1);
    f.post.push_back(moved.reshape(1, 1).clone());
  }
  f.valid = cv::Mat(1, kSide * kSide, CV_8U, cv::Scalar(255));
  return f;
}

void BM_FitRobustLinear(benchmark::State& state) {
  const FitSamples f = fit_samples();
  for (auto _ : state) benchmark::DoNotOptimize(fit_robust_linear(f.pre, f.post, f.valid));
  state.SetItemsProcessed(state.iterations() * f.valid.total());
}
BENCHMARK(BM_FitRobustLinear)->Unit(benchmark::kMillisecond);

// One median of 409 600 residuals (not integers): the fit's most frequent statistic.
void BM_MedianOfResiduals(benchmark::State& state) {
  const FitSamples f = fit_samples();
  std::vector<double> residuals(f.valid.total());
  const float* p = f.pre[0].ptr<float>(0);
  const float* q = f.post[0].ptr<float>(0);
  for (std::size_t i = 0; i < residuals.size(); ++i) residuals[i] = 0.97 * q[i] - 8.5 - p[i];
  std::vector<double> work;
  for (auto _ : state) {
    work = residuals;
    benchmark::DoNotOptimize(median_of(work));
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(residuals.size()));
}
BENCHMARK(BM_MedianOfResiduals)->Unit(benchmark::kMillisecond);

}  // namespace

// BENCHMARK_MAIN with the engine's allocator policy, so a kernel is measured as `aftermath run`
// runs it (without it the page faults of fresh buffers were a sixth of some kernels).
int main(int argc, char** argv) {
  keep_freed_memory_in_heap();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
