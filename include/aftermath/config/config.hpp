#pragma once
/// @file config.hpp
/// Typed, validated job configuration. A YAML file with `schema_version: 1` and the sections
/// below; every key is optional except `schema_version` and takes the default shown by
/// `aftermath describe-config`. Unknown keys, wrong types, non-finite numbers, values out of
/// range, duplicate keys and empty files are rejected with an Error(ErrorKind::usage) that names
/// the file, the key and (for unknown keys) the nearest valid key. Validated before a pixel is
/// read.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace aftermath {

inline constexpr int kConfigSchemaVersion = 1;

struct GridConfig {
  std::string
      crs;  ///< CRS of the analysis grid (anything GDAL's SetFromUserInput takes); "" = pre scene's
  double resolution = 0.0;  ///< pixel size in CRS units; 0 = the pre scene's

  bool operator==(const GridConfig&) const = default;
};

struct TilingConfig {
  int tile_size = 512;  ///< px, [64, 8192]; also the HDF5 chunk size
  /// px, [0, 512]; 0 = the least the detector, the mask's opening and the building index need
  /// (engine::tile_halo)
  int halo = 0;
  int tiles_in_flight =
      0;  ///< tiles in the pipeline at once (the memory cap); 0 = 2 x threads; [0, 1024]

  bool operator==(const TilingConfig&) const = default;
};

struct InputConfig {
  std::vector<int> pre_bands;   ///< 1-based bands of the pre scene to use; empty = all
  std::vector<int> post_bands;  ///< 1-based bands of the post scene, paired with pre_bands in order
  std::optional<double> pre_nodata;  ///< overrides the file's nodata value
  std::optional<double> post_nodata;
  std::string resampling = "bilinear";      ///< nearest | bilinear | cubic (warp onto the grid)
  std::int64_t max_pixels = 4'000'000'000;  ///< largest accepted scene, width*height, [1, 1e12]
  int min_overlap_px = 16;                  ///< smallest accepted overlap side, px, [1, 1e6]
  /// GDAL drivers accepted for rasters (an allow-list: a crafted VRT cannot read other files).
  std::vector<std::string> allowed_drivers{"GTiff",  "COG", "PNG",         "JPEG", "VRT",
                                           "netCDF", "HFA", "JP2OpenJPEG", "ENVI", "MEM"};

  bool operator==(const InputConfig&) const = default;
};

struct AlignConfig {
  bool enabled = true;
  int window_size = 256;            ///< px, power of two in [32, 2048]
  int max_windows = 25;             ///< tie-point windows sampled across the overlap, [1, 10000]
  double max_shift_px = 256;        ///< largest shift searched, px, [0, 4096]
  double min_peak = 0.03;           ///< smallest normalised correlation peak kept, [0, 1]
  double min_valid_fraction = 0.8;  ///< window pixels valid in both scenes, [0, 1]
  int spacing = 0;  ///< px between tie-point window centres; 0 = spread max_windows, [0, 100000]
  std::string model = "auto";    ///< auto | translation | affine | field
  double min_psr = 8;            ///< smallest peak-to-sidelobe ratio kept, [0, 1000]
  double min_ssim_gain = -0.02;  ///< SSIM after - before the shift below this: dropped, [-1, 1]
  bool feature_fallback = true;  ///< ORB matching + RANSAC when phase correlation is unreliable

  bool operator==(const AlignConfig&) const = default;
};

