#pragma once
/// @file footprints.hpp
/// Feature sources (GeoJSON, GeoPackage, Shapefile, any OGR vector, and xBD label JSON),
/// reprojected into analysis-grid pixel coordinates.
#include <string>
#include <vector>

#include "aftermath/config/config.hpp"
#include "aftermath/core/footprint.hpp"
#include "aftermath/core/grid.hpp"

namespace aftermath {

struct FootprintOptions {
  std::string layer;     ///< OGR layer name; "" = the only layer (several layers -> error listing them)
  std::string id_field;  ///< attribute used as source id; "" = "id"/"uid" if present, else the FID
  FeaturesConfig features;  ///< kind rules, line widths, point radius, segment length
};

struct FootprintSet {
  std::vector<Footprint> features;    ///< ids 0..n-1 in input order of the kept features
  std::vector<std::string> warnings;  ///< one per skipped or repaired feature, naming its id
};

/// Reads features from `path` into `grid` pixel coordinates. Each feature's kind comes from the
/// first rule of options.features.kinds its attributes match. Polygons and multipolygons (holes
/// kept) are scored as they are; an unmatched polygon is a building. Lines that a rule matches are
/// cut into segments of at most features.segment_length_m, each buffered into a corridor of the
/// width attribute or the kind's default width (one feature per segment, `segment` 0, 1, ...);
/// points that a rule matches become discs of features.point_radius_m. Unmatched lines and points
/// are skipped with a warning (a file of nothing else is an error). Widths are in metres on a
/// georeferenced grid (pixel_size_in_metres), in pixels on a plain pixel grid.
/// xBD label JSON is recognised by content: with a georeferenced grid its `lng_lat` polygons are
/// used, with a plain pixel grid its `xy` polygons; the `subtype` becomes Footprint::truth.
/// Invalid geometries are repaired (MakeValid) or skipped with a warning naming the feature;
/// null/empty geometries are skipped with a warning. Duplicate source ids are renumbered
/// ("a", "a~2", "a~3", in input order) with one warning. Throws Error(input) for an unreadable,
/// empty or malformed file, several layers without a choice, or coordinates out of range for the CRS.
/// Whether `path` is an xBD label JSON (a "features" object with "xy" and "lng_lat" arrays),
/// whatever the order of its members.
bool is_xbd_label_file(const std::string& path);

FootprintSet read_footprints(const std::string& path, const Grid& grid,
                             const FootprintOptions& options = {});

}  // namespace aftermath
