// aftermath rescore: new thresholds on an existing output, without reading the images.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <iostream>
#include <memory>

#include "aftermath/config/config.hpp"
#include "aftermath/engine/analyst.hpp"
#include "commands.hpp"

namespace aftermath::cli {

Command add_rescore(CLI::App& app) {
  struct Options {
    RescoreRequest req;
  };
  auto o = std::make_shared<Options>();
  auto* sub = app.add_subcommand("rescore",
                                 "Recompute the damage mask and the per-feature classes of an "
                                 "output from its stored scores with new "
                                 "thresholds (threshold.*, damage.*), in seconds. In place unless "
                                 "--out (atomic: temp + rename).\n" +
                                     std::string(kExitCodes));
  sub->add_option("output", o->req.input, "an aftermath output (HDF5)")->required();
  sub->add_option("--config", o->req.config_path,
                  "YAML config with the new thresholds; default: the stored config");
  sub->add_option("--set", o->req.overrides,
                  "override a config key, e.g. --set damage.minor=0.2 (repeatable)");
  sub->add_option("--out", o->req.out, "write a new file instead of replacing the output");
  sub->add_flag("--overwrite", o->req.overwrite, "replace --out if it exists");
  sub->add_option("--threads", o->req.threads,
                  "worker threads (0 = all cores); results do not depend on it")
      ->check(CLI::NonNegativeNumber);
  return {sub, [o] {
            if (!o->req.config_path.empty()) o->req.config = load_config(o->req.config_path);
            const RescoreSummary s = rescore_job(o->req);
            std::cout << fmt::format("output      {}\n", s.output);
            std::cout << fmt::format("change      threshold {:.3f}{}; {} of {} valid px changed\n",
                                     s.threshold, s.threshold_reused ? " (the run's)" : "",
                                     s.changed_pixels, s.valid_pixels);
            std::cout << fmt::format(
                "features    {}: no-damage {}, minor {}, major {}, destroyed {}, no-data {}, "
                "outside {}\n",
                s.features, s.class_counts[0], s.class_counts[1], s.class_counts[2],
                s.class_counts[3], s.no_data, s.outside);
            print_damage(s.scheme, s.grade_counts, s.kind_counts, s.features, s.sites,
                         s.sites >= 0);
            std::cout << fmt::format("time        {:.2f} s\n", s.seconds);
            return 0;
          }};
}

}  // namespace aftermath::cli
