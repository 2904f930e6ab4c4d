// aftermath command line. Each subcommand lives in its own cmd_*.cpp (see commands.hpp).
#include <csignal>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "aftermath/core/error.hpp"
#include "aftermath/core/util.hpp"
#include "aftermath/engine/job.hpp"
#include "aftermath/engine/mpi.hpp"
#include "commands.hpp"

namespace aftermath::cli {

namespace {
bool g_log_json = false;

// One JSON object per line on stderr, for log collectors (--log-json).
class JsonStderrSink : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    const auto t = std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()).count();
    const auto level = spdlog::level::to_string_view(msg.level);
    nlohmann::json j = {{"time_ms", t},
                        {"level", std::string(level.data(), level.size())},
                        {"msg", std::string(msg.payload.data(), msg.payload.size())}};
    if (aftermath::mpi_world_size() > 1) j["rank"] = aftermath::mpi_world_rank();
    std::fputs((j.dump() + "\n").c_str(), stderr);
  }
  void flush_() override { std::fflush(stderr); }
};

void setup_logging(const std::string& level, bool json) {
  std::shared_ptr<spdlog::logger> logger;
  // Under mpirun with several ranks, every line names its rank, and ranks other than 0 log
  // warnings and errors only (rank 0 reports the job).
  const int ranks = aftermath::mpi_world_size(), rank = aftermath::mpi_world_rank();
  if (json) {
    logger = std::make_shared<spdlog::logger>("aftermath", std::make_shared<JsonStderrSink>());
  } else {
    logger = spdlog::stderr_color_mt("aftermath");
    logger->set_pattern(ranks > 1 ? fmt::format("%^%l%$: [rank {}] %v", rank) : std::string("%^%l%$: %v"));
  }
  auto lvl = spdlog::level::from_str(level);
  if (rank > 0) lvl = std::max(lvl, spdlog::level::warn);
  logger->set_level(lvl);
  spdlog::set_default_logger(logger);
}
}  // namespace

bool log_json() { return g_log_json; }

}  // namespace aftermath::cli

int main(int argc, char** argv) {
  using namespace aftermath::cli;
  // Joins MPI when started by mpirun/srun (README "MPI"); a plain start never touches MPI.
  aftermath::MpiSession mpi(argc, argv);
  // Ends before `mpi`: the worker threads are joined before MPI is finalised and before exit.
  const aftermath::WorkerThreadsJoinedAtExit workers;
  aftermath::keep_freed_memory_in_heap();
  CLI::App app{"aftermath: finds what was destroyed between two satellite scenes.\n" + std::string(kExitCodes)};
  app.set_version_flag("--version", std::string("aftermath ") + AFTERMATH_VERSION);
  app.require_subcommand(1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error|off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  app.add_flag("--log-json", g_log_json, "log one JSON object per line on stderr");

  const std::vector<Command> commands = {add_run(app), add_align(app), add_describe_config(app), add_info(app),
                                         add_batch(app),
                                         add_export(app),
                                         add_xbd_import(app),
                                         add_rescore(app), add_evaluate(app), add_sweep(app),
                                         add_calibrate(app), add_report(app)};
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "error: " << e.what() << "\n(run with --help for usage)\n";
    return 2;
  }
  setup_logging(log_level, g_log_json);
  // Ctrl-C / SIGTERM: finish cleanly (the current job stops at the next tile and removes its
  // temporary output); a second signal kills at once.
  auto on_signal = [](int sig) {
    aftermath::request_cancel();
    std::signal(sig, SIG_DFL);
  };
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  try {
    for (const auto& c : commands) {
      if (c.app->parsed()) return c.run();
    }
    return 2;
  } catch (const aftermath::Error& e) {
    // A failure agreed by every rank is reported once, by rank 0.
    if (!aftermath::mpi_failure_agreed() || aftermath::mpi_world_rank() == 0) spdlog::error("{}", e.what());
    return mpi.exit_after_failure(aftermath::exit_code_for(e.kind()));
  } catch (const std::exception& e) {
    spdlog::error("internal error: {}", e.what());
    return mpi.exit_after_failure(1);
  }
}
