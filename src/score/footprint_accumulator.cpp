#include "aftermath/score/footprint_accumulator.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

#include "aftermath/core/error.hpp"
#include "aftermath/core/simd.hpp"
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
  misregistration_sum += o.misregistration_sum;
  misregistration_pixels += o.misregistration_pixels;
  line_samples += o.line_samples;
  line_valid += o.line_valid;
  line_changed += o.line_changed;
}

FootprintIndex::FootprintIndex(const std::vector<Footprint>& features, const TileGrid& tiles)
    : by_tile_(static_cast<std::size_t>(std::max(0, tiles.count()))),
      tile_counts_(features.size(), 0) {
  if (tiles.count() <= 0) return;
  const int ts = tiles.tile_size();
  for (std::size_t i = 0; i < features.size(); ++i) {
    const cv::Rect2d& b = features[i].bbox;
    if (features[i].rings.empty()) continue;
    const double x0 = b.x, y0 = b.y, x1 = b.x + b.width, y1 = b.y + b.height;
    if (!std::isfinite(x0) || !std::isfinite(y0) || !std::isfinite(x1) || !std::isfinite(y1))
      continue;
    // Open-interval overlap of the bbox with the core: a pixel of the core can only be filled if
    // its centre (>= 0.5 px inside the core) lies in the bbox, so this never misses a feature.
    if (!(x0 < tiles.width() && x1 > 0 && y0 < tiles.height() && y1 > 0)) continue;
    const int c0 = std::max(0, static_cast<int>(std::floor(std::max(x0, 0.0) / ts)) - 1);
    const int c1 =
        std::min(tiles.cols() - 1,
                 static_cast<int>(std::floor(std::min(x1, double(tiles.width())) / ts)) + 1);
    const int r0 = std::max(0, static_cast<int>(std::floor(std::max(y0, 0.0) / ts)) - 1);
    const int r1 =
        std::min(tiles.rows() - 1,
                 static_cast<int>(std::floor(std::min(y1, double(tiles.height())) / ts)) + 1);
    for (int tr = r0; tr <= r1; ++tr) {
      for (int tc = c0; tc <= c1; ++tc) {
        const int index = tr * tiles.cols() + tc;
        const Window core = tiles.tile(index).core;
        if (x0 < core.x + core.width && x1 > core.x && y0 < core.y + core.height && y1 > core.y) {
          by_tile_[static_cast<std::size_t>(index)].push_back(static_cast<std::int64_t>(i));
          ++tile_counts_[i];
        }
      }
    }
  }
}

