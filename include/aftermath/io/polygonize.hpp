#pragma once
/// @file polygonize.hpp
/// Outlines of damage sites (GDALPolygonize over the site's own pixels).
#include <opencv2/core.hpp>
#include <string>

#include "aftermath/core/grid.hpp"

namespace aftermath {

/// The outline of the non-zero pixels of `pixels` (CV_8U; its pixel (0,0) is grid pixel `origin`)
/// as WKT in the grid's CRS (pixel units on a plain pixel grid), following pixel edges: a POLYGON
/// (with holes where unchanged pixels are enclosed) for 4-connected pixels, a MULTIPOLYGON
/// otherwise. Throws Error(internal) if GDAL cannot polygonise it.
std::string outline_wkt(const cv::Mat& pixels, cv::Point origin, const Grid& grid);

}  // namespace aftermath
