#include "aftermath/score/sites.hpp"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "aftermath/core/error.hpp"
#include "aftermath/score/threshold.hpp"

namespace aftermath {

std::vector<MaskRun> mask_runs(const Window& core, const cv::Mat& mask, const cv::Mat& codes,
                               const cv::Mat& built_up) {
  std::vector<MaskRun> out;
  if (core.empty()) return out;
  const cv::Size size(core.width, core.height);
  if (mask.type() != CV_8U || codes.type() != CV_16U || mask.size() != size ||
      codes.size() != size ||
      (!built_up.empty() && (built_up.type() != CV_8U || built_up.size() != size))) {
    throw Error(ErrorKind::internal,
                "mask_runs: mask (CV_8U), codes (CV_16U) and built_up (CV_8U) must be core-sized",
                "score");
  }
  for (int r = 0; r < core.height; ++r) {
    const auto* m = mask.ptr<std::uint8_t>(r);
    const auto* q = codes.ptr<std::uint16_t>(r);
    const auto* b = built_up.empty() ? nullptr : built_up.ptr<std::uint8_t>(r);
    int c = 0;
    while (c < core.width) {
      if (m[c] != kMaskChanged) {
        ++c;
        continue;
      }
      MaskRun run;
      run.row = core.y + r;
      run.x0 = core.x + c;
      while (c < core.width && m[c] == kMaskChanged) {
        run.code_sum += q[c];
        run.max_code = std::max(run.max_code, q[c]);
        if (b && b[c]) ++run.built_up;
        ++c;
      }
      run.x1 = core.x + c;
      out.push_back(run);
    }
  }
  return out;
}

namespace {

std::size_t find_root(std::vector<std::size_t>& parent, std::size_t i) {
  while (parent[i] != i) {
    parent[i] = parent[parent[i]];
    i = parent[i];
  }
  return i;
}

/// Union-find over runs sorted by row then column: a run joins the runs of the row above whose
/// columns overlap (4-connectivity); each root is its component's earliest run.
std::vector<std::size_t> connect_runs(const std::vector<MaskRun>& runs) {
  std::vector<std::size_t> parent(runs.size());
  std::iota(parent.begin(), parent.end(), std::size_t{0});
  std::size_t above_begin = 0, above_end = 0;  // runs of the previous row: [above_begin, above_end)
  for (std::size_t i = 0; i < runs.size();) {
    const std::int32_t row = runs[i].row;
    std::size_t j = i;
    while (j < runs.size() && runs[j].row == row) ++j;
    if (above_end > above_begin && runs[above_begin].row == row - 1) {
      std::size_t a = above_begin;
      for (std::size_t k = i; k < j; ++k) {
        while (a < above_end && runs[a].x1 <= runs[k].x0) ++a;
        for (std::size_t b = a; b < above_end && runs[b].x0 < runs[k].x1; ++b) {
          const std::size_t ra = find_root(parent, b), rk = find_root(parent, k);
          if (ra != rk) parent[std::max(ra, rk)] = std::min(ra, rk);
        }
      }
    }
    above_begin = i;
    above_end = j;
    i = j;
  }
  for (std::size_t i = 0; i < parent.size(); ++i) parent[i] = find_root(parent, i);
  return parent;
}

}  // namespace

void drop_small_inner_components(std::vector<MaskRun>& runs, const Window& core,
                                 std::int64_t min_pixels) {
  if (runs.empty() || min_pixels <= 1) return;
  const std::vector<std::size_t> root = connect_runs(runs);
  std::vector<std::int64_t> pixels(runs.size(), 0);
  std::vector<char> on_edge(runs.size(), 0);
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const MaskRun& r = runs[i];
    pixels[root[i]] += r.x1 - r.x0;
    if (r.row == core.y || r.row == core.y + core.height - 1 || r.x0 == core.x ||
        r.x1 == core.x + core.width) {
      on_edge[root[i]] = 1;
    }
  }
  std::size_t kept = 0;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    if (on_edge[root[i]] || pixels[root[i]] >= min_pixels) runs[kept++] = runs[i];
  }
  runs.resize(kept);
}

