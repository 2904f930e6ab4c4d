#include "aftermath/core/footprint.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace aftermath {

const char* to_string(FeatureKind k) {
  switch (k) {
    case FeatureKind::building: return "building";
    case FeatureKind::road: return "road";
    case FeatureKind::other: return "other";
  }
  return "other";
}

const char* to_string(DamageClass c) {
  switch (c) {
    case DamageClass::no_damage: return "no-damage";
    case DamageClass::minor: return "minor-damage";
    case DamageClass::major: return "major-damage";
    case DamageClass::destroyed: return "destroyed";
    case DamageClass::unclassified: return "un-classified";
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
    case FeatureStatus::scored: return "scored";
    case FeatureStatus::no_data: return "no-data";
    case FeatureStatus::outside: return "outside";
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
      x0 = std::min(x0, p.x), y0 = std::min(y0, p.y), x1 = std::max(x1, p.x), y1 = std::max(y1, p.y);
    }
    areas.push_back(std::abs(a) / 2);
  }
  // Nesting parity by testing one vertex of each ring against the others.
  double area = 0;
  for (std::size_t i = 0; i < f.rings.size(); ++i) {
    if (f.rings[i].empty()) continue;
    const cv::Point2d p = f.rings[i][0];
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
  f.bbox = f.rings.empty() ? cv::Rect2d() : cv::Rect2d(x0, y0, x1 - x0, y1 - y0);
}

}  // namespace aftermath
