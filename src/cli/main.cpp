// aftermath command line: run | describe-config | info | xbd-import.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "aftermath/config/config.hpp"
#include "aftermath/core/error.hpp"
#include "aftermath/engine/job.hpp"
#include "aftermath/io/scene.hpp"
#include "aftermath/io/xbd.hpp"

namespace {

constexpr const char* kExitCodes =
    "Exit codes: 0 done; 1 the job failed (bad or unusable input, processing error); "
    "2 usage or configuration error; 3 the output could not be written.";

// One JSON object per line on stderr, for log collectors (--log-json).
class JsonStderrSink : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    const auto t = std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()).count();
    nlohmann::json j = {{"time_ms", t},
                        {"level", std::string(spdlog::level::to_string_view(msg.level).data(),
                                              spdlog::level::to_string_view(msg.level).size())},
                        {"msg", std::string(msg.payload.data(), msg.payload.size())}};
    std::fputs((j.dump() + "\n").c_str(), stderr);
  }
  void flush_() override { std::fflush(stderr); }
};

void setup_logging(const std::string& level, bool json) {
  std::shared_ptr<spdlog::logger> logger;
  if (json) {
    logger = std::make_shared<spdlog::logger>("aftermath", std::make_shared<JsonStderrSink>());
  } else {
    logger = spdlog::stderr_color_mt("aftermath");
    logger->set_pattern("%^%l%$: %v");
  }
  logger->set_level(spdlog::level::from_str(level));
  spdlog::set_default_logger(logger);
}

int report_error(const aftermath::Error& e) {
  spdlog::error("{}", e.what());
  return aftermath::exit_code_for(e.kind());
}

