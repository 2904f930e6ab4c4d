#pragma once
// Plan stage (private to the engine): validated inputs and the analysis grid.
#include <string>
#include <vector>

#include "aftermath/core/grid.hpp"
#include "aftermath/engine/job.hpp"
#include "aftermath/io/scene.hpp"

namespace aftermath::engine {

struct Plan {
  SceneInfo pre, post;
  std::vector<SceneInfo> more_pre, more_post;  ///< RunRequest::more_pre/more_post, read like pre/post
  Grid grid;  ///< the analysis grid: the overlap, on the pre scene's grid unless configured
  ReadOptions pre_read, post_read;
  std::vector<std::string> warnings;
};

/// Validates the output location: not a directory, not an input (after realpath), parent
/// directory created if missing and writable, existing file only with `overwrite`.
void check_output(const RunRequest& request);

/// Opens and validates both scenes and computes the analysis grid. Throws Error(input).
Plan make_plan(const RunRequest& request);

}  // namespace aftermath::engine
