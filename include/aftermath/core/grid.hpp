#pragma once
/// @file grid.hpp
/// The analysis grid, windows on it and the tile grid that splits it.
#include <array>
#include <cstdint>
#include <string>

#include <opencv2/core.hpp>

namespace aftermath {

/// A raster grid: CRS, geotransform and size.
/// The geotransform follows GDAL: map_x = gt[0] + col*gt[1] + row*gt[2],
/// map_y = gt[3] + col*gt[4] + row*gt[5]; (col,row) = (0,0) is the top-left corner of the
/// top-left pixel, so the centre of pixel (c,r) is at (c+0.5, r+0.5).
/// An empty `crs_wkt` means a plain pixel grid (a non-georeferenced pair of equal size).
struct Grid {
  std::string crs_wkt;                                  ///< WKT of the CRS, or "" for a pixel grid
  std::array<double, 6> geotransform{0, 1, 0, 0, 0, 1};  ///< GDAL order, CRS units per pixel
  int width = 0;                                        ///< columns, pixels
  int height = 0;                                       ///< rows, pixels

  bool georeferenced() const { return !crs_wkt.empty(); }
  std::int64_t pixel_count() const { return std::int64_t(width) * height; }
  /// Map coordinates of the pixel-space point (col,row) (corner convention above).
  cv::Point2d pixel_to_map(double col, double row) const;
  /// Inverse of pixel_to_map; throws if the geotransform is singular.
  cv::Point2d map_to_pixel(double x, double y) const;
  /// Area of one pixel in CRS units squared (|det| of the linear part).
  double pixel_area() const;
};

/// A rectangle of pixels on a grid: [x, x+width) x [y, y+height). May extend beyond the grid
/// (reads outside the grid return invalid pixels).
struct Window {
  int x = 0;
  int y = 0;
  int width = 0;
  int height = 0;

  bool empty() const { return width <= 0 || height <= 0; }
  std::int64_t area() const { return empty() ? 0 : std::int64_t(width) * height; }
  cv::Rect rect() const { return {x, y, width, height}; }
  Window intersect(const Window& o) const;
  /// This window grown by `margin` pixels on every side.
  Window grown(int margin) const { return {x - margin, y - margin, width + 2 * margin, height + 2 * margin}; }
  bool operator==(const Window&) const = default;
};

/// One tile: the core it owns (results are written for the core only) and the outer window,
/// the core plus a halo for neighbourhood operators, clamped to the grid.
struct Tile {
  int index = 0;  ///< row-major position in the TileGrid, the order of the write stage
  int row = 0;
  int col = 0;
  Window core;
  Window outer;
  /// The core's position inside the outer window.
  cv::Rect core_in_outer() const { return {core.x - outer.x, core.y - outer.y, core.width, core.height}; }
};

/// Splits a width x height grid into square tiles of `tile_size` px (edge tiles smaller) with a
/// halo of `halo` px. A small scene is one tile: there is no other code path.
class TileGrid {
 public:
  TileGrid() = default;
  TileGrid(int width, int height, int tile_size, int halo);
  int count() const { return rows_ * cols_; }
  int rows() const { return rows_; }
  int cols() const { return cols_; }
  int tile_size() const { return tile_size_; }
  int halo() const { return halo_; }
  int width() const { return width_; }
  int height() const { return height_; }
  Tile tile(int index) const;

 private:
  int width_ = 0, height_ = 0, tile_size_ = 0, halo_ = 0, rows_ = 0, cols_ = 0;
};

}  // namespace aftermath
