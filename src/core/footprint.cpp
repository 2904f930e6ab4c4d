#include "aftermath/core/footprint.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace aftermath {

const char* to_string(FeatureKind k) {
  switch (k) {
    case FeatureKind::building:
      return "building";
    case FeatureKind::road:
      return "road";
    case FeatureKind::infrastructure:
      return "infrastructure";
    case FeatureKind::rail:
      return "rail";
  }
  return "infrastructure";
}

std::optional<FeatureKind> feature_kind_from_string(std::string_view name) {
  for (auto k :
       {FeatureKind::building, FeatureKind::road, FeatureKind::infrastructure, FeatureKind::rail}) {
    if (name == to_string(k)) return k;
  }
  return std::nullopt;
}

const char* to_string(SourceGeometry g) {
  switch (g) {
    case SourceGeometry::polygon:
      return "polygon";
    case SourceGeometry::line:
      return "line";
    case SourceGeometry::point:
      return "point";
  }
  return "polygon";
}

bool KindRule::matches(const std::string& value) const {
  if (value.empty()) return false;
  if (values.empty()) return value != "no";  // OSM: building=no is not a building
  return std::find(values.begin(), values.end(), value) != values.end();
}

std::optional<KindRule> parse_kind_rule(std::string_view text, std::string& problem) {
  const auto eq = text.find('=');
  const auto colon = text.rfind(':');
  if (eq == std::string_view::npos || colon == std::string_view::npos || colon < eq) {
    problem = "expected attribute=value|value|*:kind";
    return std::nullopt;
  }
  KindRule rule;
  rule.attribute = std::string(text.substr(0, eq));
  if (rule.attribute.empty()) {
    problem = "empty attribute name";
    return std::nullopt;
  }
  const auto kind = feature_kind_from_string(text.substr(colon + 1));
  if (!kind) {
    problem = "unknown kind '" + std::string(text.substr(colon + 1)) +
              "' (known: building, road, rail, infrastructure)";
    return std::nullopt;
  }
  rule.kind = *kind;
  const std::string_view values = text.substr(eq + 1, colon - eq - 1);
  if (values.empty()) {
    problem = "no value (use * for any value)";
    return std::nullopt;
  }
  if (values != "*") {
    std::size_t start = 0;
    while (start <= values.size()) {
      const auto bar = values.find('|', start);
      const auto v = values.substr(
          start, bar == std::string_view::npos ? std::string_view::npos : bar - start);
      if (v.empty()) {
        problem = "empty value between '|'";
        return std::nullopt;
      }
      rule.values.emplace_back(v);
      if (bar == std::string_view::npos) break;
      start = bar + 1;
    }
  }
  return rule;
}

std::optional<DamageScheme> damage_scheme_from_string(std::string_view name) {
  if (name == "xbd") return DamageScheme::xbd;
  if (name == "unosat") return DamageScheme::unosat;
  return std::nullopt;
}

int class_count(DamageScheme scheme) { return scheme == DamageScheme::unosat ? 5 : 4; }

std::string class_flag_meanings(DamageScheme scheme) {
  return scheme == DamageScheme::unosat
             ? "no_visible_damage possibly_damaged moderately_damaged severely_damaged destroyed"
             : "no_damage minor_damage major_damage destroyed";
}

DamageClass to_xbd_class(DamageScheme scheme, std::uint8_t grade) {
  if (grade == kNoGrade) return DamageClass::unclassified;
  if (scheme == DamageScheme::xbd)
    return grade <= 3 ? static_cast<DamageClass>(grade) : DamageClass::unclassified;
  switch (grade) {
    case 0:
      return DamageClass::no_damage;
    case 1:
      return DamageClass::minor;
    case 2:
    case 3:
      return DamageClass::major;
    case 4:
      return DamageClass::destroyed;
    default:
      return DamageClass::unclassified;
  }
}

