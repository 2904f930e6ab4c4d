// aftermath evaluate / sweep / calibrate: an output against labels.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>

#include "aftermath/config/config.hpp"
#include "aftermath/core/error.hpp"
#include "aftermath/engine/analyst.hpp"
#include "commands.hpp"

namespace aftermath::cli {

namespace {

struct TruthOptions {
  EvaluateRequest req;
};

void add_truth_options(CLI::App* sub, TruthOptions& o) {
  sub->add_option("output", o.req.output, "an aftermath output (HDF5)")->required();
  sub->add_option("--truth", o.req.truth,
                  "labels: xBD label JSON, GeoJSON/GeoPackage polygons or points with a class attribute, or a "
                  "change-mask raster (nonzero = change)")
      ->required();
  sub->add_option("--truth-field", o.req.truth_field, "class attribute of vector truth (default: subtype, then damage)");
  sub->add_option("--truth-layer", o.req.truth_layer, "layer of a multi-layer vector truth");
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  if (!f) throw Error(ErrorKind::output, path + ": cannot be written");
}

std::string pct(double v) { return std::isfinite(v) ? fmt::format("{:.3f}", v) : std::string("n/a"); }

}  // namespace

Command add_evaluate(CLI::App& app) {
  struct Options : TruthOptions {
    std::string json, csv;
    bool store = false;
  };
  auto o = std::make_shared<Options>();
  auto* sub = app.add_subcommand("evaluate",
                                 "Score an output against labels: per-class precision, recall, F1, IoU, the confusion "
                                 "matrix, ROC AUC and the xView2 score (docs/analyst.md).\n" + std::string(kExitCodes));
  add_truth_options(sub, *o);
  sub->add_option("--json", o->json, "write the metrics as JSON to this file ('-' = stdout)");
  sub->add_option("--csv", o->csv, "write the metrics as CSV (metric,value) to this file");
  sub->add_flag("--store", o->store, "store the metrics in the output's /evaluation group (atomic rewrite)");
  return {sub, [o] {
            const Evaluation e = evaluate_output(o->req);
            if (o->json == "-") std::cout << evaluation_json(e);
            else if (!o->json.empty()) write_text(o->json, evaluation_json(e));
            if (!o->csv.empty()) write_text(o->csv, evaluation_csv(e));
            if (o->store) store_evaluation(o->req.output, e, o->req.truth);
            if (o->json != "-") {
              if (e.truth_kind == "raster") {
                std::cout << fmt::format("pixels      precision {} recall {} F1 {} IoU {}; ROC AUC {}\n",
                                         pct(e.pixels.precision()), pct(e.pixels.recall()), pct(e.pixels.f1()),
                                         pct(e.pixels.iou()), pct(e.pixel_roc_auc));
              } else {
                std::cout << fmt::format("truth       {} ({} labelled, {} in no output feature)\n", e.truth_kind,
                                         e.truth_items, e.truth_unmatched);
                std::cout << fmt::format("evaluated   {} features (metric {})\n", e.evaluated, e.metric);
                for (const auto& c : e.classes) {
                  std::cout << fmt::format("  {:<13} P {} R {} F1 {} IoU {} (support {})\n", c.name, pct(c.counts.precision()),
                                           pct(c.counts.recall()), pct(c.counts.f1()), pct(c.counts.iou()), c.support);
                }
                std::cout << fmt::format("localisation F1 {}; damaged F1 {}; ROC AUC {}; xView2 score {}\n",
                                         pct(e.localisation.f1()), pct(e.damaged.f1()), pct(e.roc_auc), pct(e.xview2));
              }
            }
            return 0;
          }};
}

Command add_sweep(CLI::App& app) {
  struct Options : TruthOptions {
    std::string dir = ".";
    int boundary = 1;
  };
  auto o = std::make_shared<Options>();
  auto* sub = app.add_subcommand("sweep",
                                 "Sweep the damage threshold (per-feature metric; pixel score for raster truth) and "
                                 "draw precision-recall and ROC curves as PNG.\n" + std::string(kExitCodes));
  add_truth_options(sub, *o);
  sub->add_option("--out-dir", o->dir, "directory for sweep.csv, pr.png, roc.png (default: .)");
  sub->add_option("--class", o->boundary, "damaged = truth class >= this (1 minor, 2 major, 3 destroyed; default 1)")
      ->check(CLI::Range(1, 3));
  return {sub, [o] {
            const Evaluation e = evaluate_output(o->req);
            const SweepCurves s = sweep(e, o->boundary);
            std::filesystem::create_directories(o->dir);
            write_text(o->dir + "/sweep.csv", sweep_csv(s));
            write_curve_pngs(s, o->dir + "/pr.png", o->dir + "/roc.png");
            std::cout << fmt::format("sweep       {} over {} thresholds; ROC AUC {}\n", s.variable, s.points.size(), pct(s.auc));
            std::cout << fmt::format("wrote       {0}/sweep.csv {0}/pr.png {0}/roc.png\n", o->dir);
            return 0;
          }};
}

Command add_calibrate(CLI::App& app) {
  struct Options : TruthOptions {
    std::string target = "f1", out;
    double value = 0;
  };
  auto o = std::make_shared<Options>();
  auto* sub = app.add_subcommand("calibrate",
                                 "Write a config with the thresholds that meet a target against labels: best F1, "
                                 "precision >= P or recall >= R.\n" + std::string(kExitCodes));
  add_truth_options(sub, *o);
  sub->add_option("--target", o->target, "f1 | precision | recall")->check(CLI::IsMember({"f1", "precision", "recall"}));
  sub->add_option("--min", o->value, "the minimum precision or recall for --target precision|recall")->check(CLI::Range(0.0, 1.0));
  sub->add_option("-o,--out", o->out, "the config to write (YAML)")->required();
  return {sub, [o] {
            const Evaluation e = evaluate_output(o->req);
            const Calibration c = calibrate(o->req.output, e, o->target, o->value);
            write_text(o->out, to_yaml(c.config));
            for (const auto& n : c.notes) std::cout << n << "\n";
            std::cout << fmt::format("wrote       {} (use: aftermath rescore {} --config {})\n", o->out, o->req.output, o->out);
            return 0;
          }};
}

}  // namespace aftermath::cli
