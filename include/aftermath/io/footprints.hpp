#pragma once
/// @file footprints.hpp
/// Feature sources (GeoJSON, GeoPackage, Shapefile, any OGR vector, and xBD label JSON),
/// reprojected into analysis-grid pixel coordinates.
#include <string>
#include <vector>

#include "aftermath/core/footprint.hpp"
#include "aftermath/core/grid.hpp"

namespace aftermath {

struct FootprintOptions {
  std::string layer;     ///< OGR layer name; "" = the only layer (several layers -> error listing them)
  std::string id_field;  ///< attribute used as source id; "" = "id"/"uid" if present, else the FID
};

struct FootprintSet {
  std::vector<Footprint> features;    ///< ids 0..n-1 in input order of the kept features
  std::vector<std::string> warnings;  ///< one per skipped or repaired feature, naming its id
};

/// Reads polygons/multipolygons from `path` into `grid` pixel coordinates. xBD label JSON is
/// recognised by content: with a georeferenced grid its `lng_lat` polygons are used, with a
/// plain pixel grid its `xy` polygons; the `subtype` becomes Footprint::truth.
/// Invalid geometries are repaired (MakeValid) or skipped with a warning; null/empty geometries and
/// lines/points are skipped with a warning. Throws Error(input) for an unreadable, empty or
/// malformed file, several layers without a choice, or coordinates out of range for the CRS.
FootprintSet read_footprints(const std::string& path, const Grid& grid,
                             const FootprintOptions& options = {});

}  // namespace aftermath