void SiteAccumulator::add(std::vector<MaskRun> runs) {
  if (runs_.empty()) {
    runs_ = std::move(runs);
  } else {
    runs_.insert(runs_.end(), runs.begin(), runs.end());
  }
}

std::vector<std::uint8_t> SiteAccumulator::serialize() const {
  std::vector<std::uint8_t> out(sizeof(std::uint64_t) + runs_.size() * sizeof(MaskRun));
  const std::uint64_t n = runs_.size();
  std::memcpy(out.data(), &n, sizeof n);
  if (n) std::memcpy(out.data() + sizeof n, runs_.data(), runs_.size() * sizeof(MaskRun));
  return out;
}

void SiteAccumulator::merge_serialized(const std::vector<std::uint8_t>& bytes) {
  std::uint64_t n = 0;
  if (bytes.size() < sizeof n) throw Error(ErrorKind::internal, "SiteAccumulator: truncated state");
  std::memcpy(&n, bytes.data(), sizeof n);
  if ((bytes.size() - sizeof n) / sizeof(MaskRun) != n ||
      (bytes.size() - sizeof n) % sizeof(MaskRun) != 0) {
    throw Error(ErrorKind::internal, "SiteAccumulator: malformed state");
  }
  const std::size_t start = runs_.size();
  runs_.resize(start + n);
  if (n) std::memcpy(runs_.data() + start, bytes.data() + sizeof n, n * sizeof(MaskRun));
}

std::vector<DamageSite> SiteAccumulator::finalize(std::int64_t min_pixels,
                                                  double min_built_up_fraction) const {
  // Runs by row and column; runs that touch across a tile border (x1 == next x0) become one.
  std::vector<MaskRun> runs = runs_;
  std::sort(runs.begin(), runs.end(), [](const MaskRun& a, const MaskRun& b) {
    return a.row != b.row ? a.row < b.row : a.x0 < b.x0;
  });
  std::vector<MaskRun> joined;
  joined.reserve(runs.size());
  for (const MaskRun& r : runs) {
    if (!joined.empty() && joined.back().row == r.row && joined.back().x1 == r.x0) {
      MaskRun& j = joined.back();
      j.x1 = r.x1;
      j.code_sum += r.code_sum;
      j.max_code = std::max(j.max_code, r.max_code);
      j.built_up += r.built_up;
    } else {
      if (!joined.empty() && joined.back().row == r.row && joined.back().x1 > r.x0) {
        throw Error(ErrorKind::internal, "SiteAccumulator: overlapping runs (a tile added twice?)");
      }
      joined.push_back(r);
    }
  }
  const std::vector<std::size_t> parent = connect_runs(joined);
  // Sites in order of their root (= their first run, by row then column).
  std::vector<std::int64_t> site_of(joined.size(), -1);
  std::vector<DamageSite> sites;
  for (std::size_t i = 0; i < joined.size(); ++i) {
    const std::size_t root = parent[i];
    if (site_of[root] < 0) {
      site_of[root] = static_cast<std::int64_t>(sites.size());
      sites.emplace_back();
    }
    DamageSite& s = sites[static_cast<std::size_t>(site_of[root])];
    const MaskRun& r = joined[i];
    s.runs.push_back(r);
  }
  std::vector<DamageSite> kept;
  for (DamageSite& s : sites) {
    std::int64_t pixels = 0, code_sum = 0, built = 0;
    std::uint16_t max_code = 0;
    int x0 = INT32_MAX, x1 = INT32_MIN, y0 = INT32_MAX, y1 = INT32_MIN;
    double cx = 0, cy = 0;
    for (const MaskRun& r : s.runs) {
      const std::int64_t n = r.x1 - r.x0;
      pixels += n;
      code_sum += r.code_sum;
      built += r.built_up;
      max_code = std::max(max_code, r.max_code);
      x0 = std::min(x0, r.x0), x1 = std::max(x1, r.x1), y0 = std::min(y0, r.row),
      y1 = std::max(y1, r.row + 1);
      cx += static_cast<double>(n) * (r.x0 + r.x1) / 2.0;
      cy += static_cast<double>(n) * (r.row + 0.5);
    }
    if (pixels < min_pixels) continue;
    const double built_fraction =
        pixels > 0 ? static_cast<double>(built) / static_cast<double>(pixels) : 0;
    if (min_built_up_fraction > 0 && built_fraction < min_built_up_fraction) continue;
    s.pixels = pixels;
    s.mean_score = static_cast<double>(code_sum) / static_cast<double>(pixels) * kScoreCodeScale;
    s.max_score = max_code * kScoreCodeScale;
    s.built_up_fraction = built_fraction;
    s.bbox = cv::Rect(x0, y0, x1 - x0, y1 - y0);
    s.centroid = cv::Point2d(cx / static_cast<double>(pixels), cy / static_cast<double>(pixels));
    s.id = static_cast<std::int64_t>(kept.size());
    kept.push_back(std::move(s));
  }
  return kept;
}

