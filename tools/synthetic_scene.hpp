#pragma once
/// A procedural, streamable synthetic pair: any window of any size can be generated on its own,
/// so scenes of 16384^2 px and more are written without holding them in memory. Ground is
/// multi-octave value noise (continuous, so a sub-pixel shift is exact), with roads and a lattice
/// of buildings; a known fraction is destroyed in the post scene (roof replaced by rubble), and
/// the post content is shifted: post(p + shift) = pre(p).
#include <cstdint>
#include <vector>

#include <opencv2/core.hpp>

#include "aftermath/core/grid.hpp"

namespace aftermath::synth {

struct SceneSpec {
  int width = 1024;
  int height = 1024;
  int bands = 4;
  double shift_x = 0;  ///< post content shift, px
  double shift_y = 0;
  std::uint32_t seed = 1;
  int cell = 48;                    ///< building lattice cell, px
  double destroyed_fraction = 0.3;
  double noise = 40;                ///< sensor noise sigma, DN (ground ~2000-7000, roofs ~9000)
  double pixel_size = 0.5;          ///< metres
  double origin_x = 500000;         ///< EPSG:32632 top-left corner
  double origin_y = 4800000;
};

struct Building {
  std::int64_t id;
  cv::Rect rect;  ///< pre-scene pixels
  bool destroyed;
};

/// The grid of the pre scene (EPSG:32632, north-up).
Grid scene_grid(const SceneSpec& spec);

/// Renders a window of the pre (post = false) or post scene: `bands` CV_16U mats.
std::vector<cv::Mat> render(const SceneSpec& spec, bool post, const Window& window);

/// Every building of the scene, in row-major lattice order.
std::vector<Building> buildings(const SceneSpec& spec);

}  // namespace aftermath::synth