namespace {

std::uint16_t code_of(float s) {
  if (!(s > 0.0f)) return 0;  // NaN, negatives
  const double c = std::round(static_cast<double>(s) * 65536.0);
  return static_cast<std::uint16_t>(std::min(c, static_cast<double>(kScoreCodeMax)));
}

/// Samples every half pixel along each part of a centerline (at the middle of equal steps, so
/// the samples do not depend on tiling); counts those whose pixel lies in the core.
void sample_centerline(const Footprint& f, const Window& core, const cv::Mat& valid,
                       const cv::Mat& mask, FeatureSums& sums) {
  std::vector<double> cum;
  for (const auto& part : f.centerline) {
    if (part.size() < 2) continue;
    cum.assign(1, 0.0);
    for (std::size_t i = 1; i < part.size(); ++i)
      cum.push_back(cum.back() + cv::norm(part[i] - part[i - 1]));
    const double length = cum.back();
    if (!(length > 0) || !std::isfinite(length)) continue;
    const auto n = std::max<std::int64_t>(1, std::llround(length / 0.5));
    const double step = length / static_cast<double>(n);
    std::size_t j = 0;
    for (std::int64_t k = 0; k < n; ++k) {
      const double s = (static_cast<double>(k) + 0.5) * step;
      while (j + 2 < cum.size() && cum[j + 1] < s) ++j;
      const double seg = cum[j + 1] - cum[j];
      const double t = seg > 0 ? std::clamp((s - cum[j]) / seg, 0.0, 1.0) : 0.0;
      const cv::Point2d p = part[j] + t * (part[j + 1] - part[j]);
      const double fx = std::floor(p.x), fy = std::floor(p.y);
      if (fx < core.x || fx >= core.x + core.width || fy < core.y || fy >= core.y + core.height)
        continue;
      const int lc = static_cast<int>(fx) - core.x, lr = static_cast<int>(fy) - core.y;
      ++sums.line_samples;
      if (valid.at<std::uint8_t>(lr, lc) != 0) {
        ++sums.line_valid;
        if (mask.at<std::uint8_t>(lr, lc) == kMaskChanged) ++sums.line_changed;
      }
    }
  }
}

/// Adds the misregistration of the valid pixels lc0..lc1 of one row to `sums`: the values that
/// are finite and >= 0 (-1 is the layer's no-value), in 2^-16 px. v = d x 2^16 has at most 24
/// significant bits, so v + 0.5 is exact below 2^52 (and v an integer above): its truncation is
/// llround(v), without the library call per pixel. A pixel that does not count adds 0.
void add_misregistration_span(const std::uint8_t* vp, const float* dp, int lc0, int lc1,
                              FeatureSums& sums) {
  std::int64_t misreg_sum = 0, misreg_px = 0;
  for (int lc = lc0; lc <= lc1; ++lc) {
    const double d = dp[lc];
    const bool counts = (vp[lc] != 0) & (d >= 0) & (d <= std::numeric_limits<double>::max());
    misreg_sum += static_cast<std::int64_t>((counts ? d : 0.0) * 65536.0 + 0.5);
    misreg_px += counts;
  }
  sums.misregistration_sum += misreg_sum;
  sums.misregistration_pixels += misreg_px;
}

/// Adds the pixels lc0..lc1 of one row of stored codes to `sums` (valid, changed and the
/// misregistration when `dp` is set), their codes' sum to `qsum` (in 2^-24 units: a code is
/// score x 2^16, so exactly code x 256 = quantise_score of its score) and the valid pixels' codes
/// to `out` when set. Branch-free passes over the row with their sums in locals: the counts and
/// the codes' sum (they vectorise), the misregistration, the codes. One loop doing it all, with
/// the sums in memory and a push_back per code, took 14 ns a pixel.
AFTERMATH_AVX2_CLONES void add_code_span(const std::uint16_t* qp, const std::uint8_t* vp,
                                         const std::uint8_t* mp, const float* dp, int lc0, int lc1,
                                         std::vector<std::uint16_t>* out, std::int64_t& qsum,
                                         FeatureSums& sums) {
  // 32-bit lanes (they vectorise), summed in pieces of 2^16 pixels: 65535 x 2^16 < 2^32.
  for (int p0 = lc0; p0 <= lc1; p0 += 65536) {
    const int p1 = std::min(lc1, p0 + 65535);
    std::uint32_t valid = 0, changed = 0, code_sum = 0;
    for (int lc = p0; lc <= p1; ++lc) {
      const std::uint32_t v = vp[lc] != 0;
      valid += v;
      code_sum += (0u - v) & qp[lc];
      changed += v & static_cast<std::uint32_t>(mp[lc] == kMaskChanged);
    }
    sums.valid += valid;
    sums.changed += changed;
    qsum += static_cast<std::int64_t>(code_sum) * 256;
  }
  if (dp) add_misregistration_span(vp, dp, lc0, lc1, sums);
  if (out) {
    const std::size_t before = out->size();
    out->resize(before + static_cast<std::size_t>(lc1 - lc0 + 1));  // trimmed to the valid below
    std::uint16_t* to = out->data() + before;
    std::size_t n = 0;
    for (int lc = lc0; lc <= lc1; ++lc) {
      to[n] = qp[lc];
      n += vp[lc] != 0;
    }
    out->resize(before + n);
  }
}

}  // namespace

std::vector<FeaturePartial> accumulate_tile(const std::vector<Footprint>& features,
                                            const std::vector<std::int64_t>& ids, const Tile& tile,
                                            const cv::Mat& score, const cv::Mat& valid,
                                            const cv::Mat& mask) {
  return accumulate_tile(features, ids, tile, TileLayers{score, valid, mask, {}});
}

