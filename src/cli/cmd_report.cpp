// aftermath report: one self-contained HTML page for an output.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <iostream>
#include <memory>

#include "aftermath/engine/analyst.hpp"
#include "commands.hpp"

namespace aftermath::cli {

Command add_report(CLI::App& app) {
  auto o = std::make_shared<ReportRequest>();
  auto* sub = app.add_subcommand("report",
                                 "Write one self-contained HTML page: quicklooks, footprints by class, metrics and "
                                 "curves (with --truth), and a threshold slider.\n" + std::string(kExitCodes));
  sub->add_option("output", o->output, "an aftermath output (HDF5)")->required();
  sub->add_option("--truth", o->truth, "labels, as for evaluate (optional)");
  sub->add_option("--truth-field", o->truth_field, "class attribute of vector truth");
  sub->add_option("--truth-layer", o->truth_layer, "layer of a multi-layer vector truth");
  sub->add_option("-o,--out", o->html, "the HTML file to write")->required();
  sub->add_option("--size", o->max_side, "longest side of the quicklooks, px (default 768)")->check(CLI::Range(64, 4096));
  return {sub, [o] {
            for (const auto& w : write_report(*o)) spdlog::warn("report: {}", w);
            std::cout << fmt::format("report      {}\n", o->html);
            return 0;
          }};
}

}  // namespace aftermath::cli
