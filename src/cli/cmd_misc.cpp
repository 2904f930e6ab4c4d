// aftermath describe-config | info | xbd-import.
#include <filesystem>
#include <iostream>

#include <fmt/format.h>

#include "aftermath/config/config.hpp"
#include "aftermath/io/scene.hpp"
#include "aftermath/io/xbd.hpp"
#include "commands.hpp"

namespace aftermath::cli {

Command add_describe_config(CLI::App& app) {
  auto* sub = app.add_subcommand("describe-config", "Print every config key: type, range, default, meaning.");
  return {sub, [] {
            std::cout << describe_config();
            return 0;
          }};
}

Command add_info(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  auto* sub = app.add_subcommand("info", "Describe a raster as aftermath sees it (grid, bands, nodata).");
  sub->add_option("raster", *path, "raster file")->required();
  return {sub, [path] {
            init_gdal();
            const auto s = open_scene(*path, InputConfig{});
            std::cout << fmt::format("{}: {} {} x {} px, {} bands of {}, {}\n", s.path, s.driver, s.grid.width,
                                     s.grid.height, s.band_count, s.data_type,
                                     s.georeferenced ? "georeferenced" : "not georeferenced");
            if (s.nodata) std::cout << fmt::format("nodata {}\n", *s.nodata);
            const auto& g = s.grid.geotransform;
            std::cout << fmt::format("geotransform {} {} {} {} {} {}\n", g[0], g[1], g[2], g[3], g[4], g[5]);
            return 0;
          }};
}

Command add_xbd_import(CLI::App& app) {
  struct Options {
    std::string pre, post, labels, out, stem;
  };
  auto o = std::make_shared<Options>();
  auto* sub = app.add_subcommand("xbd-import", "Write georeferenced GeoTIFFs and GeoJSON footprints from an xBD pair.");
  sub->add_option("--pre-image", o->pre, "xBD pre-disaster PNG")->required();
  sub->add_option("--post-image", o->post, "xBD post-disaster PNG")->required();
  sub->add_option("--labels", o->labels, "xBD post-disaster label JSON")->required();
  sub->add_option("--out-dir", o->out, "output directory")->required();
  sub->add_option("--stem", o->stem, "file name stem (default: from the image name)");
  return {sub, [o] {
            init_gdal();
            std::string stem = o->stem;
            if (stem.empty()) {
              stem = std::filesystem::path(o->pre).stem().string();
              const auto p = stem.find("_pre_disaster");
              if (p != std::string::npos) stem.erase(p);
            }
            const auto r = xbd_import(o->pre, o->post, o->labels, o->out, stem);
            std::cout << fmt::format("wrote {}\n      {}\n      {}\n{} buildings; affine fit RMSE {:.3f} px\n",
                                     r.pre_tif, r.post_tif, r.footprints_geojson, r.buildings, r.fit_rmse_px);
            return 0;
          }};
}

}  // namespace aftermath::cli
