#pragma once
// Helpers shared by the align sources (private to the module).
#include <opencv2/core.hpp>

#include "aftermath/align/registration.hpp"

namespace aftermath::align_detail {

/// Catmull-Rom interpolation of a CV_64F node lattice of `f` at grid position (x, y), constant
/// beyond the outermost nodes.
double lattice_value(const ShiftField& f, const cv::Mat& nodes, double x, double y);

}  // namespace aftermath::align_detail
