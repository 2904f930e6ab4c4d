#include "aftermath/core/grid.hpp"

#include <algorithm>
#include <cmath>

#include "aftermath/core/error.hpp"

namespace aftermath {

cv::Point2d Grid::pixel_to_map(double col, double row) const {
  const auto& g = geotransform;
  return {g[0] + col * g[1] + row * g[2], g[3] + col * g[4] + row * g[5]};
}

cv::Point2d Grid::map_to_pixel(double x, double y) const {
  const auto& g = geotransform;
  const double det = g[1] * g[5] - g[2] * g[4];
  if (det == 0 || !std::isfinite(det)) {
    throw Error(ErrorKind::internal, "singular geotransform");
  }
  const double dx = x - g[0], dy = y - g[3];
  return {(g[5] * dx - g[2] * dy) / det, (-g[4] * dx + g[1] * dy) / det};
}

double Grid::pixel_area() const {
  const auto& g = geotransform;
  return std::abs(g[1] * g[5] - g[2] * g[4]);
}

Window Window::intersect(const Window& o) const {
  const int x0 = std::max(x, o.x), y0 = std::max(y, o.y);
  const int x1 = std::min(x + width, o.x + o.width), y1 = std::min(y + height, o.y + o.height);
  if (x1 <= x0 || y1 <= y0) return {x0, y0, 0, 0};
  return {x0, y0, x1 - x0, y1 - y0};
}

TileGrid::TileGrid(int width, int height, int tile_size, int halo)
    : width_(width), height_(height), tile_size_(tile_size), halo_(halo) {
  if (width <= 0 || height <= 0 || tile_size <= 0 || halo < 0) {
    throw Error(ErrorKind::internal, "invalid tile grid");
  }
  cols_ = (width + tile_size - 1) / tile_size;
  rows_ = (height + tile_size - 1) / tile_size;
}

Tile TileGrid::tile(int index) const {
  Tile t;
  t.index = index;
  t.row = index / cols_;
  t.col = index % cols_;
  t.core = Window{t.col * tile_size_, t.row * tile_size_, 0, 0};
  t.core.width = std::min(tile_size_, width_ - t.core.x);
  t.core.height = std::min(tile_size_, height_ - t.core.y);
  t.outer = t.core.grown(halo_).intersect(Window{0, 0, width_, height_});
  return t;
}

}  // namespace aftermath