std::vector<FeaturePartial> accumulate_tile(const std::vector<Footprint>& features,
                                            const std::vector<std::int64_t>& ids, const Tile& tile,
                                            const TileLayers& layers) {
  const cv::Mat& score = layers.score;
  const cv::Mat& valid = layers.valid;
  const cv::Mat& mask = layers.mask;
  const cv::Mat& misreg = layers.misregistration;
  const Window core = tile.core;
  const cv::Size size(std::max(0, core.width), std::max(0, core.height));
  if (!core.empty()) {
    if ((score.type() != CV_32F && score.type() != CV_16U) || valid.type() != CV_8U ||
        mask.type() != CV_8U || score.size() != size || valid.size() != size ||
        mask.size() != size ||
        (!misreg.empty() && (misreg.type() != CV_32F || misreg.size() != size))) {
      throw Error(ErrorKind::internal,
                  "accumulate_tile: score (CV_32F or CV_16U codes), valid and mask (CV_8U) and the "
                  "optional "
                  "misregistration (CV_32F) must be core-sized",
                  "score", {}, tile.index);
    }
  }
  const bool codes = score.type() == CV_16U;
  const bool has_misreg = !misreg.empty();
  std::vector<FeaturePartial> out;
  out.reserve(ids.size());
  struct Edge {
    double x0, y0, x1, y1;
  };
  std::vector<Edge> edges;
  std::vector<double> xs;
  for (const std::int64_t id : ids) {
    if (id < 0 || static_cast<std::size_t>(id) >= features.size()) {
      throw Error(ErrorKind::internal, "accumulate_tile: feature id out of range", "score", {},
                  tile.index);
    }
    FeaturePartial part;
    part.feature = id;
    const Footprint& f = features[static_cast<std::size_t>(id)];
    if (core.empty() || !finite_geometry(f)) {
      out.push_back(std::move(part));
      continue;
    }
    if (!f.centerline.empty()) sample_centerline(f, core, valid, mask, part.sums);
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
      out.push_back(std::move(part));
      continue;
    }
    // Rows whose centre r + 0.5 lies in [ymin, ymax], clipped to the core.
    const double ry0 =
        std::clamp(std::floor(ymin - 0.5) - 1.0, double(core.y), double(core.y + core.height));
    const double ry1 = std::clamp(std::ceil(ymax - 0.5) + 1.0, double(core.y - 1),
                                  double(core.y + core.height - 1));
    const int row0 = static_cast<int>(ry0), row1 = static_cast<int>(ry1);
    std::int64_t qsum = 0;
    if (codes && layers.codes) {
      // Room for the codes of every pixel of the box on the rows met: no reallocation per row.
      const double bx0 = std::max(std::floor(f.bbox.x), double(core.x));
      const double bx1 = std::min(std::ceil(f.bbox.x + f.bbox.width), double(core.x + core.width));
      if (bx1 > bx0 && row1 >= row0)
        part.codes.reserve(static_cast<std::size_t>(row1 - row0 + 1) *
                           static_cast<std::size_t>(bx1 - bx0));
    }
    for (int r = row0; r <= row1; ++r) {
      const double y = r + 0.5;
      xs.clear();
      for (const Edge& e : edges) {
        if ((e.y0 <= y) != (e.y1 <= y))
          xs.push_back(e.x0 + (y - e.y0) * (e.x1 - e.x0) / (e.y1 - e.y0));
      }
      if (xs.size() < 2) continue;
      std::sort(xs.begin(), xs.end());
      const int lr = r - core.y;
      const auto* sp = codes ? nullptr : score.ptr<float>(lr);
      const auto* qp = codes ? score.ptr<std::uint16_t>(lr) : nullptr;
      const auto* vp = valid.ptr<std::uint8_t>(lr);
      const auto* mp = mask.ptr<std::uint8_t>(lr);
      const auto* dp = has_misreg ? misreg.ptr<float>(lr) : nullptr;
      const double lo_clip = core.x - 2.0, hi_clip = core.x + core.width + 2.0;
      for (std::size_t k = 0; k + 1 < xs.size(); k += 2) {
        const double xa = std::clamp(xs[k], lo_clip, hi_clip);
        const double xb = std::clamp(xs[k + 1], lo_clip, hi_clip);
        // Columns c with xa <= c + 0.5 < xb.
        long long c0 = first_col_at_or_after(xa);
        long long c1 = first_col_at_or_after(xb) - 1;
        c0 = std::max<long long>(c0, core.x);
        c1 = std::min<long long>(c1, core.x + core.width - 1);
        if (c1 < c0) continue;
        const int lc0 = static_cast<int>(c0 - core.x), lc1 = static_cast<int>(c1 - core.x);
        part.sums.inside += lc1 - lc0 + 1;
        if (codes) {
          add_code_span(qp, vp, mp, dp, lc0, lc1, layers.codes ? &part.codes : nullptr, qsum,
                        part.sums);
          continue;
        }
        for (int lc = lc0; lc <= lc1; ++lc) {
          if (vp[lc] == 0) continue;
          ++part.sums.valid;
          const std::uint16_t code = code_of(sp[lc]);
          qsum += quantise_score(sp[lc]);
          if (layers.codes) part.codes.push_back(code);
          if (mp[lc] == kMaskChanged) ++part.sums.changed;
        }
        if (dp) add_misregistration_span(vp, dp, lc0, lc1, part.sums);
      }
    }
    part.sums.score_sum = static_cast<double>(qsum) * kScoreQuantum;
    out.push_back(std::move(part));
  }
  return out;
}

