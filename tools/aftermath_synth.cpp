// aftermath-synth: writes a synthetic pre/post pair (tiled deflate GeoTIFF, 4-band uint16,
// EPSG:32632) with a known shift and known destroyed buildings, plus their footprints as GeoJSON.
// Streams by row blocks: memory does not grow with the scene.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "aftermath/core/error.hpp"
#include "aftermath/io/geotiff_writer.hpp"
#include "synthetic_scene.hpp"

using namespace aftermath;

int main(int argc, char** argv) {
  CLI::App app{"Writes a synthetic pre/post pair with a known shift and destroyed buildings."};
  synth::SceneSpec spec;
  std::string out_dir = ".";
  app.add_option("--size", spec.width, "width and height, px")->check(CLI::Range(16, 1 << 17));
  app.add_option("--bands", spec.bands, "bands")->check(CLI::Range(1, 16));
  app.add_option("--shift-x", spec.shift_x, "post content shift, columns (px)");
  app.add_option("--shift-y", spec.shift_y, "post content shift, rows (px)");
  app.add_option("--seed", spec.seed, "random seed");
  app.add_option("--destroyed", spec.destroyed_fraction, "fraction of buildings destroyed")->check(CLI::Range(0.0, 1.0));
  app.add_option("--out-dir", out_dir, "where to write pre.tif, post.tif, buildings.geojson");
  long long lattice = 0;
  app.add_option("--lattice-footprints", lattice,
                 "write only lattice-N.geojson: N small building polygons on a regular lattice over the scene "
                 "(for the footprint scale benchmark), no rasters")
      ->check(CLI::Range(1LL, 100000000LL));
  CLI11_PARSE(app, argc, argv);
  spec.height = spec.width;
  try {
    const Grid grid = synth::scene_grid(spec);
    if (lattice > 0) {
      // Squares of 60% of the lattice step, each with a slight skew so edges are not axis-aligned.
      const auto per_row = static_cast<long long>(std::ceil(std::sqrt(static_cast<double>(lattice))));
      const double step = static_cast<double>(spec.width) / static_cast<double>(per_row);
      const double side = 0.6 * step;
      const std::string path = fmt::format("{}/lattice-{}.geojson", out_dir, lattice);
      std::ofstream f(path);
      f << "{\"type\":\"FeatureCollection\",\"crs\":{\"type\":\"name\",\"properties\":{\"name\":"
           "\"urn:ogc:def:crs:EPSG::32632\"}},\"features\":[\n";
      auto X = [&](double c) { return grid.geotransform[0] + c * grid.geotransform[1]; };
      auto Y = [&](double r) { return grid.geotransform[3] + r * grid.geotransform[5]; };
      for (long long i = 0; i < lattice; ++i) {
        const double x0 = static_cast<double>(i % per_row) * step + 0.2 * step;
        const double y0 = static_cast<double>(i / per_row) * step + 0.2 * step;
        const double k = 0.1 * side;  // skew
        f << fmt::format("{{\"type\":\"Feature\",\"properties\":{{\"id\":\"l{}\"}},\"geometry\":{{\"type\":"
                         "\"Polygon\",\"coordinates\":[[[{:.3f},{:.3f}],[{:.3f},{:.3f}],[{:.3f},{:.3f}],[{:.3f},{:.3f}],"
                         "[{:.3f},{:.3f}]]]}}}}{}\n",
                         i, X(x0), Y(y0), X(x0 + side), Y(y0 + k), X(x0 + side - k), Y(y0 + side), X(x0 - k),
                         Y(y0 + side - k), X(x0), Y(y0), i + 1 < lattice ? "," : "");
      }
      f << "]}\n";
      f.close();
      if (!f) throw_output("cannot write " + path, out_dir);
      std::cout << fmt::format("wrote {} ({} polygons)\n", path, lattice);
      return 0;
    }
    for (const bool post : {false, true}) {
      GeoTiffWriter w(out_dir + (post ? "/post.tif" : "/pre.tif"), grid, spec.bands, CV_16U);
      const int block = 256;
      for (int y = 0; y < spec.height; y += block) {
        const Window win{0, y, spec.width, std::min(block, spec.height - y)};
        // Render the row block in two halves on two threads.
        std::vector<cv::Mat> a, b;
        const int half = win.height / 2;
        std::thread t([&] { a = synth::render(spec, post, {0, y, spec.width, half}); });
        b = synth::render(spec, post, {0, y + half, spec.width, win.height - half});
        t.join();
        std::vector<cv::Mat> bands;
        for (int i = 0; i < spec.bands; ++i) {
          cv::Mat m;
          if (half > 0) cv::vconcat(a[static_cast<std::size_t>(i)], b[static_cast<std::size_t>(i)], m);
          else m = b[static_cast<std::size_t>(i)];
          bands.push_back(m);
        }
        w.write(win, bands);
      }
      w.close();
    }
    // Footprints in the scene CRS (a pre-RFC 7946 "crs" member; GDAL honours it).
    std::ofstream f(out_dir + "/buildings.geojson");
    f << "{\"type\":\"FeatureCollection\",\"crs\":{\"type\":\"name\",\"properties\":{\"name\":"
         "\"urn:ogc:def:crs:EPSG::32632\"}},\"features\":[\n";
    const auto bs = synth::buildings(spec);
    int destroyed = 0;
    for (std::size_t i = 0; i < bs.size(); ++i) {
      const auto& b = bs[i];
      destroyed += b.destroyed;
      auto X = [&](int c) { return grid.geotransform[0] + c * grid.geotransform[1]; };
      auto Y = [&](int r) { return grid.geotransform[3] + r * grid.geotransform[5]; };
      const int x0 = b.rect.x, y0 = b.rect.y, x1 = b.rect.x + b.rect.width, y1 = b.rect.y + b.rect.height;
      f << fmt::format(
          "{{\"type\":\"Feature\",\"properties\":{{\"id\":\"b{}\",\"destroyed\":{}}},\"geometry\":{{\"type\":"
          "\"Polygon\",\"coordinates\":[[[{:.3f},{:.3f}],[{:.3f},{:.3f}],[{:.3f},{:.3f}],[{:.3f},{:.3f}],[{:.3f},{:.3f}]]]}}}}{}\n",
          b.id, b.destroyed ? "true" : "false", X(x0), Y(y0), X(x1), Y(y0), X(x1), Y(y1), X(x0), Y(y1), X(x0), Y(y0),
          i + 1 < bs.size() ? "," : "");
    }
    f << "]}\n";
    f.close();
    if (!f) throw_output("cannot write buildings.geojson", out_dir);
    std::cout << fmt::format("wrote {}/pre.tif, post.tif ({} x {} px, {} bands), buildings.geojson ({} buildings, {} destroyed)\n",
                             out_dir, spec.width, spec.height, spec.bands, bs.size(), destroyed);
  } catch (const Error& e) {
    std::cerr << "aftermath-synth: " << e.what() << "\n";
    return exit_code_for(e.kind());
  }
  return 0;
}
