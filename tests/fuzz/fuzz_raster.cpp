// libFuzzer target: open_scene + SceneReader::read through GDAL's /vsimem/ (GTiff, PNG, VRT, ...
// with the default driver allow-list), including errors that only appear at read time.
#include <cstddef>
#include <cstdint>
#include <string>

#include <cpl_conv.h>
#include <cpl_vsi.h>

#include "aftermath/core/error.hpp"
#include "aftermath/io/scene.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static bool init = [] {
    aftermath::init_gdal();
    CPLSetConfigOption("GDAL_CACHEMAX", "32");
    CPLSetConfigOption("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR");
    return true;
  }();
  (void)init;
  const char* path = "/vsimem/fuzz_input";
  VSILFILE* f = VSIFileFromMemBuffer(path, const_cast<GByte*>(data), static_cast<vsi_l_offset>(size), FALSE);
  if (!f) return 0;
  VSIFCloseL(f);
  aftermath::InputConfig cfg;
  cfg.max_pixels = 1 << 22;
  try {
    const aftermath::SceneInfo info = aftermath::open_scene(path, cfg);
    aftermath::Grid grid = info.grid;
    aftermath::SceneReader reader(info, grid, aftermath::ReadOptions{});
    const aftermath::Window w{0, 0, std::min(grid.width, 64), std::min(grid.height, 64)};
    (void)reader.read(w);
  } catch (const aftermath::Error&) {
  }
  VSIUnlink(path);
  return 0;
}