void settle_single_tile_partials(std::vector<FeaturePartial>& partials,
                                 const FootprintIndex& index) {
  for (auto& p : partials) {
    if (index.tiles_of(p.feature) != 1) continue;
    p.quantiles = score_quantiles(std::move(p.codes));
    std::vector<std::uint16_t>().swap(p.codes);
  }
}

ScoreQuantiles score_quantiles(std::vector<std::uint16_t> codes) {
  ScoreQuantiles q;
  if (codes.empty()) return q;
  const auto n = static_cast<double>(codes.size());
  const auto rank = [&](double p) {
    return static_cast<std::size_t>(std::max(0.0, std::ceil(p * n) - 1.0));
  };
  const std::size_t k_median = rank(0.5), k_p90 = rank(0.9);
  const auto kth = [](std::uint16_t* first, std::uint16_t* last, std::size_t k) {
    std::nth_element(first, first + k, last);
    return first[k];
  };
  // Few codes: ordering them is as fast as counting (the p90 rank lies above the median's, among
  // the codes nth_element left after it).
  constexpr std::size_t kFew = 128;
  if (codes.size() <= kFew) {
    std::uint16_t* const c = codes.data();
    q.median = kth(c, c + codes.size(), k_median);
    q.p90 = k_p90 == k_median ? q.median
                              : kth(c + k_median + 1, c + codes.size(), k_p90 - k_median - 1);
    return q;
  }
  // One pass over the high bytes finds the 256-code bin of each rank, a second counts the low
  // bytes of the codes in those (one or two) bins: the ranks are then read off the counts.
  // Nothing is ordered: a feature's codes crowd into a few bins (ordering the median's bin with
  // nth_element took as long as the rest). Counters are split four ways in the first pass and
  // two in the second (crowded counters make increments wait for each other), summed after.
  const std::size_t count = codes.size(), quads = count / 4 * 4;
  const std::uint16_t* c = codes.data();
  std::array<std::array<std::uint32_t, 256>, 4> part{};
  for (std::size_t i = 0; i < quads; i += 4) {
    ++part[0][c[i] >> 8];
    ++part[1][c[i + 1] >> 8];
    ++part[2][c[i + 2] >> 8];
    ++part[3][c[i + 3] >> 8];
  }
  for (std::size_t i = quads; i < count; ++i) ++part[0][c[i] >> 8];
  std::array<std::uint32_t, 256> hist;
  for (std::size_t b = 0; b < 256; ++b) hist[b] = part[0][b] + part[1][b] + part[2][b] + part[3][b];
  // The code of rank k (0-based) given counts per value `h` of 256 values and `below` ranks
  // under them: the value and the ranks under it.
  struct At {
    unsigned value = 0;
    std::size_t below = 0;
  };
  const auto locate = [](const std::array<std::uint32_t, 256>& h, std::size_t k,
                         std::size_t below) {
    At a{0, below};
    while (a.below + h[a.value] <= k) a.below += h[a.value++];
    return a;
  };
  const At m = locate(hist, k_median, 0), p = locate(hist, k_p90, 0);
  // Second pass: low bytes of the median's bin (rows 0, 1) and of the p90's (rows 2, 3).
  std::array<std::array<std::uint32_t, 256>, 4> low{};
  const std::uint32_t two = p.value != m.value;
  const std::size_t pairs = count / 2 * 2;
  for (std::size_t i = 0; i < pairs; i += 2) {
    const unsigned a = c[i], b = c[i + 1];
    low[0][a & 255u] += (a >> 8) == m.value;
    low[1][b & 255u] += (b >> 8) == m.value;
    low[2][a & 255u] += two & ((a >> 8) == p.value);
    low[3][b & 255u] += two & ((b >> 8) == p.value);
  }
  if (pairs < count) {
    const unsigned a = c[pairs];
    low[0][a & 255u] += (a >> 8) == m.value;
    low[2][a & 255u] += two & ((a >> 8) == p.value);
  }
  std::array<std::uint32_t, 256> low_m, low_p;
  for (std::size_t b = 0; b < 256; ++b) {
    low_m[b] = low[0][b] + low[1][b];
    low_p[b] = low[2][b] + low[3][b];
  }
  q.median = static_cast<std::uint16_t>(m.value << 8 | locate(low_m, k_median, m.below).value);
  q.p90 =
      static_cast<std::uint16_t>(p.value << 8 | locate(two ? low_p : low_m, k_p90, p.below).value);
  return q;
}

