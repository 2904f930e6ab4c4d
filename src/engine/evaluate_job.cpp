// evaluate / sweep / calibrate on an output: truth matching, metrics (evaluate module), JSON/CSV,
// the /evaluation group, curves drawn with OpenCV.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <opencv2/imgproc.hpp>
#include <optional>

#include "aftermath/core/error.hpp"
#include "aftermath/engine/analyst.hpp"
#include "aftermath/io/hdf5_reader.hpp"
#include "aftermath/io/output_read.hpp"
#include "aftermath/io/png.hpp"
#include "aftermath/io/scene.hpp"
#include "aftermath/io/truth.hpp"
#include "aftermath/score/threshold.hpp"
#include "classify.hpp"

namespace aftermath {

namespace {

constexpr int kPixelBins = 4096;
const char* kClassNames[4] = {"no_damage", "minor_damage", "major_damage", "destroyed"};

bool inside_rings(const Footprint& f, const cv::Point2d& p) {
  if (!(p.x >= f.bbox.x && p.x <= f.bbox.x + f.bbox.width && p.y >= f.bbox.y &&
        p.y <= f.bbox.y + f.bbox.height))
    return false;
  bool in = false;
  for (const auto& ring : f.rings) {
    for (std::size_t i = 0, n = ring.size(), j = n - 1; i < n; j = i++) {
      const auto& a = ring[i];
      const auto& b = ring[j];
      if ((a.y > p.y) != (b.y > p.y) && p.x < (b.x - a.x) * (p.y - a.y) / (b.y - a.y) + a.x)
        in = !in;
    }
  }
  return in;
}

nlohmann::json binary_json(const BinaryMetrics& m) {
  return {{"precision", m.precision()},
          {"recall", m.recall()},
          {"f1", m.f1()},
          {"iou", m.iou()},
          {"tp", m.tp},
          {"fp", m.fp},
          {"fn", m.fn},
          {"tn", m.tn}};
}

nlohmann::json number_or_null(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

}  // namespace

Evaluation evaluate_output(const EvaluateRequest& req) {
  init_gdal();
  Hdf5Reader reader(req.output);
  const Grid grid = reader.grid();
  const auto yaml = reader.string_attribute("/", "config");
  if (!yaml)
    throw Error(ErrorKind::input, req.output + ": no config attribute (not an aftermath output?)");
  const JobConfig cfg = parse_config(*yaml, req.output + " (stored config)");
  Evaluation e;
  e.metric = cfg.damage.metric;
  std::error_code ec;
  if (!std::filesystem::exists(req.truth, ec))
    throw Error(ErrorKind::input, req.truth + ": does not exist");

  if (!is_vector_truth(req.truth)) {
    // A change-mask raster: nonzero = change, read onto the grid.
    e.truth_kind = "raster";
    const SceneInfo info = open_scene(req.truth, InputConfig{});
    SceneReader truth(info, grid, ReadOptions{{1}, std::nullopt, "nearest"});
    e.pixel_pos_hist.assign(kPixelBins, 0);
    e.pixel_neg_hist.assign(kPixelBins, 0);
    const int strip = 512;
    for (int y = 0; y < grid.height; y += strip) {
      const Window w{0, y, grid.width, std::min(strip, grid.height - y)};
      const SceneWindow t = truth.read(w);
      const cv::Mat mask = reader.layer("damage_mask", w);
      const cv::Mat score = engine::read_scores(reader, w);
      for (int r = 0; r < w.height; ++r) {
        const auto* tv = t.bands[0].ptr<float>(r);
        const auto* tok = t.valid.ptr<std::uint8_t>(r);
        const auto* m = mask.ptr<std::uint8_t>(r);
        const auto* s = score.ptr<float>(r);
        for (int c = 0; c < w.width; ++c) {
          if (!tok[c] || m[c] == kMaskInvalid) continue;
          const bool tr = tv[c] != 0.0f;
          e.pixels.add(m[c] == kMaskChanged, tr);
          const float sv = std::isfinite(s[c]) ? std::clamp(s[c], 0.0f, 1.0f) : 0.0f;
          const int bin = std::min(kPixelBins - 1, static_cast<int>(sv * kPixelBins));
          ++(tr ? e.pixel_pos_hist : e.pixel_neg_hist)[static_cast<std::size_t>(bin)];
        }
      }
    }
    e.pixel_roc_auc = roc_auc_from_histograms(e.pixel_pos_hist, e.pixel_neg_hist);
    e.roc_auc = std::numeric_limits<double>::quiet_NaN();
    e.xview2 = std::numeric_limits<double>::quiet_NaN();
    return e;
  }

  const TruthItems truth = read_truth_vector(req.truth, grid, req.truth_field, req.truth_layer);
  for (const auto& w : truth.warnings) spdlog::debug("truth: {}", w);
  e.truth_kind = truth.kind;
  const std::vector<Footprint> features = read_output_footprints(reader, grid);
  if (features.empty())
    throw Error(ErrorKind::input, req.output + ": no footprints to evaluate against vector truth");
  const auto status = reader.column_uint8("footprints/status");
  const auto damage = reader.column_uint8("footprints/damage_class");
  // The operating points' grades, on the xBD scale (outputs before issue 5 have none).
  std::array<std::vector<std::uint8_t>, 3> op_class;
  e.operating_points = reader.has("/footprints/damage_grade_high_recall");
  if (e.operating_points) {
    const auto scheme = damage_scheme_from_string(
        reader.string_attribute("/footprints/damage_grade", "scheme").value_or("xbd"));
    const char* names[3] = {"footprints/damage_grade", "footprints/damage_grade_high_precision",
                            "footprints/damage_grade_high_recall"};
    for (std::size_t k = 0; k < 3; ++k) {
      const auto grades = reader.column_uint8(names[k]);
      op_class[k].resize(grades.size());
      for (std::size_t i = 0; i < grades.size(); ++i) {
        op_class[k][i] =
            static_cast<std::uint8_t>(to_xbd_class(scheme.value_or(DamageScheme::xbd), grades[i]));
      }
    }
  }
  const auto metric = reader.column_double("footprints/" + cfg.damage.metric);
  std::vector<int> truth_of(features.size(), -1);
  for (std::size_t i = 0; i < truth.points.size(); ++i) {
    const int c =
        truth.classes[i] == DamageClass::unclassified ? -1 : static_cast<int>(truth.classes[i]);
    if (c < 0) continue;
    ++e.truth_items;
    bool matched = false;
    for (std::size_t f = 0; f < features.size(); ++f) {
      if (status[f] == static_cast<std::uint8_t>(FeatureStatus::outside)) continue;
      if (inside_rings(features[f], truth.points[i])) {
        truth_of[f] = std::max(truth_of[f], c);  // several labels in one building: the most severe
        matched = true;
        break;
      }
    }
    if (!matched) ++e.truth_unmatched;
  }
  std::vector<int> t_all, p_all;
  for (std::size_t f = 0; f < features.size(); ++f) {
    if (status[f] == static_cast<std::uint8_t>(FeatureStatus::outside)) continue;
    ++e.features;
    int t = truth_of[f];
    if (t < 0 && truth.kind == "points")
      t = 0;  // points mark damage: a building without one is undamaged
    if (truth_of[f] >= 0 || truth.kind == "points")
      ++e.localisation.tp;
    else
      ++e.localisation.fp;
    if (t < 0) continue;
    if (status[f] != static_cast<std::uint8_t>(FeatureStatus::scored) || damage[f] > 3) {
      ++e.unscored_with_truth;
      continue;
    }
    ++e.evaluated;
    t_all.push_back(t);
    p_all.push_back(damage[f]);
    for (std::size_t k = 0; k < 3 && e.operating_points; ++k) {
      const int p = op_class[k][f] > 3 ? 0 : op_class[k][f];
      e.destroyed_at[k].add(p == 3, t == 3);
      e.severe_at[k].add(p >= 2, t >= 2);
    }
    e.feature_metric.push_back(metric[f]);
    e.feature_truth.push_back(t);
  }
  e.localisation.fn = e.truth_unmatched;
  e.confusion = confusion_matrix(t_all, p_all, 4);
  std::array<double, 4> f1s{};
  for (int c = 0; c < 4; ++c) {
    auto& cs = e.classes[static_cast<std::size_t>(c)];
    cs.name = kClassNames[c];
    cs.counts = e.confusion.one_vs_rest(c);
    cs.support = cs.counts.tp + cs.counts.fn;
    f1s[static_cast<std::size_t>(c)] = cs.counts.f1();
  }
  std::vector<bool> damaged_truth;
  for (std::size_t i = 0; i < t_all.size(); ++i) {
    const bool tr = t_all[i] >= 1;
    damaged_truth.push_back(tr);
    e.damaged.add(p_all[i] >= 1, tr);
  }
  e.roc_auc = roc_auc(e.feature_metric, damaged_truth);
  e.damage_f1_harmonic = xview2_harmonic_mean({f1s.begin(), f1s.end()});
  e.xview2 = xview2_score(e.localisation.f1(), f1s);
  return e;
}

std::string evaluation_json(const Evaluation& e) {
  nlohmann::json j;
  j["truth_kind"] = e.truth_kind;
  if (e.truth_kind == "raster") {
    j["pixels"] = binary_json(e.pixels);
    j["pixel_roc_auc"] = number_or_null(e.pixel_roc_auc);
    return j.dump(2) + "\n";
  }
  j["metric"] = e.metric;
  j["features"] = e.features;
  j["truth_items"] = e.truth_items;
  j["truth_unmatched"] = e.truth_unmatched;
  j["evaluated"] = e.evaluated;
  j["unscored_with_truth"] = e.unscored_with_truth;
  j["localisation"] = binary_json(e.localisation);
  nlohmann::json classes = nlohmann::json::object();
  for (const auto& c : e.classes) {
    auto cj = binary_json(c.counts);
    cj["support"] = c.support;
    classes[c.name] = cj;
  }
  j["classes"] = classes;
  nlohmann::json cm = nlohmann::json::array();
  for (int t = 0; t < 4; ++t) {
    nlohmann::json row = nlohmann::json::array();
    for (int p = 0; p < 4; ++p) row.push_back(e.confusion.at(t, p));
    cm.push_back(row);
  }
  j["confusion_matrix"] = {
      {"rows", "truth"},
      {"columns", "predicted"},
      {"classes", {kClassNames[0], kClassNames[1], kClassNames[2], kClassNames[3]}},
      {"counts", cm}};
  j["damaged"] = binary_json(e.damaged);
  if (e.operating_points) {
    const char* names[3] = {"default", "high_precision", "high_recall"};
    nlohmann::json ops = nlohmann::json::object();
    for (std::size_t k = 0; k < 3; ++k) {
      ops[names[k]] = {{"destroyed", binary_json(e.destroyed_at[k])},
                       {"major_or_destroyed", binary_json(e.severe_at[k])}};
    }
    j["operating_points"] = ops;
  }
  j["roc_auc"] = number_or_null(e.roc_auc);
  j["damage_f1_harmonic_mean"] = e.damage_f1_harmonic;
  j["xview2_score"] = number_or_null(e.xview2);
  return j.dump(2) + "\n";
}

std::string evaluation_csv(const Evaluation& e) {
  std::string out = "metric,value\n";
  const auto add = [&](const std::string& k, double v) {
    out += k + "," + (std::isfinite(v) ? fmt::format("{:.17g}", v) : std::string()) + "\n";
  };
  const auto add_bin = [&](const std::string& p, const BinaryMetrics& m) {
    add(p + ".precision", m.precision());
    add(p + ".recall", m.recall());
    add(p + ".f1", m.f1());
    add(p + ".iou", m.iou());
    add(p + ".tp", double(m.tp));
    add(p + ".fp", double(m.fp));
    add(p + ".fn", double(m.fn));
    add(p + ".tn", double(m.tn));
  };
  out += "truth_kind," + e.truth_kind + "\n";
  if (e.truth_kind == "raster") {
    add_bin("pixels", e.pixels);
    add("pixel_roc_auc", e.pixel_roc_auc);
    return out;
  }
  add("features", double(e.features));
  add("truth_items", double(e.truth_items));
  add("truth_unmatched", double(e.truth_unmatched));
  add("evaluated", double(e.evaluated));
  add_bin("localisation", e.localisation);
  for (const auto& c : e.classes) {
    add_bin(c.name, c.counts);
    add(c.name + ".support", double(c.support));
  }
  for (int t = 0; t < 4; ++t) {
    for (int p = 0; p < 4; ++p)
      add(fmt::format("confusion.{}.{}", kClassNames[t], kClassNames[p]),
          double(e.confusion.at(t, p)));
  }
  add_bin("damaged", e.damaged);
  if (e.operating_points) {
    const char* names[3] = {"default", "high_precision", "high_recall"};
    for (std::size_t k = 0; k < 3; ++k) {
      add_bin(std::string("destroyed_") + names[k], e.destroyed_at[k]);
      add_bin(std::string("major_or_destroyed_") + names[k], e.severe_at[k]);
    }
  }
  add("roc_auc", e.roc_auc);
  add("damage_f1_harmonic_mean", e.damage_f1_harmonic);
  add("xview2_score", e.xview2);
  return out;
}

void store_evaluation(const std::string& output, const Evaluation& e,
                      const std::string& truth_path) {
  std::map<std::string, AttrValue> attrs;
  attrs["truth"] = truth_path;
  attrs["truth_kind"] = e.truth_kind;
  attrs["created"] = utc_timestamp();
  attrs["json"] = evaluation_json(e);
  std::vector<Table> tables;
  if (e.truth_kind == "raster") {
    attrs["pixel_precision"] = e.pixels.precision();
    attrs["pixel_recall"] = e.pixels.recall();
    attrs["pixel_f1"] = e.pixels.f1();
    attrs["pixel_iou"] = e.pixels.iou();
    attrs["pixel_roc_auc"] = e.pixel_roc_auc;
  } else {
    attrs["metric"] = e.metric;
    attrs["xview2_score"] = e.xview2;
    attrs["localisation_f1"] = e.localisation.f1();
    attrs["damage_f1_harmonic_mean"] = e.damage_f1_harmonic;
    attrs["roc_auc"] = e.roc_auc;
    attrs["evaluated"] = e.evaluated;
    Table t;
    t.group = "evaluation/classes";
    t.dimension = "class";
    std::vector<std::string> names;
    std::vector<double> p, r, f, iou;
    std::vector<std::int64_t> support, tp, fp, fn;
    for (const auto& c : e.classes) {
      names.push_back(c.name);
      p.push_back(c.counts.precision());
      r.push_back(c.counts.recall());
      f.push_back(c.counts.f1());
      iou.push_back(c.counts.iou());
      support.push_back(c.support);
      tp.push_back(c.counts.tp);
      fp.push_back(c.counts.fp);
      fn.push_back(c.counts.fn);
    }
    t.columns = {{"name", names, "damage class", "", {}},
                 {"precision", p, "precision", "1", {}},
                 {"recall", r, "recall", "1", {}},
                 {"f1", f, "F1", "1", {}},
                 {"iou", iou, "intersection over union", "1", {}},
                 {"support", support, "truth count", "1", {}},
                 {"tp", tp, "true positives", "1", {}},
                 {"fp", fp, "false positives", "1", {}},
                 {"fn", fn, "false negatives", "1", {}}};
    tables.push_back(t);
    Table cm;
    cm.group = "evaluation/confusion";
    cm.dimension = "truth_class";
    for (int pcls = 0; pcls < 4; ++pcls) {
      std::vector<std::int64_t> col;
      for (int tcls = 0; tcls < 4; ++tcls) col.push_back(e.confusion.at(tcls, pcls));
      cm.columns.push_back({std::string("predicted_") + kClassNames[pcls],
                            col,
                            "features of each truth class (row) predicted as this class",
                            "1",
                            {}});
    }
    tables.push_back(cm);
  }
  store_group_atomically(output, "evaluation", tables, attrs);
}

// ---- sweep -------------------------------------------------------------------------------------

SweepCurves sweep(const Evaluation& e, int boundary) {
  SweepCurves s;
  std::vector<double> thresholds;
  for (int i = 0; i <= 100; ++i) thresholds.push_back(i / 100.0);
  if (e.truth_kind == "raster") {
    s.variable = "threshold.value";
    const std::int64_t P =
        std::accumulate(e.pixel_pos_hist.begin(), e.pixel_pos_hist.end(), std::int64_t{0});
    const std::int64_t N =
        std::accumulate(e.pixel_neg_hist.begin(), e.pixel_neg_hist.end(), std::int64_t{0});
    for (const double t : thresholds) {
      SweepPoint p;
      p.threshold = t;
      const int first = std::clamp(static_cast<int>(std::ceil(t * kPixelBins)), 0, kPixelBins);
      for (int b = first; b < kPixelBins; ++b) {
        p.counts.tp += e.pixel_pos_hist[static_cast<std::size_t>(b)];
        p.counts.fp += e.pixel_neg_hist[static_cast<std::size_t>(b)];
      }
      p.counts.fn = P - p.counts.tp;
      p.counts.tn = N - p.counts.fp;
      s.points.push_back(p);
    }
    s.auc = e.pixel_roc_auc;
    return s;
  }
  static const char* names[4] = {"", "damage.minor", "damage.major", "damage.destroyed"};
  s.variable = names[std::clamp(boundary, 1, 3)];
  std::vector<bool> truth;
  for (const int t : e.feature_truth) truth.push_back(t >= boundary);
  s.points = threshold_sweep(e.feature_metric, truth, thresholds);
  s.auc = roc_auc(e.feature_metric, truth);
  return s;
}

std::string sweep_csv(const SweepCurves& s) {
  std::string out = "variable,threshold,precision,recall,f1,fpr,tp,fp,fn,tn\n";
  for (const auto& p : s.points) {
    out += fmt::format("{},{:.2f},{:.6f},{:.6f},{:.6f},{:.6f},{},{},{},{}\n", s.variable,
                       p.threshold, p.counts.precision(), p.counts.recall(), p.counts.f1(), p.fpr(),
                       p.counts.tp, p.counts.fp, p.counts.fn, p.counts.tn);
  }
  return out;
}

namespace {

cv::Mat draw_plot(const std::string& title, const std::string& xlabel, const std::string& ylabel,
                  const std::vector<cv::Point2d>& curve, bool diagonal) {
  const int W = 640, H = 520, L = 80, R = 30, T = 50, B = 70;
  cv::Mat img(H, W, CV_8UC3, cv::Scalar(255, 255, 255));
  const auto px = [&](double x, double y) {
    return cv::Point(L + static_cast<int>(std::lround(x * (W - L - R))),
                     H - B - static_cast<int>(std::lround(y * (H - T - B))));
  };
  const int font = cv::FONT_HERSHEY_SIMPLEX;
  for (int i = 0; i <= 5; ++i) {
    const double v = i / 5.0;
    cv::line(img, px(v, 0), px(v, 1), cv::Scalar(225, 225, 225), 1);
    cv::line(img, px(0, v), px(1, v), cv::Scalar(225, 225, 225), 1);
    const std::string lbl = fmt::format("{:.1f}", v);
    cv::putText(img, lbl, px(v, 0) + cv::Point(-12, 22), font, 0.45, cv::Scalar(0, 0, 0), 1,
                cv::LINE_AA);
    cv::putText(img, lbl, px(0, v) + cv::Point(-36, 5), font, 0.45, cv::Scalar(0, 0, 0), 1,
                cv::LINE_AA);
  }
  cv::rectangle(img, px(0, 1), px(1, 0), cv::Scalar(0, 0, 0), 1);
  if (diagonal) cv::line(img, px(0, 0), px(1, 1), cv::Scalar(160, 160, 160), 1, cv::LINE_AA);
  std::vector<cv::Point> pts;
  for (const auto& p : curve)
    pts.push_back(px(std::clamp(p.x, 0.0, 1.0), std::clamp(p.y, 0.0, 1.0)));
  if (pts.size() > 1) cv::polylines(img, pts, false, cv::Scalar(180, 90, 20), 2, cv::LINE_AA);
  for (const auto& p : pts) cv::circle(img, p, 2, cv::Scalar(180, 90, 20), -1, cv::LINE_AA);
  cv::putText(img, title, cv::Point(L, 32), font, 0.6, cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
  cv::putText(img, xlabel, cv::Point(L + (W - L - R) / 2 - 40, H - 22), font, 0.55,
              cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
  cv::Mat ylab(30, 200, CV_8UC3, cv::Scalar(255, 255, 255));
  cv::putText(ylab, ylabel, cv::Point(5, 20), font, 0.55, cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
  cv::rotate(ylab, ylab, cv::ROTATE_90_COUNTERCLOCKWISE);
  ylab.copyTo(img(cv::Rect(8, T + (H - T - B) / 2 - 100, ylab.cols, ylab.rows)));
  return img;
}

std::vector<std::uint8_t> png_bytes(const cv::Mat& img) { return encode_png(img); }

void write_bytes(const std::string& path, const std::vector<std::uint8_t>& b) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  if (!f) throw Error(ErrorKind::output, path + ": cannot be written");
}

}  // namespace

std::vector<std::uint8_t> pr_png_bytes(const SweepCurves& s) {
  std::vector<cv::Point2d> c;
  for (const auto& p : s.points) {
    if (p.counts.tp + p.counts.fp > 0) c.emplace_back(p.counts.recall(), p.counts.precision());
  }
  return png_bytes(
      draw_plot("Precision-recall, sweep of " + s.variable, "recall", "precision", c, false));
}

std::vector<std::uint8_t> roc_png_bytes(const SweepCurves& s) {
  std::vector<cv::Point2d> c;
  for (const auto& p : s.points) c.emplace_back(p.fpr(), p.counts.recall());
  c.emplace_back(0, 0);
  return png_bytes(draw_plot(fmt::format("ROC, sweep of {} (AUC {:.3f})", s.variable, s.auc),
                             "false positive rate", "true positive rate", c, true));
}

void write_curve_pngs(const SweepCurves& s, const std::string& pr_png, const std::string& roc_png) {
  write_bytes(pr_png, pr_png_bytes(s));
  write_bytes(roc_png, roc_png_bytes(s));
}

// ---- calibrate ---------------------------------------------------------------------------------

Calibration calibrate(const std::string& output, const Evaluation& e, const std::string& target,
                      double value) {
  Hdf5Reader reader(output);
  const auto yaml = reader.string_attribute("/", "config");
  if (!yaml)
    throw Error(ErrorKind::input, output + ": no config attribute (not an aftermath output?)");
  Calibration cal;
  cal.config = parse_config(*yaml, output + " (stored config)");
  const auto choose = [&](const SweepCurves& s) -> std::optional<SweepPoint> {
    const int i = pick_threshold(s.points, target, value);
    if (i < 0) return std::nullopt;
    return s.points[static_cast<std::size_t>(i)];
  };
  const auto describe = [](const std::string& var, const SweepPoint& p) {
    return fmt::format("{} = {:.2f}: precision {:.3f}, recall {:.3f}, F1 {:.3f}", var, p.threshold,
                       p.counts.precision(), p.counts.recall(), p.counts.f1());
  };
  if (e.truth_kind == "raster") {
    const SweepCurves s = sweep(e);
    const auto p = choose(s);
    if (!p)
      throw Error(ErrorKind::usage,
                  fmt::format("no score threshold reaches {} >= {}", target, value));
    cal.config.threshold.method = "fixed";
    cal.config.threshold.value = p->threshold;
    cal.notes.push_back(describe(s.variable, *p));
  } else {
    double* slots[4] = {nullptr, &cal.config.damage.minor, &cal.config.damage.major,
                        &cal.config.damage.destroyed};
    bool any = false;
    for (int k = 1; k <= 3; ++k) {
      const SweepCurves s = sweep(e, k);
      const bool has_pos = std::any_of(e.feature_truth.begin(), e.feature_truth.end(),
                                       [&](int t) { return t >= k; });
      const auto p = has_pos ? choose(s) : std::nullopt;
      if (!p) {
        cal.notes.push_back(fmt::format(
            "{} kept at {:.2f} ({})", s.variable, *slots[k],
            has_pos ? "no threshold meets the target" : "no truth feature of that class"));
        continue;
      }
      any = true;
      *slots[k] = p->threshold;
      cal.notes.push_back(describe(s.variable, *p));
    }
    if (!any)
      throw Error(ErrorKind::usage,
                  fmt::format("no damage threshold reaches {} >= {}", target, value));
    // Keep minor <= major <= destroyed.
    cal.config.damage.major = std::max(cal.config.damage.major, cal.config.damage.minor);
    cal.config.damage.destroyed = std::max(cal.config.damage.destroyed, cal.config.damage.major);
  }
  validate(cal.config);
  return cal;
}

}  // namespace aftermath
