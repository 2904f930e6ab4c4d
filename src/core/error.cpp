#include "aftermath/core/error.hpp"

namespace aftermath {

int exit_code_for(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::usage: return 2;
    case ErrorKind::output: return 3;
    case ErrorKind::input:
    case ErrorKind::internal: return 1;
  }
  return 1;
}

std::string Error::compose(const std::string& msg, const std::string& stage,
                           const std::string& scene, int tile) {
  std::string ctx;
  auto add = [&](const std::string& s) { ctx += ctx.empty() ? s : ", " + s; };
  if (!stage.empty()) add("stage " + stage);
  if (!scene.empty()) add("scene " + scene);
  if (tile >= 0) add("tile " + std::to_string(tile));
  return ctx.empty() ? msg : msg + " [" + ctx + "]";
}

Error::Error(ErrorKind kind, std::string message, std::string stage, std::string scene, int tile)
    : std::runtime_error(compose(message, stage, scene, tile)),
      kind_(kind),
      message_(std::move(message)),
      stage_(std::move(stage)),
      scene_(std::move(scene)),
      tile_(tile) {}

Error Error::with_context(const std::string& stage, const std::string& scene, int tile) const {
  return Error(kind_, message_, stage_.empty() ? stage : stage_, scene_.empty() ? scene : scene_,
               tile_ < 0 ? tile : tile_);
}

void throw_input(const std::string& message, const std::string& scene) {
  throw Error(ErrorKind::input, message, {}, scene);
}
void throw_usage(const std::string& message) { throw Error(ErrorKind::usage, message); }
void throw_output(const std::string& message, const std::string& path) {
  throw Error(ErrorKind::output, path.empty() ? message : path + ": " + message);
}

}  // namespace aftermath
