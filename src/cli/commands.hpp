#pragma once
// The CLI's subcommands: each file registers one (options + the function that runs it). A
// command returns the process exit code (README "Exit codes"); errors are aftermath::Error,
// mapped to exit codes in main.cpp.
#include <array>
#include <cstdint>
#include <functional>
#include <string>

#include <CLI/CLI.hpp>

namespace aftermath::cli {

/// Per-kind counts (when not all buildings), the scheme's classes (unosat) and the damage sites.
void print_damage(const std::string& scheme, const std::array<std::int64_t, 5>& grades,
                  const std::array<std::int64_t, 4>& kinds, std::int64_t features, std::int64_t sites, bool sites_on);

inline constexpr const char* kExitCodes =
    "Exit codes: 0 done; 1 a job failed (bad or unusable input, processing error); "
    "2 usage or configuration error; 3 the output could not be written.";

struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

Command add_run(CLI::App& app);
Command add_align(CLI::App& app);
Command add_describe_config(CLI::App& app);
Command add_info(CLI::App& app);
Command add_xbd_import(CLI::App& app);
Command add_export(CLI::App& app);
Command add_batch(CLI::App& app);
Command add_rescore(CLI::App& app);
Command add_evaluate(CLI::App& app);
Command add_sweep(CLI::App& app);
Command add_calibrate(CLI::App& app);
Command add_report(CLI::App& app);

/// True when log output is JSON (progress lines are suppressed then).
bool log_json();

}  // namespace aftermath::cli
