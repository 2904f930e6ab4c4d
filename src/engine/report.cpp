// aftermath report: one self-contained HTML page (inline PNGs, SVG footprints, metrics, curves,
// a threshold slider that re-classifies the footprints client-side).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include "aftermath/core/error.hpp"
#include "aftermath/engine/analyst.hpp"
#include "aftermath/io/hdf5_reader.hpp"
#include "aftermath/io/output_read.hpp"
#include "aftermath/io/png.hpp"
#include "aftermath/io/scene.hpp"
#include "aftermath/score/threshold.hpp"
#include "classify.hpp"

namespace aftermath {

namespace {

std::string base64(const std::vector<std::uint8_t>& in) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const unsigned v = (unsigned(in[i]) << 16) | (unsigned(in[i + 1]) << 8) | in[i + 2];
    out += t[(v >> 18) & 63];
    out += t[(v >> 12) & 63];
    out += t[(v >> 6) & 63];
    out += t[v & 63];
  }
  if (i < in.size()) {
    const unsigned v = (unsigned(in[i]) << 16) | (i + 1 < in.size() ? unsigned(in[i + 1]) << 8 : 0u);
    out += t[(v >> 18) & 63];
    out += t[(v >> 12) & 63];
    out += i + 1 < in.size() ? t[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string png_uri(const cv::Mat& img) {
  return "data:image/png;base64," + base64(encode_png(img));
}

std::string png_uri(const std::vector<std::uint8_t>& buf) { return "data:image/png;base64," + base64(buf); }

std::string esc(const std::string& s) {
  std::string o;
  for (const char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else if (c == '"') o += "&quot;";
    else o += c;
  }
  return o;
}

// Reads a grid-sized source strip by strip and downsamples it to `size` (INTER_AREA).
template <typename ReadStrip>
cv::Mat downsample(const Grid& grid, cv::Size size, int type, ReadStrip read) {
  cv::Mat out(size, type, cv::Scalar::all(0));
  const double s = double(size.height) / grid.height;
  const int strip = 512;
  for (int y = 0; y < grid.height; y += strip) {
    const int h = std::min(strip, grid.height - y);
    const int y0 = static_cast<int>(std::floor(y * s)), y1 = static_cast<int>(std::floor((y + h) * s));
    if (y1 <= y0) continue;
    cv::Mat piece = read(Window{0, y, grid.width, h});
    cv::Mat small;
    cv::resize(piece, small, cv::Size(size.width, y1 - y0), 0, 0, cv::INTER_AREA);
    small.copyTo(out(cv::Rect(0, y0, size.width, y1 - y0)));
  }
  return out;
}

cv::Mat scene_quicklook(const std::string& path, const Grid& grid, cv::Size size) {
  const SceneInfo info = open_scene(path, InputConfig{});
  SceneReader reader(info, grid, ReadOptions{});
  std::vector<cv::Mat> small_bands;
  cv::Mat img = downsample(grid, size, CV_32FC3, [&](const Window& w) {
    SceneWindow sw = reader.read(w);
    std::vector<cv::Mat> b;
    for (int i = 0; i < 3; ++i) b.push_back(sw.bands[std::min<std::size_t>(static_cast<std::size_t>(i), sw.bands.size() - 1)]);
    std::swap(b[0], b[2]);  // RGB -> BGR
    cv::Mat m;
    cv::merge(b, m);
    return m;
  });
  // 2-98 % stretch per band.
  std::vector<cv::Mat> ch;
  cv::split(img, ch);
  for (auto& c : ch) {
    std::vector<float> v(c.begin<float>(), c.end<float>());
    std::sort(v.begin(), v.end());
    const float lo = v.empty() ? 0 : v[v.size() * 2 / 100], hi = v.empty() ? 1 : v[v.size() * 98 / 100];
    c.convertTo(c, CV_8U, 255.0 / std::max(1e-6f, hi - lo), -lo * 255.0 / std::max(1e-6f, hi - lo));
  }
  cv::Mat out;
  cv::merge(ch, out);
  return out;
}

const char* kPage = R"HTML(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>aftermath report: @TITLE@</title>
<style>
body{font-family:system-ui,sans-serif;margin:16px;color:#222}
.row{display:flex;flex-wrap:wrap;gap:12px}
figure{margin:0}figcaption{font-size:13px;color:#555}
.panel{position:relative;width:@W@px;height:@H@px;background:#ddd}
.panel img,.panel svg{position:absolute;left:0;top:0;width:@W@px;height:@H@px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}.note{color:#a33}
.sw{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle}
</style></head><body>
<h1>aftermath report</h1>
<p><b>@TITLE@</b> &mdash; grid @GW@ &times; @GH@ px, @CRS@; score threshold @THR@; metric <code>@METRIC@</code>.</p>
@NOTES@
<div class="row">@PANELS@</div>
<h2>Footprints by class</h2>
<div class="row"><figure><div class="panel">@BASE@<svg id="fp" viewBox="0 0 @GW@ @GH@" preserveAspectRatio="none"></svg></div>
<figcaption>footprints on the @BASENAME@ quicklook, coloured by class</figcaption></figure>
<div style="max-width:440px"><p><label for="thr">minor-damage threshold (major and destroyed move with it): <output id="thrv"></output></label><br>
<input type="range" id="thr" min="0" max="1" step="0.01" style="width:320px"></p>
<table id="counts"><tr><th>class</th><th>features</th></tr></table>
<p style="font-size:13px">Thresholds: <span id="thrs"></span>. Re-classified in the page from each feature's stored
<code>@METRIC@</code>; <code>aftermath rescore</code> applies them to the file.</p></div></div>
@METRICS@
<pre id="selftest"></pre>
<script id="data" type="application/json">@DATA@</script>
<script>
"use strict";
const errors = [];
window.addEventListener("error", e => errors.push(String(e.message)));
const origError = console.error;
console.error = function(...a) { errors.push(a.join(" ")); origError.apply(console, a); };
const D = JSON.parse(document.getElementById("data").textContent);
const NAMES = ["no-damage", "minor", "major", "destroyed", "no-data", "outside"];
const COLORS = ["#2e7d32", "#f9a825", "#ef6c00", "#c62828", "#9e9e9e", "#616161"];
const gapMajor = D.major - D.minor, gapDestroyed = D.destroyed - D.minor;
function thresholds(minor) {
  return [minor, Math.min(1, minor + gapMajor), Math.min(1, minor + gapDestroyed)];
}
function classify(f, t) {
  if (f.s === 2) return 5;
  if (f.s === 1) return 4;
  if (f.m >= t[2]) return 3;
  if (f.m >= t[1]) return 2;
  if (f.m >= t[0]) return 1;
  return 0;
}
const svg = document.getElementById("fp");
const shapes = D.features.map(f => {
  const p = document.createElementNS("http://www.w3.org/2000/svg", "path");
  p.setAttribute("d", f.d);
  p.setAttribute("fill-rule", "evenodd");
  p.setAttribute("fill-opacity", "0.55");
  p.setAttribute("stroke-width", String(D.stroke));
  svg.appendChild(p);
  return p;
});
function counts() {
  const rows = document.querySelectorAll("#counts tr[data-c]");
  const out = [];
  rows.forEach(r => out.push(Number(r.lastChild.textContent)));
  return out;
}
function update() {
  const minor = Number(document.getElementById("thr").value);
  const t = thresholds(minor);
  const n = [0, 0, 0, 0, 0, 0];
  D.features.forEach((f, i) => {
    const c = classify(f, t);
    n[c]++;
    shapes[i].setAttribute("fill", COLORS[c]);
    shapes[i].setAttribute("stroke", COLORS[c]);
  });
  const table = document.getElementById("counts");
  table.querySelectorAll("tr[data-c]").forEach(r => r.remove());
  n.forEach((v, c) => {
    const tr = document.createElement("tr");
    tr.dataset.c = String(c);
    tr.innerHTML = '<td style="text-align:left"><span class="sw" style="background:' + COLORS[c] + '"></span>' + NAMES[c] + "</td><td>" + v + "</td>";
    table.appendChild(tr);
  });
  document.getElementById("thrv").textContent = minor.toFixed(2);
  document.getElementById("thrs").textContent = "minor " + t[0].toFixed(2) + ", major " + t[1].toFixed(2) + ", destroyed " + t[2].toFixed(2);
}
const slider = document.getElementById("thr");
slider.value = String(D.minor);
slider.addEventListener("input", update);
update();
// Self-test (#selftest): move the slider programmatically and check that the counts change.
if (location.hash === "#selftest") {
  const before = counts();
  const target = D.minor > 0.5 ? 0 : 1;
  slider.value = String(target);
  slider.dispatchEvent(new Event("input"));
  const after = counts();
  const changed = before.some((v, i) => v !== after[i]);
  const total = after.reduce((a, b) => a + b, 0);
  const ok = changed && total === D.features.length && errors.length === 0;
  document.getElementById("selftest").textContent = (ok ? "SELFTEST PASS" : "SELFTEST FAIL") +
    " before=" + JSON.stringify(before) + " after=" + JSON.stringify(after) + " slider=" + target +
    " errors=" + JSON.stringify(errors);
}
</script></body></html>
)HTML";

void replace_all(std::string& s, const std::string& key, const std::string& value) {
  for (std::size_t p = s.find(key); p != std::string::npos; p = s.find(key, p + value.size())) s.replace(p, key.size(), value);
}

}  // namespace

std::vector<std::string> write_report(const ReportRequest& req) {
  init_gdal();
  std::vector<std::string> warnings;
  Hdf5Reader reader(req.output);
  const Grid grid = reader.grid();
  const auto yaml = reader.string_attribute("/", "config");
  if (!yaml) throw Error(ErrorKind::input, req.output + ": no config attribute (not an aftermath output?)");
  const JobConfig cfg = parse_config(*yaml, req.output + " (stored config)");
  const double scale = std::min(1.0, double(req.max_side) / std::max(grid.width, grid.height));
  const cv::Size size(std::max(1, static_cast<int>(std::lround(grid.width * scale))),
                      std::max(1, static_cast<int>(std::lround(grid.height * scale))));

  // Quicklooks.
  std::vector<std::pair<std::string, std::string>> panels;  // caption, data URI
  std::string notes;
  std::string base_uri, base_name;
  for (const auto& [attr, name] : {std::pair<std::string, std::string>{"input_pre", "pre"}, {"input_post", "post"}}) {
    const auto path = reader.string_attribute("/", attr);
    std::error_code ec;
    if (!path || !std::filesystem::exists(*path, ec)) {
      const std::string w = fmt::format("{} scene {} not found: its quicklook is omitted", name, path ? *path : "(not recorded)");
      warnings.push_back(w);
      notes += "<p class=\"note\">" + esc(w) + "</p>\n";
      continue;
    }
    try {
      const std::string uri = png_uri(scene_quicklook(*path, grid, size));
      panels.emplace_back(name + " (" + std::filesystem::path(*path).filename().string() + ")", uri);
      if (name == "post") {
        base_uri = uri;
        base_name = "post";
      }
    } catch (const Error& e) {
      warnings.push_back(name + " quicklook omitted: " + e.what());
      notes += "<p class=\"note\">" + esc(name + " quicklook omitted: " + e.what()) + "</p>\n";
    }
  }
  const cv::Mat score = downsample(grid, size, CV_32F, [&](const Window& w) { return engine::read_scores(reader, w); });
  {
    cv::Mat s8, valid = score >= 0, col;
    cv::Mat clipped;
    cv::min(cv::max(score, 0.0), 1.0, clipped);
    clipped.convertTo(s8, CV_8U, 255.0);
    cv::applyColorMap(s8, col, cv::COLORMAP_INFERNO);
    col.setTo(cv::Scalar(200, 200, 200), valid == 0);
    const std::string uri = png_uri(col);
    panels.emplace_back("change score (0 black .. 1 yellow; grey invalid)", uri);
    if (base_uri.empty()) {
      base_uri = uri;
      base_name = "score";
    }
  }
  {
    const cv::Mat mask = downsample(grid, size, CV_8U, [&](const Window& w) {
      cv::Mat m = reader.layer("damage_mask", w), v(m.size(), CV_8U);
      v.setTo(0);
      v.setTo(255, m == kMaskChanged);
      v.setTo(128, m == kMaskInvalid);
      return v;
    });
    cv::Mat col(size, CV_8UC3, cv::Scalar(255, 255, 255));
    col.setTo(cv::Scalar(40, 40, 200), mask > 128);
    col.setTo(cv::Scalar(200, 200, 200), mask == 128);
    panels.emplace_back("damage mask (red changed, grey invalid)", png_uri(col));
  }
  std::string panel_html;
  for (const auto& [cap, uri] : panels) {
    panel_html += "<figure><div class=\"panel\"><img alt=\"" + esc(cap) + "\" src=\"" + uri + "\"></div><figcaption>" +
                  esc(cap) + "</figcaption></figure>\n";
  }

  // Footprints: SVG path per feature (grid pixel coordinates), stored metric and status.
  nlohmann::json data;
  data["minor"] = cfg.damage.minor;
  data["major"] = cfg.damage.major;
  data["destroyed"] = cfg.damage.destroyed;
  data["stroke"] = std::max(1.0, 1.0 / scale);
  nlohmann::json feats = nlohmann::json::array();
  const auto features = read_output_footprints(reader, grid);
  if (!features.empty()) {
    const auto status = reader.column_uint8("footprints/status");
    const auto metric = reader.column_double("footprints/" + cfg.damage.metric);
    for (std::size_t i = 0; i < features.size(); ++i) {
      std::string d;
      for (const auto& ring : features[i].rings) {
        for (std::size_t k = 0; k < ring.size(); ++k) d += fmt::format("{}{:.1f} {:.1f}", k ? " L" : "M", ring[k].x, ring[k].y);
        d += " Z ";
      }
      feats.push_back({{"d", d}, {"m", metric[i]}, {"s", status[i]}});
    }
  }
  data["features"] = feats;
  std::string data_text = data.dump();
  replace_all(data_text, "</", "<\\/");

  // Metrics and curves with truth.
  std::string metrics_html;
  if (!req.truth.empty()) {
    const Evaluation e = evaluate_output({req.output, req.truth, req.truth_field, req.truth_layer});
    const SweepCurves s = sweep(e);
    const auto fmt3 = [](double v) { return std::isfinite(v) ? fmt::format("{:.3f}", v) : std::string("n/a"); };
    metrics_html += "<h2>Metrics against " + esc(std::filesystem::path(req.truth).filename().string()) + " (" + esc(e.truth_kind) + ")</h2>\n";
    metrics_html += "<table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>IoU</th><th>support</th></tr>\n";
    const auto row = [&](const std::string& name, const BinaryMetrics& m, const std::string& support) {
      metrics_html += "<tr><td style=\"text-align:left\">" + esc(name) + "</td><td>" + fmt3(m.precision()) + "</td><td>" +
                      fmt3(m.recall()) + "</td><td>" + fmt3(m.f1()) + "</td><td>" + fmt3(m.iou()) + "</td><td>" + support + "</td></tr>\n";
    };
    if (e.truth_kind == "raster") {
      row("changed pixels", e.pixels, std::to_string(e.pixels.tp + e.pixels.fn));
      metrics_html += "</table><p>pixel ROC AUC " + fmt3(e.pixel_roc_auc) + "</p>\n";
    } else {
      for (const auto& c : e.classes) row(c.name, c.counts, std::to_string(c.support));
      row("localisation", e.localisation, std::to_string(e.truth_items));
      row("damaged (>= minor)", e.damaged, "");
      metrics_html += "</table>\n<table><tr><th>truth \\ predicted</th>";
      for (const auto& c : e.classes) metrics_html += "<th>" + esc(c.name) + "</th>";
      metrics_html += "</tr>\n";
      for (int t = 0; t < 4; ++t) {
        metrics_html += "<tr><th>" + esc(e.classes[static_cast<std::size_t>(t)].name) + "</th>";
        for (int p = 0; p < 4; ++p) metrics_html += "<td>" + std::to_string(e.confusion.at(t, p)) + "</td>";
        metrics_html += "</tr>\n";
      }
      metrics_html += "</table><p>ROC AUC " + fmt3(e.roc_auc) + "; xView2 score " + fmt3(e.xview2) + " (0.3 &times; localisation F1 + 0.7 &times; harmonic mean of the damage F1s)</p>\n";
    }
    metrics_html += "<div class=\"row\"><img alt=\"precision-recall\" src=\"" + png_uri(pr_png_bytes(s)) +
                    "\"><img alt=\"ROC\" src=\"" + png_uri(roc_png_bytes(s)) + "\"></div>\n";
  }

  std::string page = kPage;
  const auto thr = reader.number_attribute("/", "threshold");
  const std::string title = std::filesystem::path(req.output).filename().string();
  replace_all(page, "@TITLE@", esc(title));
  replace_all(page, "@W@", std::to_string(size.width));
  replace_all(page, "@H@", std::to_string(size.height));
  replace_all(page, "@GW@", std::to_string(grid.width));
  replace_all(page, "@GH@", std::to_string(grid.height));
  replace_all(page, "@CRS@", grid.georeferenced() ? std::string("georeferenced") : std::string("pixel grid"));
  replace_all(page, "@THR@", thr ? fmt::format("{:.3f}", *thr) : std::string("?"));
  replace_all(page, "@METRIC@", esc(cfg.damage.metric));
  replace_all(page, "@NOTES@", notes);
  replace_all(page, "@PANELS@", panel_html);
  replace_all(page, "@BASE@", "<img alt=\"base\" src=\"" + base_uri + "\">");
  replace_all(page, "@BASENAME@", base_name);
  replace_all(page, "@METRICS@", metrics_html);
  replace_all(page, "@DATA@", data_text);
  std::ofstream f(req.html, std::ios::binary);
  f << page;
  if (!f) throw Error(ErrorKind::output, req.html + ": cannot be written");
  return warnings;
}

}  // namespace aftermath
