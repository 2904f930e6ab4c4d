#pragma once
/// @file footprint.hpp
/// Features (buildings, roads, other infrastructure) in analysis-grid pixel coordinates, and the
/// damage classes and statuses given to them.
#include <cstdint>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace aftermath {

enum class FeatureKind : std::uint8_t { building = 0, road = 1, other = 2 };
const char* to_string(FeatureKind k);

/// xBD damage scale. Values are stored as such in the output (flag_values 0..3).
enum class DamageClass : std::uint8_t {
  no_damage = 0,
  minor = 1,
  major = 2,
  destroyed = 3,
  unclassified = 255,  ///< status is not `scored`, or the truth says "un-classified"
};
const char* to_string(DamageClass c);
/// Parses xBD subtypes ("no-damage", "minor-damage", "major-damage", "destroyed",
/// "un-classified"); returns unclassified for anything else.
DamageClass damage_class_from_xbd(const std::string& subtype);

/// Why a feature has (or has no) class. A feature outside the scene or without valid pixels is
/// never "undamaged".
enum class FeatureStatus : std::uint8_t { scored = 0, no_data = 1, outside = 2 };
const char* to_string(FeatureStatus s);

/// One feature. Geometry is in analysis-grid pixel coordinates (x = column, y = row, pixel
/// corners at integers, so the centre of pixel (c,r) is (c+0.5, r+0.5)). `rings` holds every
/// ring of every polygon (outer rings and holes); filling them with the even-odd rule gives the
/// covered area.
struct Footprint {
  std::int64_t id = 0;        ///< row in the output table, 0-based, in input order
  std::string source_id;      ///< the id in the source (attribute or FID), for users
  FeatureKind kind = FeatureKind::building;
  std::vector<std::vector<cv::Point2d>> rings;
  cv::Rect2d bbox;            ///< bounding box of all rings, pixel coordinates
  double area_px = 0;         ///< polygon area (even-odd), square pixels of the analysis grid
  DamageClass truth = DamageClass::unclassified;  ///< a class carried by the source, if any
  /// The geometry as WKT in the analysis grid's CRS (map units; pixel units for a plain pixel
  /// grid), for outputs (exports, the /footprints table). May be empty.
  std::string wkt;
};

/// Computes bbox and area_px from rings.
void finalize_geometry(Footprint& f);

}  // namespace aftermath
