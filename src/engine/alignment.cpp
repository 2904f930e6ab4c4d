// Alignment in the engine: estimate through per-thread readers and oneTBB, /alignment in and out,
// the misregistration layer.
#include "alignment.hpp"

#include <fmt/format.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "aftermath/core/error.hpp"
#include "aftermath/core/simd.hpp"
#include "aftermath/io/hdf5_reader.hpp"
#include "aftermath/io/output_read.hpp"
#include "aftermath/io/scene.hpp"

namespace aftermath::engine {

namespace {
constexpr float kMisregFill = -1.0f;
constexpr const char* kLatticeGroup = "alignment/lattice";

double number(const std::map<std::string, AttrValue>& attrs, const std::string& name,
              double fallback = 0) {
  const auto it = attrs.find(name);
  if (it == attrs.end()) return fallback;
  if (const auto* d = std::get_if<double>(&it->second)) return *d;
  if (const auto* i = std::get_if<std::int64_t>(&it->second)) return static_cast<double>(*i);
  return fallback;
}

std::string text(const std::map<std::string, AttrValue>& attrs, const std::string& name) {
  const auto it = attrs.find(name);
  if (it == attrs.end()) return {};
  const auto* s = std::get_if<std::string>(&it->second);
  return s ? *s : std::string{};
}

template <typename T>
const std::vector<T>* column(const Table& t, const std::string& name) {
  for (const Column& c : t.columns) {
    if (c.name == name) return std::get_if<std::vector<T>>(&c.values);
  }
  return nullptr;
}
}  // namespace

ForEach arena_for_each(tbb::task_arena& arena) {
  return [&arena](std::size_t n, const std::function<void(std::size_t)>& body) {
    // The release/acquire pairs state for ThreadSanitizer that what the caller wrote happens
    // before the bodies, and the bodies before the caller reads their results (TBB's own
    // synchronisation is not instrumented: every read of the caller's data on a worker was a
    // report, each suppressed by its libtbb frames after a search that grew with the reports,
    // which stalled `scripts/test.sh --tsan` in the radiometric fit).
    std::atomic<bool> started{false};
    started.store(true, std::memory_order_release);
    std::atomic<std::size_t> done{0};
    // Isolated: while it waits for the bodies, the calling thread runs only bodies, never one of
    // the arena's other tasks (the inputs' hashing, the footprints' reading: a quarter to a half
    // second each at 8192^2). Without it, the caller could take one of those in the middle of
    // the loop, and the loop (and the serial step after it) waited for it while the other
    // threads ran out of work.
    arena.execute([&] {
      tbb::this_task_arena::isolate([&] {
        tbb::parallel_for(std::size_t(0), n, [&](std::size_t i) {
          (void)started.load(std::memory_order_acquire);
          body(i);
          done.fetch_add(1, std::memory_order_release);
        });
      });
    });
    if (done.load(std::memory_order_acquire) != n)
      throw Error(ErrorKind::internal, "parallel_for incomplete");
  };
}

Registration estimate_alignment(const Grid& grid, const JobConfig& cfg, const WindowReader& read,
                                const ForEach& for_each, const std::string& post_path) {
  Registration reg = estimate_registration(grid.width, grid.height, cfg.align, read, for_each);
  // Misregistration larger than the configured search is a failure, not "no texture": most
  // windows saw a clear peak beyond max_shift_px, so aligning (or not) would both be wrong.
  const auto beyond = std::count_if(reg.ties.begin(), reg.ties.end(), [](const TiePoint& t) {
    return t.reason == "shift beyond max_shift_px";
  });
  if (reg.kept == 0 && beyond > 0 && 2 * static_cast<std::size_t>(beyond) > reg.ties.size()) {
    throw Error(ErrorKind::input,
                fmt::format("co-registration failed: the post scene {} is shifted by more than "
                            "align.max_shift_px = {} px in {} of {} tie-point windows (raise "
                            "align.max_shift_px)",
                            post_path, cfg.align.max_shift_px, beyond, reg.ties.size()));
  }
  return reg;
}

void write_alignment(Hdf5Writer& writer, const Registration& reg, const Grid& grid) {
  Table t;
  t.group = "alignment/tie_points";
  t.dimension = "tie_point";
  const std::size_t n = reg.ties.size();
  std::vector<double> x(n), y(n), size(n), sx(n), sy(n), peak(n), residual(n), psr(n), ssim0(n),
      ssim1(n), cvr(n);
  std::vector<std::uint8_t> kept(n);
  std::vector<std::string> reason(n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto& tp = reg.ties[i];
    x[i] = tp.centre().x;
    y[i] = tp.centre().y;
    size[i] = tp.window.width;
    sx[i] = tp.shift.x;
    sy[i] = tp.shift.y;
    peak[i] = tp.peak;
    residual[i] = tp.residual;
    kept[i] = tp.kept ? 1 : 0;
    reason[i] = tp.reason;
    psr[i] = tp.psr;
    ssim0[i] = tp.ssim_before;
    ssim1[i] = tp.ssim_after;
    cvr[i] = tp.cv_residual;
  }
  t.columns.push_back(
      {"x", x, "window centre, column of the analysis grid (pixel index)", "pixel", {}});
  t.columns.push_back(
      {"y", y, "window centre, row of the analysis grid (pixel index)", "pixel", {}});
  t.columns.push_back({"window_size", size, "window side", "pixel", {}});
  t.columns.push_back(
      {"shift_x", sx, "measured displacement, columns (post(p + d) = pre(p))", "pixel", {}});
  t.columns.push_back({"shift_y", sy, "measured displacement, rows", "pixel", {}});
  t.columns.push_back({"peak", peak, "normalised phase-correlation peak", "1", {}});
  t.columns.push_back({"residual", residual, "distance from the model displacement", "pixel", {}});
  t.columns.push_back({"kept", kept, "used by the model", "", {}});
  t.columns.push_back({"reason", reason, "why the tie point was dropped", "", {}});
  t.columns.push_back({"psr", psr, "peak-to-sidelobe ratio of the correlation surface", "1", {}});
  t.columns.push_back(
      {"ssim_before", ssim0, "similarity (SSIM) before the measured residual shift", "1", {}});
  t.columns.push_back({"ssim_after", ssim1, "similarity (SSIM) after it", "1", {}});
  t.columns.push_back({"cv_residual",
                       cvr,
                       "residual against the model fitted without this tie point",
                       "pixel",
                       {}});
  writer.write_table(t);

  const ShiftField& f = reg.field;
  const bool has_lattice = f.spacing > 0 && !f.sigma.empty();
  if (has_lattice) {
    Table l;
    l.group = kLatticeGroup;
    l.dimension = "node";
    std::vector<double> lx, ly, ldx, ldy, ls;
    for (int j = 0; j < f.sigma.rows; ++j) {
      for (int i = 0; i < f.sigma.cols; ++i) {
        lx.push_back(f.origin.x + i * f.spacing);
        ly.push_back(f.origin.y + j * f.spacing);
        ldx.push_back(f.dx.empty() ? 0.0 : f.dx.at<double>(j, i));
        ldy.push_back(f.dy.empty() ? 0.0 : f.dy.at<double>(j, i));
        ls.push_back(f.sigma.at<double>(j, i));
      }
    }
    l.columns.push_back({"x", lx, "node column of the analysis grid", "pixel", {}});
    l.columns.push_back({"y", ly, "node row of the analysis grid", "pixel", {}});
    l.columns.push_back(
        {"dx", ldx, "shift field added to the affine part, columns (model field)", "pixel", {}});
    l.columns.push_back(
        {"dy", ldy, "shift field added to the affine part, rows (model field)", "pixel", {}});
    l.columns.push_back({"sigma", ls, "local misregistration uncertainty", "pixel", {}});
    writer.write_table(l);
    const std::string g = std::string("/") + kLatticeGroup;
    writer.set_attribute(g, "origin_x", f.origin.x);
    writer.set_attribute(g, "origin_y", f.origin.y);
    writer.set_attribute(g, "spacing", f.spacing);
    writer.set_attribute(g, "cols", static_cast<std::int64_t>(f.sigma.cols));
    writer.set_attribute(g, "rows", static_cast<std::int64_t>(f.sigma.rows));
    writer.set_attribute(g, "interpolation",
                         std::string("Catmull-Rom (dx, dy), bilinear (sigma); constant beyond"));
  }
  const std::string a = "/alignment";
  writer.set_attribute(a, "model", reg.model);
  writer.set_attribute(a, "method", reg.method);
  writer.set_attribute(a, "shift_x", reg.shift.x);
  writer.set_attribute(a, "shift_y", reg.shift.y);
  static const char* kAffine[6] = {"affine_xx", "affine_xy", "affine_x0",
                                   "affine_yx", "affine_yy", "affine_y0"};
  for (int k = 0; k < 6; ++k) writer.set_attribute(a, kAffine[k], reg.affine.val[k]);
  writer.set_attribute(a, "max_displacement", reg.max_displacement);
  writer.set_attribute(a, "uncertainty", reg.uncertainty);
  writer.set_attribute(a, "rmse_before", reg.rmse_before);
  writer.set_attribute(a, "rmse_after", reg.rmse_after);
  writer.set_attribute(a, "cv_rmse", reg.cv_rmse);
  writer.set_attribute(a, "cv_rmse_translation", reg.cv_translation);
  writer.set_attribute(a, "cv_rmse_affine", reg.cv_affine);
  writer.set_attribute(a, "cv_rmse_field", reg.cv_field);
  writer.set_attribute(a, "tie_points_kept", static_cast<std::int64_t>(reg.kept));
  writer.set_attribute(a, "tie_points_dropped", static_cast<std::int64_t>(reg.dropped));
  writer.set_attribute(a, "grid_width", static_cast<std::int64_t>(grid.width));
  writer.set_attribute(a, "grid_height", static_cast<std::int64_t>(grid.height));
  writer.set_attribute(a, "warning", reg.warning);
  writer.set_attribute(
      a, "convention",
      std::string("post(p + d(p)) = pre(p), analysis-grid pixel indices; translation: d = shift; "
                  "affine: p + d = A (x, y, 1) with A = [affine_xx affine_xy affine_x0; affine_yx "
                  "affine_yy affine_y0]; field: affine + lattice dx, dy"));
}

Registration read_alignment(const std::string& path, const Grid& grid) {
  Hdf5Reader reader(path);
  if (!reader.has("/alignment") || !reader.has("/alignment/tie_points")) {
    throw_input(fmt::format(
        "{} holds no alignment (/alignment): give an `aftermath align` or `aftermath run` output",
        path));
  }
  const auto attrs = read_attributes(path, "/alignment");
  Registration reg;
  reg.model = text(attrs, "model");
  if (reg.model != "identity" && reg.model != "translation" && reg.model != "affine" &&
      reg.model != "field") {
    throw_input(fmt::format("{}: unknown alignment model '{}'", path, reg.model));
  }
  const int w = static_cast<int>(number(attrs, "grid_width", -1)),
            h = static_cast<int>(number(attrs, "grid_height", -1));
  const Grid stored = reader.grid();
  bool same = w == grid.width && h == grid.height && same_crs(stored.crs_wkt, grid.crs_wkt);
  for (int k = 0; k < 6 && same; ++k) {
    same = std::abs(stored.geotransform[static_cast<std::size_t>(k)] -
                    grid.geotransform[static_cast<std::size_t>(k)]) <=
           1e-9 * (1 + std::abs(grid.geotransform[static_cast<std::size_t>(k)]));
  }
  if (!same) {
    throw_input(
        fmt::format("{}: the stored alignment was estimated on a {} x {} px grid that is not this "
                    "run's analysis "
                    "grid ({} x {} px, same CRS and geotransform required)",
                    path, w, h, grid.width, grid.height));
  }
  reg.method = text(attrs, "method");
  reg.warning = text(attrs, "warning");
  reg.shift = {number(attrs, "shift_x"), number(attrs, "shift_y")};
  static const char* kAffine[6] = {"affine_xx", "affine_xy", "affine_x0",
                                   "affine_yx", "affine_yy", "affine_y0"};
  for (int k = 0; k < 6; ++k) reg.affine.val[k] = number(attrs, kAffine[k], reg.affine.val[k]);
  reg.max_displacement = number(attrs, "max_displacement");
  reg.uncertainty = number(attrs, "uncertainty");
  reg.rmse_before = number(attrs, "rmse_before");
  reg.rmse_after = number(attrs, "rmse_after");
  reg.cv_rmse = number(attrs, "cv_rmse");
  reg.cv_translation = number(attrs, "cv_rmse_translation", -1);
  reg.cv_affine = number(attrs, "cv_rmse_affine", -1);
  reg.cv_field = number(attrs, "cv_rmse_field", -1);
  reg.kept = static_cast<int>(number(attrs, "tie_points_kept"));
  reg.dropped = static_cast<int>(number(attrs, "tie_points_dropped"));
  reg.grid = cv::Size(grid.width, grid.height);

  const Table t = read_table(path, "alignment/tie_points", "tie_point");
  const auto* x = column<double>(t, "x");
  const auto* y = column<double>(t, "y");
  const auto* ws = column<double>(t, "window_size");
  const auto* sx = column<double>(t, "shift_x");
  const auto* sy = column<double>(t, "shift_y");
  const auto* kept = column<std::uint8_t>(t, "kept");
  const auto* reason = column<std::string>(t, "reason");
  if (x && y && ws && sx && sy && kept && reason) {
    const auto* peak = column<double>(t, "peak");
    const auto* res = column<double>(t, "residual");
    const auto* psr = column<double>(t, "psr");
    const auto* s0 = column<double>(t, "ssim_before");
    const auto* s1 = column<double>(t, "ssim_after");
    const auto* cvr = column<double>(t, "cv_residual");
    for (std::size_t i = 0; i < x->size(); ++i) {
      TiePoint tp;
      const int side = static_cast<int>((*ws)[i]);
      tp.window = {static_cast<int>(std::lround((*x)[i] - (side - 1) / 2.0)),
                   static_cast<int>(std::lround((*y)[i] - (side - 1) / 2.0)), side, side};
      tp.shift = {(*sx)[i], (*sy)[i]};
      tp.kept = (*kept)[i] != 0;
      tp.reason = (*reason)[i];
      if (peak) tp.peak = (*peak)[i];
      if (res) tp.residual = (*res)[i];
      if (psr) tp.psr = (*psr)[i];
      if (s0) tp.ssim_before = (*s0)[i];
      if (s1) tp.ssim_after = (*s1)[i];
      if (cvr) tp.cv_residual = (*cvr)[i];
      reg.ties.push_back(tp);
    }
  }
  if (reader.has(std::string("/") + kLatticeGroup)) {
    const auto la = read_attributes(path, std::string("/") + kLatticeGroup);
    const Table l = read_table(path, kLatticeGroup, "node");
    const int cols = static_cast<int>(number(la, "cols")),
              rows = static_cast<int>(number(la, "rows"));
    const auto* dx = column<double>(l, "dx");
    const auto* dy = column<double>(l, "dy");
    const auto* sg = column<double>(l, "sigma");
    if (cols > 0 && rows > 0 && dx && dy && sg &&
        dx->size() == static_cast<std::size_t>(cols) * rows && dy->size() == dx->size() &&
        sg->size() == dx->size()) {
      ShiftField& f = reg.field;
      f.origin = {number(la, "origin_x"), number(la, "origin_y")};
      f.spacing = number(la, "spacing");
      f.sigma = cv::Mat(rows, cols, CV_64F, const_cast<double*>(sg->data())).clone();
      if (reg.model == "field") {
        f.dx = cv::Mat(rows, cols, CV_64F, const_cast<double*>(dx->data())).clone();
        f.dy = cv::Mat(rows, cols, CV_64F, const_cast<double*>(dy->data())).clone();
      }
    } else if (reg.model == "field") {
      throw_input(fmt::format("{}: the alignment lattice is malformed", path));
    }
  } else if (reg.model == "field") {
    throw_input(fmt::format("{}: model field without /{}", path, kLatticeGroup));
  }
  bool finite = std::isfinite(reg.max_displacement) && std::isfinite(reg.shift.x) &&
                std::isfinite(reg.shift.y);
  for (int k = 0; k < 6; ++k) finite = finite && std::isfinite(reg.affine.val[k]);
  if (!reg.field.dx.empty())
    finite = finite && cv::checkRange(reg.field.dx) && cv::checkRange(reg.field.dy);
  if (!finite) throw_input(fmt::format("{}: the stored alignment model is not finite", path));
  return reg;
}

LayerSpec misregistration_layer() {
  return {"misregistration",
          LayerType::float32,
          kMisregFill,
          "local misregistration uncertainty of the alignment model (cross-validated tie-point "
          "residuals, 0.01 px "
          "steps; -1 unknown)",
          "pixel",
          {},
          {}};
}

// To 0.01 px, the fill (negative) kept. floor(v + 0.5) is std::round(v) for these v: v = 100 x a
// float >= 0 is exact in double and never within an ulp of a half-integer it is not on, so the
// addition cannot carry it over an integer; unlike std::round (a libm call), floor and the select
// vectorise (given -fno-trapping-math: CMakeLists.txt). k x 0.01 instead of k / 100, a cheaper
// instruction: the double results differ by an ulp at most, and as float they are the same for
// every integer k < 2^24 (k / 100 is never that close to a float's rounding boundary; the unit
// test checks every k), i.e. every value below 167,772 px.
AFTERMATH_AVX2_CLONES void round_to_hundredths(float* p, int n) {
  for (int x = 0; x < n; ++x) {
    const float r = static_cast<float>(std::floor(static_cast<double>(p[x]) * 100.0 + 0.5) * 0.01);
    p[x] = p[x] >= 0 ? r : p[x];
  }
}

cv::Mat misregistration_core(const Registration& registration, const Window& core,
                             const cv::Mat& valid) {
  cv::Mat m;
  if (auto v = uniform_misregistration(registration)) {
    round_to_hundredths(&*v, 1);  // once, not per pixel: the one fill of the tile's layer
    m = cv::Mat(std::max(0, core.height), std::max(0, core.width), CV_32F, cv::Scalar(*v));
  } else {
    m = misregistration(registration, core);
    for (int y = 0; y < m.rows; ++y) round_to_hundredths(m.ptr<float>(y), m.cols);
  }
  if (!valid.empty()) {
    const cv::Mat invalid = valid == 0;
    if (cv::countNonZero(invalid) > 0) m.setTo(kMisregFill, invalid);  // most tiles have none
  }
  return m;
}

}  // namespace aftermath::engine
