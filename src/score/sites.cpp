#include "aftermath/score/sites.hpp"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <numeric>
#include <type_traits>

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

namespace {

/// The built-up fraction of a component of `pixels` pixels, `built` of them built-up.
double built_fraction(std::int64_t pixels, std::int64_t built) {
  return pixels > 0 ? static_cast<double>(built) / static_cast<double>(pixels) : 0;
}

/// Whether a component with these figures is a site.
bool is_site(std::int64_t pixels, double built_up_fraction, std::int64_t min_pixels,
             double min_built_up_fraction) {
  return pixels >= min_pixels &&
         !(min_built_up_fraction > 0 && built_up_fraction < min_built_up_fraction);
}

/// A site's figures from its runs: the same arithmetic, in the same order, wherever the site is
/// finished (in its tile or at the end of the job), so the figures are bit-identical.
void summarize(DamageSite& s) {
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
  s.pixels = pixels;
  s.mean_score = static_cast<double>(code_sum) / static_cast<double>(pixels) * kScoreCodeScale;
  s.max_score = max_code * kScoreCodeScale;
  s.built_up_fraction = built_fraction(pixels, built);
  s.bbox = cv::Rect(x0, y0, x1 - x0, y1 - y0);
  s.centroid = cv::Point2d(cx / static_cast<double>(pixels), cy / static_cast<double>(pixels));
  s.first = s.runs.empty() ? cv::Point() : cv::Point(s.runs.front().x0, s.runs.front().row);
}

/// The components of `runs` (by row, then column; `root` from connect_runs) that are sites, not
/// counting those whose root `skip` marks: their runs and figures, in order of their root (their
/// first pixel). Only the kept components' runs are copied.
std::vector<DamageSite> gather_sites(const std::vector<MaskRun>& runs,
                                     const std::vector<std::size_t>& root,
                                     const std::vector<char>* skip, std::int64_t min_pixels,
                                     double min_built_up_fraction) {
  const std::size_t n = runs.size();
  std::vector<std::int64_t> pixels(n, 0), built(n, 0), site_of(n, -1);
  std::vector<std::size_t> count(n, 0);
  for (std::size_t i = 0; i < n; ++i) {
    pixels[root[i]] += runs[i].x1 - runs[i].x0;
    built[root[i]] += runs[i].built_up;
    ++count[root[i]];
  }
  std::vector<DamageSite> sites;
  for (std::size_t i = 0; i < n; ++i) {
    if (root[i] != i || (skip && (*skip)[i])) continue;
    if (!is_site(pixels[i], built_fraction(pixels[i], built[i]), min_pixels,
                 min_built_up_fraction)) {
      continue;
    }
    site_of[i] = static_cast<std::int64_t>(sites.size());
    sites.emplace_back().runs.reserve(count[i]);
  }
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t s = site_of[root[i]];
    if (s >= 0) sites[static_cast<std::size_t>(s)].runs.push_back(runs[i]);
  }
  for (DamageSite& s : sites) summarize(s);
  return sites;
}

bool first_pixel_before(const DamageSite& a, const DamageSite& b) {
  return a.first.y != b.first.y ? a.first.y < b.first.y : a.first.x < b.first.x;
}

/// Plain bytes of the state (memcpy of each value): only read back by the same build.
struct StateWriter {
  std::vector<std::uint8_t> bytes;
  void put_raw(const void* p, std::size_t n) {
    const auto* b = static_cast<const std::uint8_t*>(p);
    bytes.insert(bytes.end(), b, b + n);
  }
  template <typename T>
  void put(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    put_raw(&v, sizeof v);
  }
};

struct StateReader {
  const std::vector<std::uint8_t>& bytes;
  std::size_t at = 0;
  void get_raw(void* p, std::size_t n) {
    if (n > bytes.size() - at) throw Error(ErrorKind::internal, "SiteAccumulator: truncated state");
    if (n) std::memcpy(p, bytes.data() + at, n);
    at += n;
  }
  template <typename T>
  T get() {
    static_assert(std::is_trivially_copyable_v<T>);
    T v{};
    get_raw(&v, sizeof v);
    return v;
  }
  /// A count of items of `item_size` bytes that the rest of the state can hold.
  std::size_t get_count(std::size_t item_size) {
    const auto n = get<std::uint64_t>();
    if (n > (bytes.size() - at) / item_size) {
      throw Error(ErrorKind::internal, "SiteAccumulator: malformed state");
    }
    return static_cast<std::size_t>(n);
  }
};

