// aftermath export: an output HDF5 file -> COG per layer, styled GeoPackage, GeoJSON, STAC Item.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <iostream>
#include <memory>

#include "aftermath/io/export.hpp"
#include "commands.hpp"

namespace aftermath::cli {

void print_export(const ExportResult& r) {
  for (const auto& w : r.warnings) spdlog::warn("export: {}", w);
  std::cout << fmt::format("exported    {}\n", r.dir);
  for (const auto& c : r.cogs) std::cout << fmt::format("  cog       {}\n", c);
  std::cout << fmt::format("  gpkg      {} ({} features, {} damage sites, QGIS style)\n", r.geopackage, r.features, r.sites);
  if (!r.geojson.empty()) std::cout << fmt::format("  geojson   {}\n", r.geojson);
  std::cout << fmt::format("  stac      {}\n", r.stac_item);
}

Command add_export(CLI::App& app) {
  struct Options {
    std::string h5, dir;
    ExportOptions opts;
  };
  auto o = std::make_shared<Options>();
  auto* sub = app.add_subcommand("export",
                                 "Write Cloud-Optimized GeoTIFFs, a styled GeoPackage, GeoJSON and "
                                 "a STAC Item from an output HDF5 file.\n" +
                                     std::string(kExitCodes));
  sub->add_option("output", o->h5, "an aftermath output (HDF5)")->required();
  sub->add_option("--to", o->dir, "directory for the exports (created if missing)")->required();
  sub->add_option(
      "--pre-datetime", o->opts.pre_datetime,
      "acquisition time of the pre scene, RFC 3339 (default: from the input's metadata, if any)");
  sub->add_option(
      "--post-datetime", o->opts.post_datetime,
      "acquisition time of the post scene, RFC 3339 (default: from the input's metadata, if any)");
  return {sub, [o] {
            print_export(export_outputs(o->h5, o->dir, o->opts));
            return 0;
          }};
}

}  // namespace aftermath::cli