struct DetectConfig {
  /// cva | log-ratio | irmad | ssim | texture | ttest | ensemble (see
  /// aftermath/detect/detector.hpp)
  std::string method = "cva";
  /// CVA: score = m^2 / (m^2 + s^2), m = RMS over bands of the robust-standardised difference;
  /// s is the standardised change that scores 0.5, (0, 100].
  double cva_half_score_sigma = 1.5;
  /// CVA: differences are averaged over a (2r+1)^2 box of valid pixels before scoring, px, [0, 7].
  int cva_radius = 0;
  /// Every detector but cva: the standardised change m (no-change sigmas) that scores 0.5,
  /// score = m^2 / (m^2 + s^2), (0, 100].
  double half_score_sigma = 1.5;
  int log_ratio_radius = 1;        ///< log-ratio: box averaging of the log ratios, px, [0, 7]
  int irmad_max_iterations = 100;  ///< irmad: iteration cap, [1, 1000]
  double irmad_tolerance =
      1e-3;                ///< irmad: converged when no canonical correlation moves more, (0, 0.1]
  int ssim_radius = 3;     ///< ssim: local statistics over a (2r+1)^2 box, px, [1, 15]
  int texture_radius = 2;  ///< texture: gradient energy over a (2r+1)^2 box, px, [1, 15]
  int ttest_radius = 1;    ///< ttest: samples per side = scenes x (2r+1)^2 box, px, [0, 7]
  /// ensemble: weights of the member scores (weighted mean; 0 = not a member), each [0, 100].
  double ensemble_cva = 1.0;
  double ensemble_log_ratio = 0.0;
  double ensemble_irmad = 1.0;
  double ensemble_ssim = 1.0;
  double ensemble_texture = 0.0;
  double ensemble_ttest = 0.0;

  bool operator==(const DetectConfig&) const = default;
};

/// Neighbourhood radius, px, that the configured detector reads around a pixel (the halo a tile
/// needs); equals make_detector(config)->radius().
int detect_radius(const DetectConfig& config);

struct RadiometryConfig {
  /// How the post scene is mapped onto the pre scene's radiometry before detection:
  /// none | robust-linear | irmad | histogram (see aftermath/radiometry/normalisation.hpp).
  std::string method = "robust-linear";
  /// irmad: pixels with a chi-square no-change probability above this are the invariant pixels
  /// of the orthogonal regression, (0, 1).
  double irmad_no_change_probability = 0.95;

  bool operator==(const RadiometryConfig&) const = default;
};

struct ThresholdConfig {
  std::string method = "fixed";  ///< fixed | otsu
  double value = 0.5;            ///< score threshold for `fixed`, [0, 1]
  int open_radius = 1;           ///< morphological opening of the mask, px, [0, 32]

  bool operator==(const ThresholdConfig&) const = default;
};

struct DamageConfig {
  /// Per-feature measure graded by the levels below: changed_fraction | mean_score |
  /// median_score | p90_score. For lines (roads, rail) changed_fraction is the fraction of the
  /// centerline's length whose pixel is in the damage mask.
  std::string metric = "changed_fraction";
  /// Class scheme: xbd (no-damage, minor, major, destroyed: levels minor/major/destroyed) or
  /// unosat (no visible damage, possibly, moderately, severely damaged, destroyed: levels
  /// possibly/moderately/severely/destroyed).
  std::string scheme = "xbd";
  double minor = 0.10;       ///< xbd: metric >= minor -> minor damage, [0, 1]
  double major = 0.25;       ///< xbd: metric >= major -> major damage, [0, 1]
  double destroyed = 0.40;   ///< both schemes: metric >= destroyed -> destroyed, [0, 1]
  double possibly = 0.10;    ///< unosat: metric >= possibly -> possibly damaged, [0, 1]
  double moderately = 0.20;  ///< unosat: -> moderately damaged, [0, 1]
  double severely = 0.30;    ///< unosat: -> severely damaged, [0, 1]
  /// Operating points (as skai's): every level raised by high_precision_shift gives the
  /// high-precision classes, lowered by high_recall_shift the high-recall classes (clamped to
  /// [0, 1]); both are stored beside the default classes.
  double high_precision_shift = 0.10;
  double high_recall_shift = 0.10;
  double min_valid_fraction = 0.5;  ///< below this valid fraction a feature is `no-data`, [0, 1]

  bool operator==(const DamageConfig&) const = default;
};

