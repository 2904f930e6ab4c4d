#pragma once
/// @file truth.hpp
/// Reference labels for `evaluate`: xBD label JSON, vector polygons or points with a damage class
/// (GeoJSON, GeoPackage, any OGR vector), or a change-mask raster (read with SceneReader).
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "aftermath/core/footprint.hpp"
#include "aftermath/core/grid.hpp"

namespace aftermath {

struct TruthItems {
  std::string kind;                 ///< "xbd", "polygons" or "points"
  std::vector<cv::Point2d> points;  ///< grid pixel coordinates: the point, or a point inside the polygon (OGR PointOnSurface)
  std::vector<DamageClass> classes; ///< per item; unclassified when the class is missing or unknown
  std::vector<std::string> warnings;
};

/// Damage class of a label value: xBD subtypes (no-damage, minor-damage, major-damage, destroyed),
/// UNOSAT-style words (No Visible Damage / no damage -> 0, Possible / Moderate Damage -> 1, Severe
/// Damage -> 2, Destroyed -> 3, case-insensitive) or the integers 0..3; anything else unclassified.
DamageClass damage_class_from_label(const std::string& value);

/// True if `path` looks like a vector file (xBD JSON, GeoJSON, GeoPackage, Shapefile...) rather than
/// a raster (by what GDAL can open it as).
bool is_vector_truth(const std::string& path);

/// Reads vector truth onto `grid`: xBD label JSON (its subtype), or an OGR layer whose class is the
/// attribute `field` ("" = subtype, then damage). Polygons become a point inside them, points stay
/// points; reprojected to the grid's CRS. Throws Error(input) on an unreadable file or a missing
/// field.
TruthItems read_truth_vector(const std::string& path, const Grid& grid, const std::string& field,
                             const std::string& layer);

}  // namespace aftermath