namespace {

/// Row `row`'s runs of a site, sorted (as DamageSite::runs are).
struct RowRuns {
  const MaskRun* begin = nullptr;
  const MaskRun* end = nullptr;
};

/// Calls f(x0, x1) for each maximal part of [x0, x1) not covered by `covering`.
template <typename F>
void uncovered(std::int32_t x0, std::int32_t x1, RowRuns covering, F&& f) {
  std::int32_t x = x0;
  for (const MaskRun* r = covering.begin; r != covering.end && x < x1; ++r) {
    if (r->x1 <= x) continue;
    if (r->x0 >= x1) break;
    if (r->x0 > x) f(x, r->x0);
    x = std::max(x, r->x1);
  }
  if (x < x1) f(x, x1);
}

}  // namespace

std::vector<std::vector<cv::Point>> site_outline(const DamageSite& site) {
  // Boundary edges along pixel edges, walked with the site's pixels on one side (outer rings come
  // out with negative area). Horizontal edges span whole uncovered stretches of a run: no other
  // edge starts inside one, so only corners are vertices. Each edge knows the pixel it borders at
  // its start and at its end; where the outline touches itself at a corner (two diagonal pixels),
  // the walk stays on the pixel it came along (4-connectedness).
  struct Edge {
    std::int64_t from, to;                // vertex keys
    std::int64_t pixel_start, pixel_end;  // row * 2^32 + column
  };
  constexpr std::int64_t kShift = std::int64_t{1} << 32;
  const auto key = [&](std::int64_t x, std::int64_t y) { return y * kShift + x; };
  std::vector<Edge> edges;
  const auto& runs = site.runs;
  std::vector<RowRuns> rows;
  const std::int32_t first_row = runs.empty() ? 0 : runs.front().row;
  for (std::size_t i = 0; i < runs.size();) {
    std::size_t j = i;
    while (j < runs.size() && runs[j].row == runs[i].row) ++j;
    rows.resize(static_cast<std::size_t>(runs[i].row - first_row + 1));
    rows[static_cast<std::size_t>(runs[i].row - first_row)] = {runs.data() + i, runs.data() + j};
    i = j;
  }
  const auto row_runs = [&](std::int32_t row) {
    const std::int64_t k = row - first_row;
    return k < 0 || k >= static_cast<std::int64_t>(rows.size()) ? RowRuns{}
                                                                : rows[static_cast<std::size_t>(k)];
  };
  for (const MaskRun& r : runs) {
    const std::int64_t y = r.row, p = y * kShift;
    // Top edges (right to left) where the row above is unset, bottom edges (left to right) where
    // the row below is.
    uncovered(r.x0, r.x1, row_runs(r.row - 1), [&](std::int64_t a, std::int64_t b) {
      edges.push_back({key(b, y), key(a, y), p + b - 1, p + a});
    });
    uncovered(r.x0, r.x1, row_runs(r.row + 1), [&](std::int64_t a, std::int64_t b) {
      edges.push_back({key(a, y + 1), key(b, y + 1), p + a, p + b - 1});
    });
    edges.push_back({key(r.x0, y), key(r.x0, y + 1), p + r.x0, p + r.x0});          // left, down
    edges.push_back({key(r.x1, y + 1), key(r.x1, y), p + r.x1 - 1, p + r.x1 - 1});  // right, up
  }
  std::sort(edges.begin(), edges.end(), [](const Edge& a, const Edge& b) {
    return a.from != b.from ? a.from < b.from : a.pixel_start < b.pixel_start;
  });
  std::vector<char> used(edges.size(), 0);
  // Index of the first edge from each vertex; vertices with two edges are corner touches.
  const auto first_from = [&](std::int64_t v) {
    return static_cast<std::size_t>(
        std::lower_bound(edges.begin(), edges.end(), v,
                         [](const Edge& a, std::int64_t x) { return a.from < x; }) -
        edges.begin());
  };
  const auto next_edge = [&](const Edge& e) -> std::size_t {
    std::size_t best = edges.size();
    for (std::size_t k = first_from(e.to); k < edges.size() && edges[k].from == e.to; ++k) {
      if (used[k]) continue;
      if (best == edges.size() || edges[k].pixel_start == e.pixel_end) best = k;
    }
    return best;
  };
  const auto touching = [&](std::int64_t v) {
    const std::size_t k = first_from(v);
    return k + 1 < edges.size() && edges[k].from == v && edges[k + 1].from == v;
  };
  std::vector<std::vector<cv::Point>> rings;
  const auto keep_corners = [&](const std::vector<std::int64_t>& loop) {
    std::vector<cv::Point> corners;
    const std::size_t n = loop.size();
    const auto pt = [&](std::size_t i) {
      return cv::Point(static_cast<int>(loop[i % n] % kShift),
                       static_cast<int>(loop[i % n] / kShift));
    };
    for (std::size_t i = 0; i < n; ++i) {
      const cv::Point a = pt(i) - pt(i + n - 1), b = pt(i + 1) - pt(i);
      if (std::int64_t{a.x} * b.y - std::int64_t{a.y} * b.x != 0) corners.push_back(pt(i));
    }
    if (corners.size() >= 4) rings.push_back(std::move(corners));
  };
  std::vector<std::int64_t> path;
  std::vector<std::pair<std::int64_t, std::size_t>>
      touches;  // corner-touch vertex -> position in path
  for (std::size_t start = 0; start < edges.size(); ++start) {
    if (used[start]) continue;
    path.clear();
    touches.clear();
    std::size_t k = start;
    while (k < edges.size() && !used[k]) {
      used[k] = 1;
      const std::int64_t v = edges[k].from;
      if (touching(v)) {
        // Met again: the loop since the first visit is a ring of its own, so every ring stays
        // simple (valid OGC rings, as GDALPolygonize gives).
        auto it = std::find_if(touches.begin(), touches.end(),
                               [&](const auto& t) { return t.first == v; });
        if (it != touches.end()) {
          const std::size_t pos = it->second;
          const std::vector<std::int64_t> loop(path.begin() + static_cast<std::ptrdiff_t>(pos),
                                               path.end());
          path.resize(pos);
          touches.erase(std::remove_if(touches.begin(), touches.end(),
                                       [&](const auto& t) { return t.second >= pos; }),
                        touches.end());
          keep_corners(loop);
        }
        touches.emplace_back(v, path.size());
      }
      path.push_back(v);
      k = next_edge(edges[k]);
    }
    keep_corners(path);
  }
  // The outer ring (negative area) first.
  const auto area2 = [](const std::vector<cv::Point>& r) {
    std::int64_t a = 0;
    for (std::size_t i = 0, n = r.size(); i < n; ++i) {
      a += std::int64_t{r[i].x} * r[(i + 1) % n].y - std::int64_t{r[(i + 1) % n].x} * r[i].y;
    }
    return a;
  };
  std::stable_partition(rings.begin(), rings.end(), [&](const auto& r) { return area2(r) < 0; });
  return rings;
}

}  // namespace aftermath
