// libFuzzer target: read_footprints (GeoJSON / xBD JSON sniffing, OGR, geometry repair) on bytes
// written to a private temporary file (the reader checks real paths, and sniffs JSON from them).
// The first byte picks the grid: even = georeferenced (UTM 32N), odd = a plain pixel grid.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "aftermath/core/error.hpp"
#include "aftermath/io/footprints.hpp"
#include "aftermath/io/scene.hpp"

namespace {
std::string temp_path() {
  static const std::string p = "/tmp/aftermath-fuzz-fp-" + std::to_string(::getpid()) + ".geojson";
  return p;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static bool init = [] {
    aftermath::init_gdal();
    return true;
  }();
  (void)init;
  if (size < 1) return 0;
  aftermath::Grid grid;
  grid.width = 256;
  grid.height = 256;
  if (data[0] % 2 == 0) {
    static const std::string utm = aftermath::crs_to_wkt("EPSG:32632");
    grid.crs_wkt = utm;
    grid.geotransform = {500000, 1, 0, 5000256, 0, -1};
  } else {
    grid.geotransform = {0, 1, 0, 0, 0, 1};
  }
  std::FILE* f = std::fopen(temp_path().c_str(), "wb");
  if (!f) return 0;
  std::fwrite(data + 1, 1, size - 1, f);
  std::fclose(f);
  try {
    (void)aftermath::read_footprints(temp_path(), grid);
  } catch (const aftermath::Error&) {
  }
  return 0;
}