const char* to_string(DamageClass c) {
  switch (c) {
    case DamageClass::no_damage:
      return "no-damage";
    case DamageClass::minor:
      return "minor-damage";
    case DamageClass::major:
      return "major-damage";
    case DamageClass::destroyed:
      return "destroyed";
    case DamageClass::unclassified:
      return "un-classified";
  }
  return "un-classified";
}

DamageClass damage_class_from_xbd(const std::string& s) {
  if (s == "no-damage") return DamageClass::no_damage;
  if (s == "minor-damage") return DamageClass::minor;
  if (s == "major-damage") return DamageClass::major;
  if (s == "destroyed") return DamageClass::destroyed;
  return DamageClass::unclassified;
}

const char* to_string(FeatureStatus s) {
  switch (s) {
    case FeatureStatus::scored:
      return "scored";
    case FeatureStatus::no_data:
      return "no-data";
    case FeatureStatus::outside:
      return "outside";
  }
  return "outside";
}

void finalize_geometry(Footprint& f) {
  double x0 = std::numeric_limits<double>::infinity(), y0 = x0, x1 = -x0, y1 = -x0;
  // Even-odd area: rings of one feature do not overlap except holes inside outers, and the
  // signed shoelace areas of a hole and its outer have opposite orientation only if the source
  // says so; the absolute-area difference works for both orientations: outer rings are the
  // largest containers, so sum |outer| - sum |hole| by nesting parity.
  std::vector<double> areas;
  for (const auto& ring : f.rings) {
    double a = 0;
    for (std::size_t i = 0, n = ring.size(); i < n; ++i) {
      const auto& p = ring[i];
      const auto& q = ring[(i + 1) % n];
      a += p.x * q.y - q.x * p.y;
      x0 = std::min(x0, p.x), y0 = std::min(y0, p.y), x1 = std::max(x1, p.x),
      y1 = std::max(y1, p.y);
    }
    areas.push_back(std::abs(a) / 2);
  }
  // Nesting parity by testing one vertex of each ring against the others.
  double area = 0;
  for (std::size_t i = 0; i < f.rings.size(); ++i) {
    if (f.rings[i].empty()) continue;
    // The midpoint of the ring's first edge: unlike a vertex, it is not on another ring where a
    // hole touches its outer ring at a corner (valid OGC, and what pixel-edge outlines give).
    const cv::Point2d p = 0.5 * (f.rings[i][0] + f.rings[i][1 % f.rings[i].size()]);
    int depth = 0;
    for (std::size_t j = 0; j < f.rings.size(); ++j) {
      if (i == j || f.rings[j].size() < 3) continue;
      bool in = false;
      const auto& r = f.rings[j];
      for (std::size_t k = 0, n = r.size(), m = n - 1; k < n; m = k++) {
        if (((r[k].y > p.y) != (r[m].y > p.y)) &&
            (p.x < (r[m].x - r[k].x) * (p.y - r[k].y) / (r[m].y - r[k].y) + r[k].x)) {
          in = !in;
        }
      }
      depth += in ? 1 : 0;
    }
    area += (depth % 2 == 0) ? areas[i] : -areas[i];
  }
  f.area_px = std::max(0.0, area);
  for (const auto& part : f.centerline) {
    for (const auto& p : part) {
      x0 = std::min(x0, p.x), y0 = std::min(y0, p.y), x1 = std::max(x1, p.x),
      y1 = std::max(y1, p.y);
    }
  }
  f.bbox =
      f.rings.empty() && f.centerline.empty() ? cv::Rect2d() : cv::Rect2d(x0, y0, x1 - x0, y1 - y0);
}

double centerline_length_px(const Footprint& f) {
  double length = 0;
  for (const auto& part : f.centerline) {
    for (std::size_t i = 1; i < part.size(); ++i) length += cv::norm(part[i] - part[i - 1]);
  }
  return length;
}

}  // namespace aftermath