void put_runs(StateWriter& w, const std::vector<MaskRun>& runs) {
  w.put(static_cast<std::uint64_t>(runs.size()));
  w.put_raw(runs.data(), runs.size() * sizeof(MaskRun));
}

void get_runs(StateReader& r, std::vector<MaskRun>& runs) {
  const std::size_t n = r.get_count(sizeof(MaskRun));
  const std::size_t start = runs.size();
  runs.resize(start + n);
  r.get_raw(runs.data() + start, n * sizeof(MaskRun));
}

}  // namespace

namespace {

void put_varint(std::vector<std::uint8_t>& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<std::uint8_t>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<std::uint8_t>(v));
}

std::uint64_t zigzag(std::int64_t v) {
  return (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
}

std::int64_t unzigzag(std::uint64_t v) {
  return static_cast<std::int64_t>(v >> 1) ^ -static_cast<std::int64_t>(v & 1);
}

[[noreturn]] void bad_outline() {
  throw Error(ErrorKind::internal, "unpack_outline: not a packed outline");
}

struct VarintReader {
  const std::vector<std::uint8_t>& bytes;
  std::size_t at = 0;
  std::uint64_t get() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64 && at < bytes.size(); shift += 7) {
      const std::uint8_t b = bytes[at++];
      v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    bad_outline();
  }
  /// A count of items that take at least one byte each in the rest.
  std::size_t count() {
    const std::uint64_t n = get();
    if (n > bytes.size() - at) bad_outline();
    return static_cast<std::size_t>(n);
  }
};

}  // namespace

std::vector<std::uint8_t> pack_outline(const std::vector<std::vector<cv::Point>>& rings) {
  std::vector<std::uint8_t> out;
  put_varint(out, rings.size());
  std::int64_t x = 0, y = 0;
  for (const auto& ring : rings) {
    put_varint(out, ring.size());
    for (const cv::Point& p : ring) {
      put_varint(out, zigzag(p.x - x));
      put_varint(out, zigzag(p.y - y));
      x = p.x;
      y = p.y;
    }
  }
  out.shrink_to_fit();  // kept to the end of the job
  return out;
}

std::vector<std::vector<cv::Point>> unpack_outline(const std::vector<std::uint8_t>& packed) {
  VarintReader r{packed};
  std::vector<std::vector<cv::Point>> rings(r.count());
  std::int64_t x = 0, y = 0;
  const auto coordinate = [](std::int64_t v) {
    if (v < INT32_MIN || v > INT32_MAX) bad_outline();
    return static_cast<int>(v);
  };
  for (auto& ring : rings) {
    ring.resize(r.count());
    for (cv::Point& p : ring) {
      x += unzigzag(r.get());
      y += unzigzag(r.get());
      p = cv::Point(coordinate(x), coordinate(y));
    }
  }
  if (r.at != packed.size()) bad_outline();
  return rings;
}

std::vector<DamageSite> take_inner_sites(std::vector<MaskRun>& runs, const Window& core,
                                         std::int64_t min_pixels, double min_built_up_fraction) {
  if (runs.empty()) return {};
  const std::vector<std::size_t> root = connect_runs(runs);
  std::vector<char> on_edge(runs.size(), 0);
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const MaskRun& r = runs[i];
    if (r.row == core.y || r.row == core.y + core.height - 1 || r.x0 == core.x ||
        r.x1 == core.x + core.width) {
      on_edge[root[i]] = 1;
    }
  }
  std::vector<DamageSite> sites =
      gather_sites(runs, root, &on_edge, min_pixels, min_built_up_fraction);
  std::size_t kept = 0;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    if (on_edge[root[i]]) runs[kept++] = runs[i];
  }
  runs.resize(kept);
  return sites;
}

void SiteAccumulator::add(std::vector<MaskRun> runs, std::vector<DamageSite> finished) {
  if (runs_.empty()) {
    runs_ = std::move(runs);
  } else {
    runs_.insert(runs_.end(), runs.begin(), runs.end());
  }
  if (finished_.empty()) {
    finished_ = std::move(finished);
  } else {
    finished_.insert(finished_.end(), std::make_move_iterator(finished.begin()),
                     std::make_move_iterator(finished.end()));
  }
}

