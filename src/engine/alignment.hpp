#pragma once
// Alignment in the engine (private): the estimate through per-thread readers and oneTBB, the
// /alignment group of an output (write and read back for `run --alignment`), the
// misregistration layer.
#include <tbb/task_arena.h>

#include <string>

#include "aftermath/align/registration.hpp"
#include "aftermath/config/config.hpp"
#include "aftermath/core/grid.hpp"
#include "aftermath/io/hdf5_writer.hpp"

namespace aftermath::engine {

/// A ForEach running the bodies in parallel in `arena` (results collected by index, so the
/// estimate does not depend on the thread count).
ForEach arena_for_each(tbb::task_arena& arena);

/// estimate_registration on the analysis grid, then the checks shared by run and align: most
/// windows saw a clear shift beyond align.max_shift_px -> Error(input) naming `post_path`.
Registration estimate_alignment(const Grid& grid, const JobConfig& config, const WindowReader& read,
                                const ForEach& for_each, const std::string& post_path);

/// Writes the /alignment group: model attributes, /alignment/tie_points, and /alignment/lattice
/// (displacement-field and uncertainty nodes) when the model has one.
void write_alignment(Hdf5Writer& writer, const Registration& registration, const Grid& grid);

/// Reads the registration stored by write_alignment in `path` (an `aftermath align` or `run`
/// output). Throws Error(input) naming the file if it holds none, or if it was estimated on
/// another analysis grid than `grid` (size, geotransform or CRS differ).
Registration read_alignment(const std::string& path, const Grid& grid);

/// The `misregistration` layer: float32 px, fill -1 (unknown / invalid).
LayerSpec misregistration_layer();

/// Rounds the `n` values at `p` to 0.01 px in place (as float(floor(100 v + 0.5) / 100)); negative
/// values (the fill) are kept.
void round_to_hundredths(float* p, int n);

/// The layer's values for a tile core: misregistration(), quantised to 0.01 px (compresses well),
/// -1 where `valid` (CV_8U, the core; may be empty) is 0.
cv::Mat misregistration_core(const Registration& registration, const Window& core,
                             const cv::Mat& valid);

}  // namespace aftermath::engine