double damage_metric(const Footprint& feature, const FeatureResult& r, const DamageConfig& config) {
  if (config.metric == "changed_fraction") {
    return feature.centerline.empty() ? r.changed_fraction : r.length_changed_fraction;
  }
  if (config.metric == "mean_score") return r.mean_score;
  if (config.metric == "median_score") return r.median_score;
  if (config.metric == "p90_score") return r.p90_score;
  throw Error(
      ErrorKind::usage,
      "unknown damage metric '" + config.metric +
          "' (damage.metric; known: changed_fraction, mean_score, median_score, p90_score)");
}

namespace {

/// The scheme's class levels, rising.
std::vector<double> class_levels(DamageScheme scheme, const DamageConfig& c) {
  if (scheme == DamageScheme::unosat) return {c.possibly, c.moderately, c.severely, c.destroyed};
  return {c.minor, c.major, c.destroyed};
}

std::uint8_t grade_of(double metric, const std::vector<double>& levels, double shift) {
  std::uint8_t g = 0;
  for (const double level : levels) {
    if (metric >= std::clamp(level + shift, 0.0, 1.0)) ++g;
  }
  return g;
}

}  // namespace

FeatureResult classify_feature(const Footprint& feature, const FeatureSums& sums,
                               const DamageConfig& config) {
  return classify_feature(feature, sums, ScoreQuantiles{}, config);
}

FeatureResult classify_feature(const Footprint& feature, const FeatureSums& sums,
                               const ScoreQuantiles& quantiles, const DamageConfig& config) {
  FeatureResult r;
  r.sums = sums;
  r.quantiles = quantiles;
  const auto d = [](std::int64_t v) { return static_cast<double>(v); };
  if (sums.inside > 0) {
    r.coverage = feature.area_px > 0 ? std::clamp(d(sums.inside) / feature.area_px, 0.0, 1.0) : 1.0;
    r.valid_fraction = d(sums.valid) / d(sums.inside);
  }
  if (sums.valid > 0) {
    r.changed_fraction = d(sums.changed) / d(sums.valid);
    r.mean_score = sums.score_sum / d(sums.valid);
    r.median_score = quantiles.median * kScoreCodeScale;
    r.p90_score = quantiles.p90 * kScoreCodeScale;
  }
  if (sums.line_valid > 0) r.length_changed_fraction = d(sums.line_changed) / d(sums.line_valid);
  if (sums.misregistration_pixels > 0) {
    r.misregistration = d(sums.misregistration_sum) / 65536.0 / d(sums.misregistration_pixels);
  }
  const double metric =
      damage_metric(feature, r, config);  // validates the metric name even when not scored
  const auto scheme = damage_scheme_from_string(config.scheme);
  if (!scheme)
    throw Error(ErrorKind::usage, "unknown damage scheme '" + config.scheme +
                                      "' (damage.scheme; known: xbd, unosat)");
  if (sums.inside <= 0) {
    r.status = FeatureStatus::outside;
    return r;
  }
  if (sums.valid <= 0 || r.valid_fraction < config.min_valid_fraction) {
    r.status = FeatureStatus::no_data;
    return r;
  }
  r.status = FeatureStatus::scored;
  const std::vector<double> levels = class_levels(*scheme, config);
  r.grade[0] = grade_of(metric, levels, 0.0);
  r.grade[1] = grade_of(metric, levels, config.high_precision_shift);
  r.grade[2] = grade_of(metric, levels, -config.high_recall_shift);
  r.damage = to_xbd_class(*scheme, r.grade[0]);
  double nearest = std::numeric_limits<double>::infinity();
  for (const double level : levels) nearest = std::min(nearest, std::abs(metric - level));
  r.confidence = std::clamp(nearest / 0.1, 0.0, 1.0);
  return r;
}

