#include "aftermath/score/footprint_accumulator.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

#include "aftermath/core/error.hpp"
#include "aftermath/score/threshold.hpp"

namespace aftermath {

namespace {

/// Scores are summed as integers in units of 2^-24 (a float in [0.5, 1] has exactly that
/// resolution). Every partial sum is then an integer times 2^-24, exact in a double up to 2^29
/// score units, so FeatureSums::score_sum does not depend on how a feature is cut into tiles
/// nor on the merge grouping.
constexpr double kScoreQuantum = 1.0 / 16777216.0;  // 2^-24
constexpr double kScoreScale = 16777216.0;          // 2^24

std::int64_t quantise_score(float s) {
  double v = s > 0.0f ? static_cast<double>(s) : 0.0;  // NaN -> 0
  v = std::min(v, 1.0);
  return std::llround(v * kScoreScale);
}

bool finite_geometry(const Footprint& f) {
  for (const auto& ring : f.rings) {
    for (const auto& p : ring) {
      if (!std::isfinite(p.x) || !std::isfinite(p.y)) return false;
    }
  }
  return true;
}

/// Smallest integer c with c + 0.5 >= x (x finite, clamped by the caller).
long long first_col_at_or_after(double x) {
  auto c = static_cast<long long>(std::ceil(x - 0.5));
  while (static_cast<double>(c - 1) + 0.5 >= x) --c;
  while (static_cast<double>(c) + 0.5 < x) ++c;
  return c;
}

}  // namespace

void FeatureSums::merge(const FeatureSums& o) {
  inside += o.inside;
  valid += o.valid;
  changed += o.changed;
  score_sum += o.score_sum;
}

FootprintIndex::FootprintIndex(const std::vector<Footprint>& features, const TileGrid& tiles)
    : by_tile_(static_cast<std::size_t>(std::max(0, tiles.count()))) {
  if (tiles.count() <= 0) return;
  const int ts = tiles.tile_size();
  for (std::size_t i = 0; i < features.size(); ++i) {
    const cv::Rect2d& b = features[i].bbox;
    if (features[i].rings.empty()) continue;
    const double x0 = b.x, y0 = b.y, x1 = b.x + b.width, y1 = b.y + b.height;
    if (!std::isfinite(x0) || !std::isfinite(y0) || !std::isfinite(x1) || !std::isfinite(y1)) continue;
    // Open-interval overlap of the bbox with the core: a pixel of the core can only be filled if
    // its centre (>= 0.5 px inside the core) lies in the bbox, so this never misses a feature.
    if (!(x0 < tiles.width() && x1 > 0 && y0 < tiles.height() && y1 > 0)) continue;
    const int c0 = std::max(0, static_cast<int>(std::floor(std::max(x0, 0.0) / ts)) - 1);
    const int c1 = std::min(tiles.cols() - 1, static_cast<int>(std::floor(std::min(x1, double(tiles.width())) / ts)) + 1);
    const int r0 = std::max(0, static_cast<int>(std::floor(std::max(y0, 0.0) / ts)) - 1);
    const int r1 = std::min(tiles.rows() - 1, static_cast<int>(std::floor(std::min(y1, double(tiles.height())) / ts)) + 1);
    for (int tr = r0; tr <= r1; ++tr) {
      for (int tc = c0; tc <= c1; ++tc) {
        const int index = tr * tiles.cols() + tc;
        const Window core = tiles.tile(index).core;
        if (x0 < core.x + core.width && x1 > core.x && y0 < core.y + core.height && y1 > core.y) {
          by_tile_[static_cast<std::size_t>(index)].push_back(static_cast<std::int64_t>(i));
        }
      }
    }
  }
}

std::vector<FeaturePartial> accumulate_tile(const std::vector<Footprint>& features,
                                            const std::vector<std::int64_t>& ids, const Tile& tile,
                                            const cv::Mat& score, const cv::Mat& valid, const cv::Mat& mask) {
  const Window core = tile.core;
  const cv::Size size(std::max(0, core.width), std::max(0, core.height));
  if (!core.empty()) {
    if ((score.type() != CV_32F && score.type() != CV_16U) || valid.type() != CV_8U || mask.type() != CV_8U ||
        score.size() != size || valid.size() != size || mask.size() != size) {
      throw Error(ErrorKind::internal,
                  "accumulate_tile: score (CV_32F or CV_16U codes), valid and mask (CV_8U) must be core-sized",
                  "score", {}, tile.index);
    }
  }
  std::vector<FeaturePartial> out;
  out.reserve(ids.size());
  struct Edge {
    double x0, y0, x1, y1;
  };
  std::vector<Edge> edges;
  std::vector<double> xs;
  for (const std::int64_t id : ids) {
    if (id < 0 || static_cast<std::size_t>(id) >= features.size()) {
      throw Error(ErrorKind::internal, "accumulate_tile: feature id out of range", "score", {}, tile.index);
    }
    FeaturePartial part;
    part.feature = id;
    const Footprint& f = features[static_cast<std::size_t>(id)];
    if (core.empty() || !finite_geometry(f)) {
      out.push_back(part);
      continue;
    }
    // Edges of every ring (closing edge included; a repeated closing vertex gives a horizontal
    // zero-length edge, which the half-open rule never counts).
    edges.clear();
    double ymin = std::numeric_limits<double>::infinity(), ymax = -ymin;
    for (const auto& ring : f.rings) {
      if (ring.size() < 3) continue;
      for (std::size_t k = 0, n = ring.size(); k < n; ++k) {
        const cv::Point2d& p = ring[k];
        const cv::Point2d& q = ring[(k + 1) % n];
        if (p.y == q.y) continue;  // never crossed under the half-open rule
        edges.push_back({p.x, p.y, q.x, q.y});
        ymin = std::min({ymin, p.y, q.y});
        ymax = std::max({ymax, p.y, q.y});
      }
    }
    if (edges.empty()) {
      out.push_back(part);
      continue;
    }
    // Rows whose centre r + 0.5 lies in [ymin, ymax], clipped to the core.
    const double ry0 = std::clamp(std::floor(ymin - 0.5) - 1.0, double(core.y), double(core.y + core.height));
    const double ry1 = std::clamp(std::ceil(ymax - 0.5) + 1.0, double(core.y - 1), double(core.y + core.height - 1));
    const int row0 = static_cast<int>(ry0), row1 = static_cast<int>(ry1);
    std::int64_t qsum = 0;
    for (int r = row0; r <= row1; ++r) {
      const double y = r + 0.5;
      xs.clear();
      for (const Edge& e : edges) {
        if ((e.y0 <= y) != (e.y1 <= y)) xs.push_back(e.x0 + (y - e.y0) * (e.x1 - e.x0) / (e.y1 - e.y0));
      }
      if (xs.size() < 2) continue;
      std::sort(xs.begin(), xs.end());
      const int lr = r - core.y;
      const bool codes = score.type() == CV_16U;
      const auto* sp = codes ? nullptr : score.ptr<float>(lr);
      const auto* qp = codes ? score.ptr<std::uint16_t>(lr) : nullptr;
      const auto* vp = valid.ptr<std::uint8_t>(lr);
      const auto* mp = mask.ptr<std::uint8_t>(lr);
      const double lo_clip = core.x - 2.0, hi_clip = core.x + core.width + 2.0;
      for (std::size_t k = 0; k + 1 < xs.size(); k += 2) {
        const double xa = std::clamp(xs[k], lo_clip, hi_clip);
        const double xb = std::clamp(xs[k + 1], lo_clip, hi_clip);
        // Columns c with xa <= c + 0.5 < xb.
        long long c0 = first_col_at_or_after(xa);
        long long c1 = first_col_at_or_after(xb) - 1;
        c0 = std::max<long long>(c0, core.x);
        c1 = std::min<long long>(c1, core.x + core.width - 1);
        for (long long c = c0; c <= c1; ++c) {
          const int lc = static_cast<int>(c - core.x);
          ++part.sums.inside;
          if (vp[lc] != 0) {
            ++part.sums.valid;
            // A code is score x 2^16: in 2^-24 units exactly code x 256 (= quantise_score of it).
            qsum += codes ? static_cast<std::int64_t>(qp[lc]) * 256 : quantise_score(sp[lc]);
            if (mp[lc] == kMaskChanged) ++part.sums.changed;
          }
        }
      }
    }
    part.sums.score_sum = static_cast<double>(qsum) * kScoreQuantum;
    out.push_back(part);
  }
  return out;
}

namespace {

double metric_of(const FeatureResult& r, const DamageConfig& config) {
  if (config.metric == "changed_fraction") return r.changed_fraction;
  if (config.metric == "mean_score") return r.mean_score;
  throw Error(ErrorKind::usage,
              "unknown damage metric '" + config.metric + "' (damage.metric; known: changed_fraction, mean_score)");
}

}  // namespace

FeatureResult classify_feature(const Footprint& feature, const FeatureSums& sums, const DamageConfig& config) {
  FeatureResult r;
  r.sums = sums;
  const auto d = [](std::int64_t v) { return static_cast<double>(v); };
  if (sums.inside > 0) {
    r.coverage = feature.area_px > 0 ? std::clamp(d(sums.inside) / feature.area_px, 0.0, 1.0) : 1.0;
    r.valid_fraction = d(sums.valid) / d(sums.inside);
  }
  if (sums.valid > 0) {
    r.changed_fraction = d(sums.changed) / d(sums.valid);
    r.mean_score = sums.score_sum / d(sums.valid);
  }
  const double metric = metric_of(r, config);  // validates the metric name even when not scored
  if (sums.inside <= 0) {
    r.status = FeatureStatus::outside;
    r.damage = DamageClass::unclassified;
    r.confidence = 0;
    return r;
  }
  if (sums.valid <= 0 || r.valid_fraction < config.min_valid_fraction) {
    r.status = FeatureStatus::no_data;
    r.damage = DamageClass::unclassified;
    r.confidence = 0;
    return r;
  }
  r.status = FeatureStatus::scored;
  if (metric >= config.destroyed) {
    r.damage = DamageClass::destroyed;
  } else if (metric >= config.major) {
    r.damage = DamageClass::major;
  } else if (metric >= config.minor) {
    r.damage = DamageClass::minor;
  } else {
    r.damage = DamageClass::no_damage;
  }
  const double nearest = std::min({std::abs(metric - config.minor), std::abs(metric - config.major),
                                   std::abs(metric - config.destroyed)});
  r.confidence = std::clamp(nearest / 0.1, 0.0, 1.0);
  return r;
}

void FootprintAccumulator::add(const std::vector<FeaturePartial>& partials) {
  for (const auto& p : partials) {
    if (p.feature < 0 || static_cast<std::size_t>(p.feature) >= sums_.size()) {
      throw Error(ErrorKind::internal, "FootprintAccumulator::add: feature id out of range");
    }
    sums_[static_cast<std::size_t>(p.feature)].merge(p.sums);
  }
}

namespace {

template <typename T>
void put(std::vector<std::uint8_t>& out, const T& v) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(&v);
  out.insert(out.end(), p, p + sizeof(T));
}

template <typename T>
T take(const std::vector<std::uint8_t>& in, std::size_t& pos) {
  if (in.size() - pos < sizeof(T)) throw Error(ErrorKind::internal, "FootprintAccumulator: truncated state");
  T v;
  std::memcpy(&v, in.data() + pos, sizeof(T));
  pos += sizeof(T);
  return v;
}

}  // namespace