/// How features of a vector source become buildings, roads, rail and other infrastructure, and
/// how lines and points get an area.
struct FeaturesConfig {
  /// Rules "attribute=value|value|*:kind", first match wins; kind is building | road | rail |
  /// infrastructure. A polygon no rule matches is a building; a line or point no rule matches is
  /// skipped with a warning. OpenStreetMap tags work by default.
  std::vector<std::string> kinds{
      "building=*:building",
      "highway=*:road",
      "railway=*:rail",
      "amenity=hospital|clinic|doctors|school|kindergarten|college|university|fire_station|police|"
      "townhall|place_of_worship|marketplace|shelter:infrastructure",
      "man_made=bridge|water_tower|water_works|wastewater_plant|reservoir_covered|tower|pipeline|"
      "pumping_station:infrastructure",
      "power=*:infrastructure",
  };
  std::string width_attribute =
      "width";                    ///< numeric attribute (metres) giving a line's width; "" = none
  double road_width_m = 8;        ///< width of a road without a width attribute, m, (0, 200]
  double rail_width_m = 5;        ///< width of rail, m
  double line_width_m = 4;        ///< width of other lines (e.g. power lines), m
  double point_radius_m = 15;     ///< radius of the disc around a point feature, m
  double segment_length_m = 100;  ///< lines are scored in pieces of at most this length, m

  bool operator==(const FeaturesConfig&) const = default;
};

/// Damage sites: connected parts of the damage mask, found without footprints.
struct SitesConfig {
  bool enabled = true;
  double min_area_m2 =
      50;  ///< smaller connected parts are not sites (square pixels on a pixel grid)
  /// Keep only sites on built-up ground of the pre scene (a morphological building index: bright
  /// structures smaller than built_up_max_size_m stand out of their surroundings).
  bool built_up_only = false;
  double built_up_index_threshold =
      0.05;  ///< index (fraction of the pre brightness range) above which a pixel is built-up
  double built_up_max_size_m = 40;      ///< largest building the index looks for, m
  double min_built_up_fraction = 0.25;  ///< a site needs at least this fraction of built-up pixels

  bool operator==(const SitesConfig&) const = default;
};

struct OutputConfig {
  int deflate_level =
      4;  ///< deflate level of the mask, extra layers and tables, [0, 9]; 0 = uncompressed
  /// Deflate level of change_score, [0, 9]. 0 (the default): per-pixel scores are noise-like,
  /// deflate shrinks them by ~10% for most of the encoding time (docs/performance.md).
  int score_deflate_level = 0;

  bool operator==(const OutputConfig&) const = default;
};

struct JobConfig {
  int schema_version = kConfigSchemaVersion;
  GridConfig grid;
  TilingConfig tiling;
  InputConfig input;
  AlignConfig align;
  RadiometryConfig radiometry;
  DetectConfig detect;
  ThresholdConfig threshold;
  DamageConfig damage;
  FeaturesConfig features;
  SitesConfig sites;
  OutputConfig output;

  bool operator==(const JobConfig&) const = default;
};

/// Throws Error(usage) naming `source`, line and column for YAML that yaml-cpp 0.7 cannot parse
/// without hanging: a ',' flow entry outside any flow collection at the start of a token (e.g. a
/// document ",&x" or "'a', b"; found by fuzz_config), and any block-context explicit key ("? k",
/// on which yaml-cpp 0.7 hangs after a tagged or anchored node). Never rejects a valid config or
/// manifest (such a ',' is invalid YAML, except on a continuation line of a multi-line plain
/// scalar; configs and manifests have plain string keys, never explicit ones).
/// Called before every yaml-cpp parse (config files, --set values, manifests).
void reject_yaml_hazards(const std::string& text, const std::string& source);

/// Reads and validates a config file. Throws Error(usage) naming `path` and the problem.
JobConfig load_config(const std::string& path);
/// Parses and validates YAML text; `source` names it in messages.
JobConfig parse_config(const std::string& yaml_text, const std::string& source = "<config>");
/// Applies "section.key=value" overrides (value parsed as a YAML scalar or flow sequence, with
/// the same type and range checks as the file), then validates. Throws Error(usage).
void apply_overrides(JobConfig& config, const std::vector<std::string>& overrides);
/// Validates a config built in code (ranges, choices, cross-field rules). Throws Error(usage).
void validate(const JobConfig& config);
/// The resolved config as YAML text (every key), which parse_config reads back to the same value.
std::string to_yaml(const JobConfig& config);
/// Human-readable schema: every key with its type, range or choices, default and meaning.
std::string describe_config();

}  // namespace aftermath
