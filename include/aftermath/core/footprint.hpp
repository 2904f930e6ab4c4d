#pragma once
/// @file footprint.hpp
/// Features (buildings, roads, other infrastructure) in analysis-grid pixel coordinates, and the
/// damage classes and statuses given to them.
#include <cstdint>
#include <opencv2/core.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace aftermath {

/// What a feature is (stored as these values; flag_meanings "building road infrastructure rail").
enum class FeatureKind : std::uint8_t { building = 0, road = 1, infrastructure = 2, rail = 3 };
const char* to_string(FeatureKind k);
/// Parses "building", "road", "infrastructure", "rail".
std::optional<FeatureKind> feature_kind_from_string(std::string_view name);

/// The geometry a feature came with: polygons are scored as they are; lines (cut into segments)
/// and points are buffered into a corridor or disc.
enum class SourceGeometry : std::uint8_t { polygon = 0, line = 1, point = 2 };
const char* to_string(SourceGeometry g);

/// One rule of features.kinds: "attribute=value|value|*:kind". `values` empty = any value.
struct KindRule {
  std::string attribute;
  std::vector<std::string> values;
  FeatureKind kind = FeatureKind::building;
  bool matches(const std::string& attribute_value) const;
};
/// Parses a rule; on a malformed rule returns nullopt and sets `problem`.
std::optional<KindRule> parse_kind_rule(std::string_view text, std::string& problem);

/// Damage class schemes. xBD: 0 no-damage, 1 minor, 2 major, 3 destroyed. UNOSAT: 0 no visible
/// damage, 1 possibly, 2 moderately, 3 severely damaged, 4 destroyed. 255 = no class.
enum class DamageScheme : std::uint8_t { xbd = 0, unosat = 1 };
std::optional<DamageScheme> damage_scheme_from_string(std::string_view name);
/// Number of classes of a scheme (4 or 5), and their names, CF style ("no_damage minor_damage
/// ...").
int class_count(DamageScheme scheme);
std::string class_flag_meanings(DamageScheme scheme);
/// The class of a scheme's grade on the xBD scale (for counts and evaluation against xBD labels):
/// UNOSAT possibly -> minor, moderately and severely -> major.
inline constexpr std::uint8_t kNoGrade = 255;

/// xBD damage scale. Values are stored as such in the output (flag_values 0..3).
enum class DamageClass : std::uint8_t {
  no_damage = 0,
  minor = 1,
  major = 2,
  destroyed = 3,
  unclassified = 255,  ///< status is not `scored`, or the truth says "un-classified"
};
const char* to_string(DamageClass c);
DamageClass to_xbd_class(DamageScheme scheme, std::uint8_t grade);
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
  std::int64_t id = 0;    ///< row in the output table, 0-based, in input order
  std::string source_id;  ///< the id in the source (attribute or FID), for users
  FeatureKind kind = FeatureKind::building;
  std::vector<std::vector<cv::Point2d>> rings;
  cv::Rect2d bbox;     ///< bounding box of all rings, pixel coordinates
  double area_px = 0;  ///< polygon area (even-odd), square pixels of the analysis grid
  DamageClass truth = DamageClass::unclassified;  ///< a class carried by the source, if any
  SourceGeometry source_geometry = SourceGeometry::polygon;
  /// Lines: the centerline of this segment, pixel coordinates (one polyline per part), scored by
  /// samples every half pixel along it; `rings` hold its corridor. Empty for polygons and points.
  std::vector<std::vector<cv::Point2d>> centerline;
  int segment = -1;  ///< lines: index of this segment along its source line; -1 otherwise
  /// Lines: the centerline as WKT in the grid's CRS (as `wkt`), for outputs and rescore.
  std::string centerline_wkt;
  /// The geometry as WKT in the analysis grid's CRS (map units; pixel units for a plain pixel
  /// grid), for outputs (exports, the /footprints table). May be empty.
  std::string wkt;
};

/// Computes bbox and area_px from rings (the bbox includes the centerline).
void finalize_geometry(Footprint& f);
/// Length of a feature's centerline, pixels.
double centerline_length_px(const Footprint& f);

}  // namespace aftermath
