// A reference point for this machine, not part of aftermath: reads every block of one raster
// through plain GDAL (one dataset handle per thread, blocks handed out in row-major order, each
// read in the file's own data type for all bands at once) and prints the seconds and Mpx/s.
// Issue 11 quotes this figure for its reference machine ("reading one such 4-band GeoTIFF
// through GDAL with both cores runs at about 115 Mpx/s"), so scripts/bench.sh --compare measures
// it here, side by side with the run, to say how this machine compares with that one.
//
// Usage: aftermath_gdal_read RASTER [threads (default 2)]
#include <cpl_conv.h>
#include <cpl_error.h>
#include <gdal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s RASTER [threads]\n", argv[0]);
    return 2;
  }
  const std::string path = argv[1];
  const int threads = std::max(1, argc > 2 ? std::atoi(argv[2]) : 2);
  // A small block cache unless the caller sets one: every block is read once, so a cache only
  // costs (here, 8192^2 on 2 threads: ~75 Mpx/s with 16 MB, ~52 with GDAL's default 5% of RAM,
  // which the decoded blocks fill). The faster figure is the stricter reference.
  if (CPLGetConfigOption("GDAL_CACHEMAX", nullptr) == nullptr) GDALSetCacheMax64(16LL << 20);
  GDALAllRegister();
  CPLSetErrorHandler(CPLQuietErrorHandler);  // the message goes into ours
  GDALDatasetH probe = GDALOpen(path.c_str(), GA_ReadOnly);
  if (!probe) {
    std::fprintf(stderr, "gdal_read: %s: cannot be opened (%s)\n", path.c_str(),
                 CPLGetLastErrorMsg());
    return 1;
  }
  const int width = GDALGetRasterXSize(probe), height = GDALGetRasterYSize(probe);
  const int bands = GDALGetRasterCount(probe);
  if (bands < 1) {
    std::fprintf(stderr, "gdal_read: %s: no bands\n", path.c_str());
    GDALClose(probe);
    return 1;
  }
  int bw = 0, bh = 0;
  GDALGetBlockSize(GDALGetRasterBand(probe, 1), &bw, &bh);
  const GDALDataType type = GDALGetRasterDataType(GDALGetRasterBand(probe, 1));
  GDALClose(probe);
  const int bx = (width + bw - 1) / bw, by = (height + bh - 1) / bh;
  const int blocks = bx * by;

  std::atomic<int> next{0};
  std::atomic<bool> failed{false};
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      GDALDatasetH ds = GDALOpen(path.c_str(), GA_ReadOnly);
      if (!ds) {
        failed = true;
        return;
      }
      std::vector<unsigned char> buf(static_cast<std::size_t>(bw) * bh * bands *
                                     static_cast<std::size_t>(GDALGetDataTypeSizeBytes(type)));
      for (int b = next++; b < blocks && !failed; b = next++) {
        const int x = (b % bx) * bw, y = (b / bx) * bh;
        const int w = std::min(bw, width - x), h = std::min(bh, height - y);
        if (GDALDatasetRasterIO(ds, GF_Read, x, y, w, h, buf.data(), w, h, type, bands, nullptr, 0,
                                0, 0) != CE_None) {
          failed = true;
        }
      }
      GDALClose(ds);
    });
  }
  for (auto& th : pool) th.join();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (failed) {
    std::fprintf(stderr, "gdal_read: %s: a read failed\n", path.c_str());
    return 1;
  }
  std::printf(
      "{\"width\": %d, \"height\": %d, \"bands\": %d, \"threads\": %d, \"seconds\": %.3f, "
      "\"mpx_per_s\": %.1f}\n",
      width, height, bands, threads, s, width * double(height) / 1e6 / s);
  return 0;
}