FootprintAccumulator::FootprintAccumulator(std::size_t feature_count)
    : sums_(feature_count),
      codes_(feature_count),
      quantiles_(feature_count),
      done_(feature_count, 0) {}

FootprintAccumulator::FootprintAccumulator(std::size_t feature_count, const FootprintIndex& index)
    : FootprintAccumulator(feature_count) {
  if (index.feature_count() != feature_count) {
    throw Error(ErrorKind::internal, "FootprintAccumulator: the index is of another feature set");
  }
  tiles_total_.resize(feature_count);
  tiles_added_.assign(feature_count, 0);
  for (std::size_t i = 0; i < feature_count; ++i) {
    tiles_total_[i] = index.tiles_of(static_cast<std::int64_t>(i));
    if (tiles_total_[i] == 0) complete(i);
  }
}

void FootprintAccumulator::complete(std::size_t i) {
  quantiles_[i] = score_quantiles(std::move(codes_[i]));
  std::vector<std::uint16_t>().swap(codes_[i]);
  done_[i] = 1;
}

void FootprintAccumulator::add(const std::vector<FeaturePartial>& partials) {
  for (const auto& p : partials) {
    if (p.feature < 0 || static_cast<std::size_t>(p.feature) >= sums_.size()) {
      throw Error(ErrorKind::internal, "FootprintAccumulator::add: feature id out of range");
    }
    const auto i = static_cast<std::size_t>(p.feature);
    sums_[i].merge(p.sums);
    if (done_[i]) throw Error(ErrorKind::internal, "FootprintAccumulator::add: a tile added twice");
    if (p.quantiles) {
      // The feature's only partial, settled where it was made.
      if (!codes_[i].empty() || (!tiles_total_.empty() && tiles_added_[i] != 0)) {
        throw Error(ErrorKind::internal,
                    "FootprintAccumulator::add: a settled partial of a feature seen before");
      }
      quantiles_[i] = *p.quantiles;
      done_[i] = 1;
      if (!tiles_total_.empty()) tiles_added_[i] = tiles_total_[i];
      continue;
    }
    codes_[i].insert(codes_[i].end(), p.codes.begin(), p.codes.end());
    if (!tiles_total_.empty() && ++tiles_added_[i] == tiles_total_[i]) complete(i);
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
  if (in.size() - pos < sizeof(T))
    throw Error(ErrorKind::internal, "FootprintAccumulator: truncated state");
  T v;
  std::memcpy(&v, in.data() + pos, sizeof(T));
  pos += sizeof(T);
  return v;
}

}  // namespace

std::vector<std::uint8_t> FootprintAccumulator::serialize() const {
  std::vector<std::uint8_t> out;
  out.reserve(16 + sums_.size() * 96);
  put(out, static_cast<std::uint64_t>(sums_.size()));
  put(out, static_cast<std::uint8_t>(tiles_total_.empty() ? 0 : 1));
  for (std::size_t i = 0; i < sums_.size(); ++i) {
    const FeatureSums& s = sums_[i];
    for (const std::int64_t v :
         {s.inside, s.valid, s.changed, s.misregistration_sum, s.misregistration_pixels,
          s.line_samples, s.line_valid, s.line_changed}) {
      put(out, v);
    }
    put(out, s.score_sum);
    if (!tiles_total_.empty()) put(out, tiles_added_[i]);
    put(out, done_[i]);
    if (done_[i]) {
      put(out, quantiles_[i].median);
      put(out, quantiles_[i].p90);
    } else {
      put(out, static_cast<std::uint64_t>(codes_[i].size()));
      const auto* p = reinterpret_cast<const std::uint8_t*>(codes_[i].data());
      out.insert(out.end(), p, p + codes_[i].size() * sizeof(std::uint16_t));
    }
  }
  return out;
}