std::vector<std::uint8_t> SiteAccumulator::serialize() const {
  StateWriter w;
  put_runs(w, runs_);
  w.put(static_cast<std::uint64_t>(finished_.size()));
  for (const DamageSite& s : finished_) {
    w.put(s.id);
    w.put(s.pixels);
    w.put(s.mean_score);
    w.put(s.max_score);
    w.put(s.built_up_fraction);
    for (const int v : {s.bbox.x, s.bbox.y, s.bbox.width, s.bbox.height, s.first.x, s.first.y}) {
      w.put(static_cast<std::int32_t>(v));
    }
    w.put(s.centroid.x);
    w.put(s.centroid.y);
    put_runs(w, s.runs);
    w.put(static_cast<std::uint64_t>(s.outline.size()));
    w.put_raw(s.outline.data(), s.outline.size());
  }
  return std::move(w.bytes);
}

void SiteAccumulator::merge_serialized(const std::vector<std::uint8_t>& bytes) {
  StateReader r{bytes};
  std::vector<MaskRun> runs;
  get_runs(r, runs);
  // A site takes at least its fixed fields (5 x 8 + 6 x 4 + 2 x 8 + 2 x 8 bytes).
  const std::size_t n = r.get_count(96);
  std::vector<DamageSite> finished(n);
  for (DamageSite& s : finished) {
    s.id = r.get<std::int64_t>();
    s.pixels = r.get<std::int64_t>();
    s.mean_score = r.get<double>();
    s.max_score = r.get<double>();
    s.built_up_fraction = r.get<double>();
    for (int* v : {&s.bbox.x, &s.bbox.y, &s.bbox.width, &s.bbox.height, &s.first.x, &s.first.y}) {
      *v = r.get<std::int32_t>();
    }
    s.centroid.x = r.get<double>();
    s.centroid.y = r.get<double>();
    get_runs(r, s.runs);
    s.outline.resize(r.get_count(1));
    r.get_raw(s.outline.data(), s.outline.size());
  }
  if (r.at != bytes.size()) throw Error(ErrorKind::internal, "SiteAccumulator: malformed state");
  add(std::move(runs), std::move(finished));
}

std::vector<DamageSite> SiteAccumulator::finalize(std::int64_t min_pixels,
                                                  double min_built_up_fraction) const& {
  SiteAccumulator copy(*this);
  return std::move(copy).finalize(min_pixels, min_built_up_fraction);
}

std::vector<DamageSite> SiteAccumulator::finalize(std::int64_t min_pixels,
                                                  double min_built_up_fraction) && {
  // Consumed: the runs are sorted and joined in place, and freed once the sites have theirs.
  std::vector<MaskRun> runs = std::move(runs_);
  std::vector<DamageSite> finished = std::move(finished_);
  runs_.clear();
  finished_.clear();
  // Runs by row and column; runs that touch across a tile border (x1 == next x0) become one.
  std::sort(runs.begin(), runs.end(), [](const MaskRun& a, const MaskRun& b) {
    return a.row != b.row ? a.row < b.row : a.x0 < b.x0;
  });
  std::size_t joined = 0;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const MaskRun& r = runs[i];
    if (joined > 0 && runs[joined - 1].row == r.row && runs[joined - 1].x1 == r.x0) {
      MaskRun& j = runs[joined - 1];
      j.x1 = r.x1;
      j.code_sum += r.code_sum;
      j.max_code = std::max(j.max_code, r.max_code);
      j.built_up += r.built_up;
    } else {
      if (joined > 0 && runs[joined - 1].row == r.row && runs[joined - 1].x1 > r.x0) {
        throw Error(ErrorKind::internal, "SiteAccumulator: overlapping runs (a tile added twice?)");
      }
      runs[joined++] = r;
    }
  }
  runs.resize(joined);
  std::vector<DamageSite> sites =
      gather_sites(runs, connect_runs(runs), nullptr, min_pixels, min_built_up_fraction);
  std::vector<MaskRun>().swap(runs);
  // The sites finished in tiles (filtered there with the same rule) among them, by first pixel.
  std::erase_if(finished, [&](const DamageSite& s) {
    return !is_site(s.pixels, s.built_up_fraction, min_pixels, min_built_up_fraction);
  });
  std::sort(finished.begin(), finished.end(), first_pixel_before);
  std::vector<DamageSite> all;
  all.reserve(sites.size() + finished.size());
  std::merge(std::make_move_iterator(sites.begin()), std::make_move_iterator(sites.end()),
             std::make_move_iterator(finished.begin()), std::make_move_iterator(finished.end()),
             std::back_inserter(all), first_pixel_before);
  for (std::size_t i = 0; i < all.size(); ++i) {
    if (i > 0 && !first_pixel_before(all[i - 1], all[i])) {
      throw Error(ErrorKind::internal,
                  "SiteAccumulator: two sites start at one pixel (a tile added twice?)");
    }
    all[i].id = static_cast<std::int64_t>(i);
  }
  return all;
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