void print_summary(const aftermath::RunSummary& s) {
  std::cout << fmt::format("output      {}\n", s.output);
  std::cout << fmt::format("grid        {} x {} px, {}, pixel size {:.6g} x {:.6g}\n", s.grid.width,
                           s.grid.height, s.crs_name, s.grid.geotransform[1], -s.grid.geotransform[5]);
  std::cout << fmt::format("alignment   {} shift ({:+.3f}, {:+.3f}) px; tie points {} kept, {} dropped; "
                           "RMSE {:.3f} -> {:.3f} px\n",
                           s.alignment_model, s.shift_x, s.shift_y, s.ties_kept, s.ties_dropped,
                           s.rmse_before, s.rmse_after);
  const double pct = s.valid_pixels ? 100.0 * static_cast<double>(s.changed_pixels) / static_cast<double>(s.valid_pixels) : 0.0;
  std::cout << fmt::format("change      threshold {:.3f}; {} of {} valid px changed ({:.1f}%)\n",
                           s.threshold, s.changed_pixels, s.valid_pixels, pct);
  if (s.features > 0) {
    std::cout << fmt::format("features    {}: no-damage {}, minor {}, major {}, destroyed {}, "
                             "no-data {}, outside {}\n",
                             s.features, s.class_counts[0], s.class_counts[1], s.class_counts[2],
                             s.class_counts[3], s.no_data, s.outside);
  }
  std::cout << fmt::format("time        {:.2f} s (plan {:.2f}, estimate {:.2f}, score+write {:.2f}, "
                           "finalize {:.2f}); {:.1f} Mpx/s\n",
                           s.times.total, s.times.plan, s.times.estimate, s.times.score,
                           s.times.finalize,
                           static_cast<double>(s.grid.pixel_count()) / 1e6 / std::max(s.times.total, 1e-9));
  if (!s.warnings.empty()) std::cout << fmt::format("warnings    {}\n", s.warnings.size());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"aftermath: finds what was destroyed between two satellite scenes.\n" +
               std::string(kExitCodes)};
  app.set_version_flag("--version", std::string("aftermath ") + AFTERMATH_VERSION);
  app.require_subcommand(1);
  std::string log_level = "info";
  bool log_json = false;
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error|off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  app.add_flag("--log-json", log_json, "log one JSON object per line on stderr");

  // run
  aftermath::RunRequest req;
  std::vector<std::string> overrides;
  auto* run = app.add_subcommand("run", "Align a pre/post pair, score change, classify footprints, write HDF5.\n" +
                                           std::string(kExitCodes));
  run->add_option("--pre", req.pre, "pre-event scene (any GDAL raster)")->required();
  run->add_option("--post", req.post, "post-event scene (any GDAL raster; any CRS/resolution)")->required();
  run->add_option("--footprints", req.footprints,
                  "building footprints: GeoJSON, GeoPackage, Shapefile or xBD label JSON");
  run->add_option("--footprint-layer", req.footprint_layer, "layer name when the footprint file has several");
  run->add_option("--config", req.config_path, "YAML config (see describe-config); default: built-in defaults");
  run->add_option("--set", overrides, "override a config key, e.g. --set threshold.value=0.4 (repeatable)");
  run->add_option("--out", req.out, "output HDF5 file (written under a temporary name, renamed when complete)")->required();
  run->add_option("--quicklook", req.quicklook, "also write a PNG: pre | post with footprints by class | score");
  run->add_option("--threads", req.threads, "worker threads (0 = all cores); results do not depend on it")
      ->check(CLI::Range(0, 1024));
  run->add_flag("--overwrite", req.overwrite, "replace an existing output (atomically)");

  // describe-config
  auto* describe = app.add_subcommand("describe-config", "Print every config key: type, range, default, meaning.");

  // info
  std::string info_path;
  auto* info = app.add_subcommand("info", "Describe a raster as aftermath sees it (grid, bands, nodata).");
  info->add_option("raster", info_path, "raster file")->required();

  // xbd-import
  std::string xbd_pre, xbd_post, xbd_labels, xbd_out, xbd_stem;
  auto* xbd = app.add_subcommand("xbd-import", "Write georeferenced GeoTIFFs and GeoJSON footprints from an xBD pair.");
  xbd->add_option("--pre-image", xbd_pre, "xBD pre-disaster PNG")->required();
  xbd->add_option("--post-image", xbd_post, "xBD post-disaster PNG")->required();
  xbd->add_option("--labels", xbd_labels, "xBD post-disaster label JSON")->required();
  xbd->add_option("--out-dir", xbd_out, "output directory")->required();
  xbd->add_option("--stem", xbd_stem, "file name stem (default: from the image name)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "error: " << e.what() << "\n(run with --help for usage)\n";
    return 2;
  }
  setup_logging(log_level, log_json);

  try {
    if (*describe) {
      std::cout << aftermath::describe_config();
      return 0;
    }
    if (*info) {
      aftermath::init_gdal();
      const auto s = aftermath::open_scene(info_path, aftermath::InputConfig{});
      std::cout << fmt::format("{}: {} {} x {} px, {} bands of {}, {}\n", s.path, s.driver, s.grid.width,
                               s.grid.height, s.band_count, s.data_type,
                               s.georeferenced ? "georeferenced" : "not georeferenced");
      if (s.nodata) std::cout << fmt::format("nodata {}\n", *s.nodata);
      const auto& g = s.grid.geotransform;
      std::cout << fmt::format("geotransform {} {} {} {} {} {}\n", g[0], g[1], g[2], g[3], g[4], g[5]);
      return 0;
    }
    if (*xbd) {
      aftermath::init_gdal();
      if (xbd_stem.empty()) {
        xbd_stem = std::filesystem::path(xbd_pre).stem().string();
        const auto p = xbd_stem.find("_pre_disaster");
        if (p != std::string::npos) xbd_stem.erase(p);
      }
      const auto r = aftermath::xbd_import(xbd_pre, xbd_post, xbd_labels, xbd_out, xbd_stem);
      std::cout << fmt::format("wrote {}\n      {}\n      {}\n{} buildings; affine fit RMSE {:.3f} px\n", r.pre_tif,
                               r.post_tif, r.footprints_geojson, r.buildings, r.fit_rmse_px);
      return 0;
    }
    // run
    if (!req.config_path.empty()) {
      req.config = aftermath::load_config(req.config_path);
    }
    aftermath::apply_overrides(req.config, overrides);
    const bool tty = ::isatty(STDERR_FILENO) && !log_json;
    aftermath::ProgressFn progress;
    if (tty) {
      progress = [](const std::string& stage, std::int64_t done, std::int64_t total) {
        std::fprintf(stderr, "\r%s: %lld/%lld tiles (%.0f%%)%s", stage.c_str(), static_cast<long long>(done),
                     static_cast<long long>(total), 100.0 * static_cast<double>(done) / static_cast<double>(total),
                     done == total ? "\n" : "");
      };
    }
    const auto summary = aftermath::run_job(req, progress);
    print_summary(summary);
    if (!req.quicklook.empty()) std::cout << fmt::format("quicklook   {}\n", req.quicklook);
    return 0;
  } catch (const aftermath::Error& e) {
    return report_error(e);
  } catch (const std::exception& e) {
    spdlog::error("internal error: {}", e.what());
    return 1;
  }
}