void FootprintAccumulator::merge_serialized(const std::vector<std::uint8_t>& bytes) {
  std::size_t pos = 0;
  if (take<std::uint64_t>(bytes, pos) != sums_.size()) {
    throw Error(ErrorKind::internal,
                "FootprintAccumulator::merge_serialized: feature count differs");
  }
  if ((take<std::uint8_t>(bytes, pos) != 0) != !tiles_total_.empty()) {
    throw Error(
        ErrorKind::internal,
        "FootprintAccumulator::merge_serialized: one state has a tile index, the other not");
  }
  for (std::size_t i = 0; i < sums_.size(); ++i) {
    FeatureSums o;
    for (std::int64_t* v :
         {&o.inside, &o.valid, &o.changed, &o.misregistration_sum, &o.misregistration_pixels,
          &o.line_samples, &o.line_valid, &o.line_changed}) {
      *v = take<std::int64_t>(bytes, pos);
    }
    o.score_sum = take<double>(bytes, pos);
    sums_[i].merge(o);
    const std::int32_t other_added = tiles_total_.empty() ? 0 : take<std::int32_t>(bytes, pos);
    const auto other_done = take<std::uint8_t>(bytes, pos);
    if (other_done) {
      ScoreQuantiles q;
      q.median = take<std::uint16_t>(bytes, pos);
      q.p90 = take<std::uint16_t>(bytes, pos);
      if (!tiles_total_.empty() && tiles_total_[i] == 0)
        continue;  // complete from the start in both
      // The other accumulator saw every tile of this feature, so this one must have seen none.
      if (done_[i] || tiles_added_[i] != 0 || !codes_[i].empty()) {
        throw Error(ErrorKind::internal,
                    "FootprintAccumulator::merge_serialized: a tile was added twice");
      }
      quantiles_[i] = q;
      done_[i] = 1;
      tiles_added_[i] = tiles_total_[i];
    } else {
      const auto n = take<std::uint64_t>(bytes, pos);
      if ((bytes.size() - pos) / sizeof(std::uint16_t) < n) {
        throw Error(ErrorKind::internal, "FootprintAccumulator: truncated state");
      }
      if (done_[i] && (n > 0 || other_added > 0)) {
        throw Error(ErrorKind::internal,
                    "FootprintAccumulator::merge_serialized: a tile was added twice");
      }
      const std::size_t start = codes_[i].size();
      codes_[i].resize(start + n);
      // n == 0 leaves data() null: memcpy must not see a null pointer even for 0 bytes (UBSan).
      if (n > 0) std::memcpy(codes_[i].data() + start, bytes.data() + pos, n * sizeof(std::uint16_t));
      pos += n * sizeof(std::uint16_t);
      if (!tiles_total_.empty() && !done_[i]) {
        tiles_added_[i] += other_added;
        if (tiles_added_[i] > tiles_total_[i]) {
          throw Error(ErrorKind::internal,
                      "FootprintAccumulator::merge_serialized: a tile was added twice");
        }
        if (tiles_added_[i] == tiles_total_[i]) complete(i);
      }
    }
  }
  if (pos != bytes.size())
    throw Error(ErrorKind::internal, "FootprintAccumulator::merge_serialized: trailing bytes");
}

std::vector<FeatureResult> FootprintAccumulator::finalize(const std::vector<Footprint>& features,
                                                          const DamageConfig& config,
                                                          const std::vector<ScoreQuantiles>* known_quantiles) const {
  if (features.size() != sums_.size() || (known_quantiles && known_quantiles->size() != sums_.size())) {
    throw Error(ErrorKind::internal,
                "FootprintAccumulator::finalize: feature count differs from the accumulator's");
  }
  std::vector<FeatureResult> out;
  out.reserve(features.size());
  for (std::size_t i = 0; i < features.size(); ++i) {
    // Features still incomplete (no index, or merged states not yet whole) get their quantiles
    // from the codes kept so far: every tile has been added by now.
    const ScoreQuantiles q = known_quantiles ? (*known_quantiles)[i]
                             : done_[i]      ? quantiles_[i]
                                             : score_quantiles(codes_[i]);
    out.push_back(classify_feature(features[i], sums_[i], q, config));
  }
  return out;
}

}  // namespace aftermath
