#include "synthetic_scene.hpp"

#include <algorithm>
#include <cmath>

namespace aftermath::synth {

namespace {

std::uint32_t hash(std::uint32_t a, std::uint32_t b, std::uint32_t c) {
  std::uint32_t h = a * 0x9E3779B1u ^ (b + 0x7F4A7C15u) * 0x85EBCA77u ^ (c + 0x165667B1u) * 0xC2B2AE3Du;
  h ^= h >> 15;
  h *= 0x2C1B3C6Du;
  h ^= h >> 12;
  h *= 0x297A2D39u;
  h ^= h >> 15;
  return h;
}

double unit(std::uint32_t h) { return (h & 0xFFFFFF) / double(0xFFFFFF); }

// Value noise with a smooth (quintic) interpolation: continuous with continuous derivatives.
double value_noise(double x, double y, std::uint32_t seed) {
  const double fx = std::floor(x), fy = std::floor(y);
  const auto ix = static_cast<std::int32_t>(fx), iy = static_cast<std::int32_t>(fy);
  const double tx = x - fx, ty = y - fy;
  auto fade = [](double t) { return t * t * t * (t * (t * 6 - 15) + 10); };
  const double u = fade(tx), v = fade(ty);
  auto at = [&](std::int32_t a, std::int32_t b) {
    return unit(hash(static_cast<std::uint32_t>(a), static_cast<std::uint32_t>(b), seed));
  };
  const double a = at(ix, iy), b = at(ix + 1, iy), c = at(ix, iy + 1), d = at(ix + 1, iy + 1);
  return (a + (b - a) * u) + ((c + (d - c) * u) - (a + (b - a) * u)) * v;
}

double ground(double x, double y, int band, std::uint32_t seed) {
  const double base = value_noise(x / 40, y / 40, seed) * 0.5 + value_noise(x / 11, y / 11, seed + 1) * 0.3 +
                      value_noise(x / 6, y / 6, seed + 2) * 0.2;
  const double own = value_noise(x / 7, y / 7, seed + 10 + static_cast<std::uint32_t>(band));
  return 2000 + 5000 * (0.75 * base + 0.25 * own) + 300 * band;
}

struct CellBuilding {
  bool exists;
  cv::Rect2d rect;
  bool destroyed;
};

bool is_road_cell(int cx, int cy) { return cx % 8 == 0 || cy % 8 == 0; }

CellBuilding cell_building(const SceneSpec& s, int cx, int cy) {
  if (cx < 0 || cy < 0 || is_road_cell(cx, cy)) return {false, {}, false};
  const std::uint32_t h = hash(static_cast<std::uint32_t>(cx), static_cast<std::uint32_t>(cy), s.seed + 100);
  const int margin = s.cell / 8;
  const int w = s.cell / 2 + static_cast<int>(h % static_cast<std::uint32_t>(s.cell / 4 + 1));
  const int hgt = s.cell / 2 + static_cast<int>((h >> 8) % static_cast<std::uint32_t>(s.cell / 4 + 1));
  const int x = cx * s.cell + margin + static_cast<int>((h >> 16) % static_cast<std::uint32_t>(std::max(1, s.cell - w - 2 * margin)));
  const int y = cy * s.cell + margin + static_cast<int>((h >> 20) % static_cast<std::uint32_t>(std::max(1, s.cell - hgt - 2 * margin)));
  const bool destroyed = unit(hash(static_cast<std::uint32_t>(cx), static_cast<std::uint32_t>(cy), s.seed + 200)) < s.destroyed_fraction;
  return {true, cv::Rect2d(x, y, w, hgt), destroyed};
}

// The sensor's point spread: a Gaussian of this sigma, px. It keeps edges (nearly) band-limited,
// as real optics do, so that a sub-pixel shift of the scene is a true sub-pixel shift of the image.
constexpr double kPsfSigma = 0.7;

// Fraction of the interval [lo, hi) seen by a pixel centred at x (1-D Gaussian PSF).
double cover(double x, double lo, double hi) {
  const double k = 1.0 / (std::sqrt(2.0) * kPsfSigma);
  return 0.5 * (std::erf((hi - x) * k) - std::erf((lo - x) * k));
}

// Fraction of a pixel centred at x covered by road strips [8k*cell, 8k*cell + cell/4).
double road_cover(double x, int cell) {
  const double period = 8.0 * cell, width = cell / 4.0;
  const double k = std::floor(x / period);
  double c = 0;
  for (double j = k - 1; j <= k + 1; ++j) c += cover(x, j * period, j * period + width);
  return std::min(1.0, c);
}

// The scene as seen by a pixel centred on the pre-scene position (x, y): textures are
// point-sampled (they are smooth), roads and roofs are blended by the fraction the PSF sees.
double scene_value(const SceneSpec& s, bool post, double x, double y, int band) {
  const double rx = road_cover(x, s.cell), ry = road_cover(y, s.cell);
  const double road = 1 - (1 - rx) * (1 - ry);
  double v = ground(x, y, band, s.seed);
  if (road > 0) v = (1 - road) * v + road * (1500 + 150 * band + 200 * value_noise(x / 4, y / 4, s.seed + 50));
  const int cx = static_cast<int>(std::floor(x / s.cell)), cy = static_cast<int>(std::floor(y / s.cell));
  const CellBuilding b = cell_building(s, cx, cy);
  if (b.exists) {
    const double seen = cover(x, b.rect.x, b.rect.x + b.rect.width) * cover(y, b.rect.y, b.rect.y + b.rect.height);
    if (seen > 1e-9) {
      const double roof = (post && b.destroyed)
                              ? 1800 + 3500 * value_noise(x / 1.7, y / 1.7, s.seed + 300 + static_cast<std::uint32_t>(band))
                              : 9000 + 600 * band + 300 * value_noise(x / 5, y / 5, s.seed + 60);
      v = (1 - seen) * v + seen * roof;
    }
  }
  return v;
}

}  // namespace

Grid scene_grid(const SceneSpec& s) {
  Grid g;
  g.crs_wkt =
      "PROJCS[\"WGS 84 / UTM zone 32N\",GEOGCS[\"WGS 84\",DATUM[\"WGS_1984\",SPHEROID[\"WGS 84\",6378137,"
      "298.257223563,AUTHORITY[\"EPSG\",\"7030\"]],AUTHORITY[\"EPSG\",\"6326\"]],PRIMEM[\"Greenwich\",0,"
      "AUTHORITY[\"EPSG\",\"8901\"]],UNIT[\"degree\",0.0174532925199433,AUTHORITY[\"EPSG\",\"9122\"]],"
      "AUTHORITY[\"EPSG\",\"4326\"]],PROJECTION[\"Transverse_Mercator\"],PARAMETER[\"latitude_of_origin\",0],"
      "PARAMETER[\"central_meridian\",9],PARAMETER[\"scale_factor\",0.9996],PARAMETER[\"false_easting\",500000],"
      "PARAMETER[\"false_northing\",0],UNIT[\"metre\",1,AUTHORITY[\"EPSG\",\"9001\"]],AXIS[\"Easting\",EAST],"
      "AXIS[\"Northing\",NORTH],AUTHORITY[\"EPSG\",\"32632\"]]";
  g.geotransform = {s.origin_x, s.pixel_size, 0, s.origin_y, 0, -s.pixel_size};
  g.width = s.width;
  g.height = s.height;
  return g;
}

std::vector<cv::Mat> render(const SceneSpec& s, bool post, const Window& w) {
  std::vector<cv::Mat> out;
  for (int b = 0; b < s.bands; ++b) out.emplace_back(w.height, w.width, CV_16U);
  const double sx = post ? s.shift_x : 0, sy = post ? s.shift_y : 0;
  for (int r = 0; r < w.height; ++r) {
    for (int c = 0; c < w.width; ++c) {
      // post(q) = pre(q - shift), sampled at pixel centres.
      const double x = w.x + c + 0.5 - sx, y = w.y + r + 0.5 - sy;
      const auto px = static_cast<std::uint32_t>(w.x + c), py = static_cast<std::uint32_t>(w.y + r);
      for (int b = 0; b < s.bands; ++b) {
        // Sensor noise, independent per scene, band and pixel (a sum of 4 uniforms: ~Gaussian).
        const std::uint32_t key = s.seed * 16 + static_cast<std::uint32_t>(b) * 2 + (post ? 1u : 0u) + 1000;
        double noise = 0;
        for (std::uint32_t k = 0; k < 4; ++k) noise += unit(hash(px * 4 + k, py, key)) - 0.5;
        const double v = scene_value(s, post, x, y, b) + s.noise * noise * 1.7320508;
        out[static_cast<std::size_t>(b)].at<std::uint16_t>(r, c) =
            static_cast<std::uint16_t>(std::clamp(v, 0.0, 65535.0));
      }
    }
  }
  return out;
}

std::vector<Building> buildings(const SceneSpec& s) {
  std::vector<Building> out;
  const int cols = (s.width + s.cell - 1) / s.cell, rows = (s.height + s.cell - 1) / s.cell;
  for (int cy = 0; cy < rows; ++cy) {
    for (int cx = 0; cx < cols; ++cx) {
      const CellBuilding b = cell_building(s, cx, cy);
      if (!b.exists) continue;
      const cv::Rect r(static_cast<int>(b.rect.x), static_cast<int>(b.rect.y), static_cast<int>(b.rect.width),
                       static_cast<int>(b.rect.height));
      if ((r & cv::Rect(0, 0, s.width, s.height)) != r) continue;
      out.push_back({static_cast<std::int64_t>(out.size()), r, b.destroyed});
    }
  }
  return out;
}

}  // namespace aftermath::synth