std::vector<std::uint8_t> FootprintAccumulator::serialize() const {
  std::vector<std::uint8_t> out;
  out.reserve(8 + sums_.size() * 32);
  put(out, static_cast<std::uint64_t>(sums_.size()));
  for (const auto& s : sums_) {
    put(out, s.inside);
    put(out, s.valid);
    put(out, s.changed);
    put(out, s.score_sum);
  }
  return out;
}

void FootprintAccumulator::merge_serialized(const std::vector<std::uint8_t>& bytes) {
  std::size_t pos = 0;
  if (take<std::uint64_t>(bytes, pos) != sums_.size()) {
    throw Error(ErrorKind::internal, "FootprintAccumulator::merge_serialized: feature count differs");
  }
  for (auto& s : sums_) {
    FeatureSums o;
    o.inside = take<std::int64_t>(bytes, pos);
    o.valid = take<std::int64_t>(bytes, pos);
    o.changed = take<std::int64_t>(bytes, pos);
    o.score_sum = take<double>(bytes, pos);
    s.merge(o);
  }
  if (pos != bytes.size()) throw Error(ErrorKind::internal, "FootprintAccumulator::merge_serialized: trailing bytes");
}

std::vector<FeatureResult> FootprintAccumulator::finalize(const std::vector<Footprint>& features,
                                                          const DamageConfig& config) const {
  if (features.size() != sums_.size()) {
    throw Error(ErrorKind::internal, "FootprintAccumulator::finalize: feature count differs from the accumulator's");
  }
  std::vector<FeatureResult> out;
  out.reserve(features.size());
  for (std::size_t i = 0; i < features.size(); ++i) out.push_back(classify_feature(features[i], sums_[i], config));
  return out;
}

}  // namespace aftermath
