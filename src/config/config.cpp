/// @file config.cpp
/// The job configuration schema and its YAML reader/writer. One table (kKeys) describes every key:
/// dotted name, type, range or choices, meaning and how to get/set it on JobConfig. Parsing,
/// validation, describe_config() and to_yaml() are all driven by that table, so a key added there
/// is read, checked, documented and written everywhere at once.
#include "aftermath/config/config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <variant>
#include <vector>

#include "aftermath/core/error.hpp"
#include "aftermath/core/footprint.hpp"

namespace aftermath {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
// A config is a few KiB; a bigger "config" is the wrong file (or /dev/zero) and is refused early.
constexpr std::size_t kMaxConfigBytes = std::size_t{1} << 20;

// ---------------------------------------------------------------------------------------------
// Values and the key table
// ---------------------------------------------------------------------------------------------

// The order of ValueType matches the alternatives of Value (checked below).
enum class ValueType { integer, real, optional_real, boolean, string, integer_list, string_list };

using Value = std::variant<std::int64_t, double, std::optional<double>, bool, std::string,
                           std::vector<std::int64_t>, std::vector<std::string>>;

static_assert(std::is_same_v<
              std::variant_alternative_t<static_cast<std::size_t>(ValueType::string_list), Value>,
              std::vector<std::string>>);

/// Accepted numbers (for lists: each element). Bounds are inclusive unless lo_open.
struct Range {
  double lo = -kInf;
  double hi = kInf;
  bool lo_open = false;

  bool contains(double v) const { return (lo_open ? v > lo : v >= lo) && v <= hi; }
};

/// How a member type is stored in a Value.
template <typename T>
struct Codec;

template <>
struct Codec<int> {
  static constexpr ValueType kType = ValueType::integer;
  static Value to_value(int v) { return std::int64_t{v}; }
  // Values are range-checked (ranges lie inside int) before they are stored.
  static int from_value(const Value& v) { return static_cast<int>(std::get<std::int64_t>(v)); }
};
template <>
struct Codec<std::int64_t> {
  static constexpr ValueType kType = ValueType::integer;
  static Value to_value(std::int64_t v) { return v; }
  static std::int64_t from_value(const Value& v) { return std::get<std::int64_t>(v); }
};
template <>
struct Codec<double> {
  static constexpr ValueType kType = ValueType::real;
  static Value to_value(double v) { return v; }
  static double from_value(const Value& v) { return std::get<double>(v); }
};
template <>
struct Codec<std::optional<double>> {
  static constexpr ValueType kType = ValueType::optional_real;
  static Value to_value(std::optional<double> v) { return v; }
  static std::optional<double> from_value(const Value& v) {
    return std::get<std::optional<double>>(v);
  }
};
template <>
struct Codec<bool> {
  static constexpr ValueType kType = ValueType::boolean;
  static Value to_value(bool v) { return v; }
  static bool from_value(const Value& v) { return std::get<bool>(v); }
};
template <>
struct Codec<std::string> {
  static constexpr ValueType kType = ValueType::string;
  static Value to_value(const std::string& v) { return v; }
  static std::string from_value(const Value& v) { return std::get<std::string>(v); }
};
template <>
struct Codec<std::vector<int>> {
  static constexpr ValueType kType = ValueType::integer_list;
  static Value to_value(const std::vector<int>& v) {
    return std::vector<std::int64_t>(v.begin(), v.end());
  }
  static std::vector<int> from_value(const Value& v) {
    const auto& wide = std::get<std::vector<std::int64_t>>(v);
    std::vector<int> narrow;
    narrow.reserve(wide.size());
    for (std::int64_t x : wide) narrow.push_back(static_cast<int>(x));
    return narrow;
  }
};
template <>
struct Codec<std::vector<std::string>> {
  static constexpr ValueType kType = ValueType::string_list;
  static Value to_value(const std::vector<std::string>& v) { return v; }
  static std::vector<std::string> from_value(const Value& v) {
    return std::get<std::vector<std::string>>(v);
  }
};

template <auto kSection, auto kMember>
using MemberType = std::remove_cvref_t<decltype((std::declval<JobConfig&>().*kSection).*kMember)>;

template <auto kSection, auto kMember>
Value get_member(const JobConfig& config) {
  return Codec<MemberType<kSection, kMember>>::to_value((config.*kSection).*kMember);
}
template <auto kSection, auto kMember>
void set_member(JobConfig& config, const Value& value) {
  (config.*kSection).*kMember = Codec<MemberType<kSection, kMember>>::from_value(value);
}

struct KeySpec {
  std::string_view key;  ///< dotted name, e.g. "threshold.value"
  ValueType type;
  Range range;                                ///< numbers; for integer lists, each element
  std::span<const std::string_view> choices;  ///< strings; empty = free text
  std::size_t min_items;                      ///< lists: fewest elements
  std::string_view rule;                      ///< cross-field rule, for describe_config()
  std::string_view meaning;
  Value (*get)(const JobConfig&);
  void (*set)(JobConfig&, const Value&);

  std::string_view section() const {
    auto dot = key.find('.');
    return dot == std::string_view::npos ? std::string_view{} : key.substr(0, dot);
  }
  std::string_view leaf() const {
    auto dot = key.find('.');
    return dot == std::string_view::npos ? key : key.substr(dot + 1);
  }
};

struct KeyOptions {
  Range range{};
  std::span<const std::string_view> choices{};
  std::size_t min_items = 0;
  std::string_view rule{};
};

template <auto kSection, auto kMember>
constexpr KeySpec make_key(std::string_view key, std::string_view meaning,
                           KeyOptions options = {}) {
  return KeySpec{key,
                 Codec<MemberType<kSection, kMember>>::kType,
                 options.range,
                 options.choices,
                 options.min_items,
                 options.rule,
                 meaning,
                 &get_member<kSection, kMember>,
                 &set_member<kSection, kMember>};
}

constexpr std::array<std::string_view, 3> kResamplings{"nearest", "bilinear", "cubic"};
constexpr std::array<std::string_view, 4> kAlignModels{"auto", "translation", "affine", "field"};
constexpr std::array<std::string_view, 7> kDetectMethods{"cva",     "log-ratio", "irmad",   "ssim",
                                                         "texture", "ttest",     "ensemble"};
constexpr std::array<std::string_view, 4> kRadiometryMethods{"none", "robust-linear", "irmad",
                                                             "histogram"};
constexpr std::array<std::string_view, 2> kThresholdMethods{"fixed", "otsu"};
constexpr std::array<std::string_view, 4> kDamageMetrics{"changed_fraction", "mean_score",
                                                         "median_score", "p90_score"};
constexpr std::array<std::string_view, 2> kDamageSchemes{"xbd", "unosat"};
constexpr std::array<std::string_view, 11> kSections{"grid",       "tiling", "input",     "align",
                                                     "radiometry", "detect", "threshold", "damage",
                                                     "features",   "sites",  "output"};

constexpr std::string_view kSchemaVersionKey = "schema_version";
constexpr Range kFraction{0, 1};

Value get_schema_version(const JobConfig& config) { return std::int64_t{config.schema_version}; }
void set_schema_version(JobConfig& config, const Value& value) {
  config.schema_version = static_cast<int>(std::get<std::int64_t>(value));
}

using C = JobConfig;
// In the order of the header (and of to_yaml's output).
const auto kKeys = std::to_array<KeySpec>({
    {kSchemaVersionKey,
     ValueType::integer,
     {kConfigSchemaVersion, kConfigSchemaVersion},
     {},
     0,
     "required",
     "version of this file format",
     &get_schema_version,
     &set_schema_version},
    make_key<&C::grid, &GridConfig::crs>(
        "grid.crs",
        "CRS of the analysis grid (anything GDAL's SetFromUserInput takes); \"\" = "
        "the pre scene's"),
    make_key<&C::grid, &GridConfig::resolution>(
        "grid.resolution", "pixel size in CRS units; 0 = the pre scene's", {.range = {0, kInf}}),
    make_key<&C::tiling, &TilingConfig::tile_size>(
        "tiling.tile_size", "tile side, px; also the HDF5 chunk size", {.range = {64, 8192}}),
    make_key<&C::tiling, &TilingConfig::halo>(
        "tiling.halo",
        "extra pixels read around a tile, px; 0 = what the detector, the "
        "mask's opening and the building index reach (the least that keeps "
        "tiles identical to the whole scene)",
        {.range = {0, 512}, .rule = "< tiling.tile_size"}),
    make_key<&C::tiling, &TilingConfig::tiles_in_flight>(
        "tiling.tiles_in_flight", "tiles in the pipeline at once (the memory cap); 0 = 2 x threads",
        {.range = {0, 1024}}),
    make_key<&C::input, &InputConfig::pre_bands>(
        "input.pre_bands", "1-based bands of the pre scene to use; [] = all",
        {.range = {1, 65535}, .rule = "same length as input.post_bands"}),
    make_key<&C::input, &InputConfig::post_bands>(
        "input.post_bands", "1-based bands of the post scene, paired with pre_bands in order",
        {.range = {1, 65535}, .rule = "same length as input.pre_bands"}),
    make_key<&C::input, &InputConfig::pre_nodata>(
        "input.pre_nodata", "overrides the pre file's nodata value; ~ = the file's"),
    make_key<&C::input, &InputConfig::post_nodata>(
        "input.post_nodata", "overrides the post file's nodata value; ~ = the file's"),
    make_key<&C::input, &InputConfig::resampling>(
        "input.resampling", "resampling when warping onto the grid", {.choices = kResamplings}),
    make_key<&C::input, &InputConfig::max_pixels>(
        "input.max_pixels", "largest accepted scene, width x height", {.range = {1, 1e12}}),
    make_key<&C::input, &InputConfig::min_overlap_px>(
        "input.min_overlap_px", "smallest accepted overlap side, px", {.range = {1, 1e6}}),
    make_key<&C::input, &InputConfig::allowed_drivers>(
        "input.allowed_drivers",
        "GDAL drivers accepted for rasters (an allow-list: a crafted VRT cannot read other files)",
        {.min_items = 1}),
    make_key<&C::align, &AlignConfig::enabled>(
        "align.enabled", "co-register the post scene onto the pre scene before detection"),
    make_key<&C::align, &AlignConfig::window_size>("align.window_size",
                                                   "side of a tie-point correlation window, px",
                                                   {.range = {32, 2048}, .rule = "power of two"}),
    make_key<&C::align, &AlignConfig::max_windows>(
        "align.max_windows", "tie-point windows sampled across the overlap", {.range = {1, 10000}}),
    make_key<&C::align, &AlignConfig::max_shift_px>(
        "align.max_shift_px", "largest shift searched, px", {.range = {0, 4096}}),
    make_key<&C::align, &AlignConfig::min_peak>(
        "align.min_peak", "smallest normalised correlation peak kept", {.range = kFraction}),
    make_key<&C::align, &AlignConfig::min_valid_fraction>(
        "align.min_valid_fraction", "fraction of window pixels valid in both scenes",
        {.range = kFraction}),
    make_key<&C::align, &AlignConfig::spacing>(
        "align.spacing",
        "px between tie-point window centres (windows may overlap); 0 = spread align.max_windows",
        {.range = {0, 100000}}),
    make_key<&C::align, &AlignConfig::model>(
        "align.model",
        "registration model; auto = the simplest whose cross-validated residual is near the best",
        {.choices = kAlignModels}),
    make_key<&C::align, &AlignConfig::min_psr>(
        "align.min_psr", "smallest peak-to-sidelobe ratio of a tie point kept",
        {.range = {0, 1000}}),
    make_key<&C::align, &AlignConfig::min_ssim_gain>(
        "align.min_ssim_gain",
        "a tie point whose shift changes the similarity (SSIM) by less than this is dropped",
        {.range = {-1, 1}}),
    make_key<&C::align, &AlignConfig::feature_fallback>(
        "align.feature_fallback",
        "ORB feature matching + RANSAC when phase correlation is unreliable (big rotation, scale)"),
    make_key<&C::radiometry, &RadiometryConfig::method>(
        "radiometry.method", "normalisation of the post scene onto the pre scene before detection",
        {.choices = kRadiometryMethods}),
    make_key<&C::radiometry, &RadiometryConfig::irmad_no_change_probability>(
        "radiometry.irmad_no_change_probability",
        "irmad: pixels with a chi-square no-change probability above this fit the orthogonal "
        "regression",
        {.range = {0, 1, true}, .rule = "< 1"}),
    make_key<&C::detect, &DetectConfig::method>("detect.method", "change detector",
                                                {.choices = kDetectMethods}),
    make_key<&C::detect, &DetectConfig::cva_half_score_sigma>(
        "detect.cva_half_score_sigma",
        "CVA: the standardised change that scores 0.5 (score = m^2 / (m^2 + s^2))",
        {.range = {0, 100, true}}),
    make_key<&C::detect, &DetectConfig::cva_radius>(
        "detect.cva_radius",
        "CVA: radius of the box over which differences are averaged before scoring, px",
        {.range = {0, 7}}),
    make_key<&C::detect, &DetectConfig::half_score_sigma>(
        "detect.half_score_sigma",
        "every detector but cva: the standardised change (no-change sigmas) that scores 0.5",
        {.range = {0, 100, true}}),
    make_key<&C::detect, &DetectConfig::log_ratio_radius>(
        "detect.log_ratio_radius", "log-ratio: radius of the box averaging the log ratios, px",
        {.range = {0, 7}}),
    make_key<&C::detect, &DetectConfig::irmad_max_iterations>(
        "detect.irmad_max_iterations", "irmad: most reweighting iterations", {.range = {1, 1000}}),
    make_key<&C::detect, &DetectConfig::irmad_tolerance>(
        "detect.irmad_tolerance",
        "irmad: converged when no canonical correlation moves more than this",
        {.range = {0, 0.1, true}}),
    make_key<&C::detect, &DetectConfig::ssim_radius>(
        "detect.ssim_radius", "ssim: radius of the box of the local statistics, px",
        {.range = {1, 15}}),
    make_key<&C::detect, &DetectConfig::texture_radius>(
        "detect.texture_radius", "texture: radius of the box of the gradient energy, px",
        {.range = {1, 15}}),
    make_key<&C::detect, &DetectConfig::ttest_radius>(
        "detect.ttest_radius", "ttest: samples per side are the scenes x a (2r+1)^2 box, px",
        {.range = {0, 7}, .rule = ">= 1 with one scene per side"}),
    make_key<&C::detect, &DetectConfig::ensemble_cva>(
        "detect.ensemble_cva", "ensemble: weight of cva (0 = not a member)", {.range = {0, 100}}),
    make_key<&C::detect, &DetectConfig::ensemble_log_ratio>(
        "detect.ensemble_log_ratio", "ensemble: weight of log-ratio", {.range = {0, 100}}),
    make_key<&C::detect, &DetectConfig::ensemble_irmad>(
        "detect.ensemble_irmad", "ensemble: weight of irmad", {.range = {0, 100}}),
    make_key<&C::detect, &DetectConfig::ensemble_ssim>(
        "detect.ensemble_ssim", "ensemble: weight of ssim", {.range = {0, 100}}),
    make_key<&C::detect, &DetectConfig::ensemble_texture>(
        "detect.ensemble_texture", "ensemble: weight of texture", {.range = {0, 100}}),
    make_key<&C::detect, &DetectConfig::ensemble_ttest>(
        "detect.ensemble_ttest", "ensemble: weight of ttest",
        {.range = {0, 100}, .rule = "ensemble: some weight > 0"}),
    make_key<&C::threshold, &ThresholdConfig::method>("threshold.method",
                                                      "how the change mask is cut from the score",
                                                      {.choices = kThresholdMethods}),
    make_key<&C::threshold, &ThresholdConfig::value>(
        "threshold.value", "score threshold for `fixed`", {.range = kFraction}),
    make_key<&C::threshold, &ThresholdConfig::open_radius>(
        "threshold.open_radius", "morphological opening of the mask, px", {.range = {0, 32}}),
    make_key<&C::damage, &DamageConfig::metric>("damage.metric",
                                                "per-feature measure graded by the levels below "
                                                "(lines: changed_fraction is along the centerline)",
                                                {.choices = kDamageMetrics}),
    make_key<&C::damage, &DamageConfig::scheme>(
        "damage.scheme",
        "class scheme: xbd (no-damage/minor/major/destroyed) or unosat (no visible damage/possibly/"
        "moderately/severely damaged/destroyed)",
        {.choices = kDamageSchemes}),
    make_key<&C::damage, &DamageConfig::minor>("damage.minor",
                                               "xbd: metric >= minor -> minor damage",
                                               {.range = kFraction, .rule = "<= damage.major"}),
    make_key<&C::damage, &DamageConfig::major>(
        "damage.major", "xbd: metric >= major -> major damage",
        {.range = kFraction, .rule = "minor <= major <= destroyed"}),
    make_key<&C::damage, &DamageConfig::destroyed>(
        "damage.destroyed", "both schemes: metric >= destroyed -> destroyed",
        {.range = kFraction, .rule = ">= damage.major, >= damage.severely"}),
    make_key<&C::damage, &DamageConfig::possibly>(
        "damage.possibly", "unosat: metric >= possibly -> possibly damaged",
        {.range = kFraction, .rule = "<= damage.moderately"}),
    make_key<&C::damage, &DamageConfig::moderately>(
        "damage.moderately", "unosat: metric >= moderately -> moderately damaged",
        {.range = kFraction, .rule = "possibly <= moderately <= severely"}),
    make_key<&C::damage, &DamageConfig::severely>(
        "damage.severely", "unosat: metric >= severely -> severely damaged",
        {.range = kFraction, .rule = "moderately <= severely <= destroyed"}),
    make_key<&C::damage, &DamageConfig::high_precision_shift>(
        "damage.high_precision_shift",
        "the high-precision operating point raises every level by this much", {.range = kFraction}),
    make_key<&C::damage, &DamageConfig::high_recall_shift>(
        "damage.high_recall_shift",
        "the high-recall operating point lowers every level by this much", {.range = kFraction}),
    make_key<&C::damage, &DamageConfig::min_valid_fraction>(
        "damage.min_valid_fraction", "below this valid fraction a feature is `no-data`",
        {.range = kFraction}),
    make_key<&C::features, &FeaturesConfig::kinds>(
        "features.kinds",
        "rules attribute=value|value|*:kind (kind: building, road, rail, infrastructure), first "
        "match "
        "wins; unmatched polygons are buildings, unmatched lines and points are skipped",
        {.rule = "each rule attribute=values:kind"}),
    make_key<&C::features, &FeaturesConfig::width_attribute>(
        "features.width_attribute",
        "numeric attribute giving a line's width in metres (\"\" = none)"),
    make_key<&C::features, &FeaturesConfig::road_width_m>(
        "features.road_width_m", "width of a road without a width attribute, m",
        {.range = {0, 200, true}}),
    make_key<&C::features, &FeaturesConfig::rail_width_m>(
        "features.rail_width_m", "width of rail without a width attribute, m",
        {.range = {0, 200, true}}),
    make_key<&C::features, &FeaturesConfig::line_width_m>(
        "features.line_width_m", "width of other lines (power lines, pipelines), m",
        {.range = {0, 200, true}}),
    make_key<&C::features, &FeaturesConfig::point_radius_m>(
        "features.point_radius_m", "radius of the disc scored around a point feature, m",
        {.range = {0, 1000, true}}),
    make_key<&C::features, &FeaturesConfig::segment_length_m>(
        "features.segment_length_m", "lines are scored in pieces of at most this length, m",
        {.range = {1, 100000}}),
    make_key<&C::sites, &SitesConfig::enabled>(
        "sites.enabled",
        "find damage sites: connected parts of the damage mask, without footprints"),
    make_key<&C::sites, &SitesConfig::min_area_m2>(
        "sites.min_area_m2", "smallest damage site, m2 (pixels^2 on a pixel grid)",
        {.range = {0, 1e9}}),
    make_key<&C::sites, &SitesConfig::built_up_only>(
        "sites.built_up_only",
        "keep only sites on built-up ground of the pre scene (morphological building index); "
        "stores "
        "a built_up layer"),
    make_key<&C::sites, &SitesConfig::built_up_index_threshold>(
        "sites.built_up_index_threshold",
        "building index (fraction of the pre scene's brightness range) above which a pixel is "
        "built-up",
        {.range = kFraction}),
    make_key<&C::sites, &SitesConfig::built_up_max_size_m>(
        "sites.built_up_max_size_m", "largest building the index looks for, m",
        {.range = {1, 500}}),
    make_key<&C::sites, &SitesConfig::min_built_up_fraction>(
        "sites.min_built_up_fraction", "a site needs at least this fraction of built-up pixels",
        {.range = kFraction}),
    make_key<&C::output, &OutputConfig::deflate_level>(
        "output.deflate_level",
        "deflate level of the mask, extra layers and tables; 0 = uncompressed (the mask is "
        "run-length deflated: any level above 0 gives the same bytes)",
        {.range = {0, 9}}),
    make_key<&C::output, &OutputConfig::score_deflate_level>(
        "output.score_deflate_level",
        "deflate level of change_score; 0 = uncompressed (scores are noise-like: deflate saves "
        "~10%)",
        {.range = {0, 9}}),
});

const KeySpec* find_key(std::string_view dotted) {
  for (const KeySpec& spec : kKeys) {
    if (spec.key == dotted) return &spec;
  }
  return nullptr;
}

bool is_section(std::string_view name) {
  return std::find(kSections.begin(), kSections.end(), name) != kSections.end();
}

// ---------------------------------------------------------------------------------------------
// Text helpers
// ---------------------------------------------------------------------------------------------

/// A value quoted for a one-line message: control characters escaped, long text cut.
std::string printable(std::string_view text, std::size_t max_chars = 60) {
  std::string out;
  for (char ch : text) {
    if (out.size() >= max_chars) {
      // Do not leave half a UTF-8 character before the ellipsis.
      while (!out.empty() && (static_cast<unsigned char>(out.back()) & 0xC0) == 0x80) {
        out.pop_back();
      }
      if (!out.empty() && static_cast<unsigned char>(out.back()) >= 0xC0) out.pop_back();
      out += "...";
      break;
    }
    auto byte = static_cast<unsigned char>(ch);
    if (ch == '\n') {
      out += "\\n";
    } else if (ch == '\t') {
      out += "\\t";
    } else if (byte < 0x20 || byte == 0x7f) {
      constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    } else {
      out += ch;
    }
  }
  return out;
}

std::string in_quotes(std::string_view text) { return "\"" + printable(text) + "\""; }

/// Shortest text that reads back to exactly `v` (std::to_chars round-trips).
std::string format_real(double v) {
  if (std::isnan(v)) return ".nan";
  if (std::isinf(v)) return v > 0 ? ".inf" : "-.inf";
  std::array<char, 64> buffer{};
  auto [end, ec] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), v);
  return ec == std::errc{} ? std::string(buffer.data(), end) : std::string("?");
}

std::string format_bound(double v, ValueType type) {
  bool integral = type == ValueType::integer || type == ValueType::integer_list;
  if (integral && std::isfinite(v)) return std::to_string(static_cast<std::int64_t>(v));
  return format_real(v);
}

std::string range_text(const Range& range, ValueType type) {
  bool has_lo = std::isfinite(range.lo);
  bool has_hi = std::isfinite(range.hi);
  if (!has_lo && !has_hi) return "any finite number";
  if (has_lo && has_hi && range.lo == range.hi && !range.lo_open) {
    return format_bound(range.lo, type);
  }
  if (!has_hi) return (range.lo_open ? "> " : ">= ") + format_bound(range.lo, type);
  if (!has_lo) return "<= " + format_bound(range.hi, type);
  return std::string(range.lo_open ? "(" : "[") + format_bound(range.lo, type) + ", " +
         format_bound(range.hi, type) + "]";
}

/// YAML double-quoted scalar; control characters as \xNN so the result stays on one line.
std::string yaml_quote(std::string_view text) {
  std::string out = "\"";
  for (char ch : text) {
    auto byte = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (byte < 0x20 || byte == 0x7f) {
      constexpr char kHex[] = "0123456789ABCDEF";
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::string value_to_yaml(const Value& value) {
  struct Writer {
    std::string operator()(std::int64_t v) const { return std::to_string(v); }
    std::string operator()(double v) const { return format_real(v); }
    std::string operator()(const std::optional<double>& v) const {
      return v ? format_real(*v) : "~";
    }
    std::string operator()(bool v) const { return v ? "true" : "false"; }
    std::string operator()(const std::string& v) const { return yaml_quote(v); }
    std::string operator()(const std::vector<std::int64_t>& v) const {
      std::string out = "[";
      for (std::size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + std::to_string(v[i]);
      return out + "]";
    }
    std::string operator()(const std::vector<std::string>& v) const {
      std::string out = "[";
      for (std::size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + yaml_quote(v[i]);
      return out + "]";
    }
  };
  return std::visit(Writer{}, value);
}

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions: "chnage").
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

std::string_view leaf_of(std::string_view dotted) {
  auto dot = dotted.rfind('.');
  return dot == std::string_view::npos ? dotted : dotted.substr(dot + 1);
}

/// " (did you mean "x"?)" for the nearest valid names, or a list of the valid names in scope.
std::string suggestion_for(std::string_view unknown) {
  // Candidates: every dotted key and section. A key under the wrong section (or at the top
  // level) is matched by its last component, at a cost of one edit.
  // Valid keys are short: a long unknown key is nowhere near one (and the distance is O(n*m)).
  constexpr std::size_t kLongestGuess = 80;
  std::string_view unknown_leaf = leaf_of(unknown);
  if (unknown.size() > kLongestGuess) unknown_leaf = unknown = std::string_view{};
  bool top_level = unknown_leaf.size() == unknown.size();
  std::vector<std::string_view> candidates;
  for (const KeySpec& spec : kKeys) candidates.push_back(spec.key);
  if (top_level) candidates.insert(candidates.end(), kSections.begin(), kSections.end());

  std::size_t best = std::numeric_limits<std::size_t>::max();
  std::vector<std::string_view> nearest;
  for (std::string_view candidate : candidates) {
    std::size_t distance = edit_distance(unknown, candidate);
    if (candidate.find('.') != std::string_view::npos) {
      distance = std::min(distance, edit_distance(unknown_leaf, leaf_of(candidate)) + 1);
    }
    if (distance < best) {
      best = distance;
      nearest.assign(1, candidate);
    } else if (distance == best) {
      nearest.push_back(candidate);
    }
  }
  std::size_t tolerance = std::max<std::size_t>(2, unknown_leaf.size() / 3);
  if (best > tolerance) {
    // "chnage_threshold": a section name inside an unknown top-level key is a good guess too.
    nearest.clear();
    for (std::string_view section : kSections) {
      if (top_level && unknown.find(section) != std::string_view::npos) {
        nearest.push_back(section);
      }
    }
  }
  if (!nearest.empty()) {
    std::string text = " (did you mean ";
    for (std::size_t i = 0; i < nearest.size() && i < 3; ++i) {
      text += (i ? " or \"" : "\"") + std::string(nearest[i]) + "\"";
    }
    return text + "?)";
  }
  // No close match: list what is valid where the unknown key was.
  std::string_view section = unknown.substr(0, unknown.size() - unknown_leaf.size());
  std::string text;
  if (section.empty()) {
    text = " (valid top-level keys: schema_version";
    for (std::string_view s : kSections) text += ", " + std::string(s);
  } else {
    section.remove_suffix(1);  // the dot
    text = " (valid keys in " + std::string(section) + ":";
    bool first = true;
    for (const KeySpec& spec : kKeys) {
      if (spec.section() != section) continue;
      text += (first ? " " : ", ") + std::string(spec.leaf());
      first = false;
    }
  }
  return text + ")";
}

std::string unknown_key_message(std::string_view unknown) {
  if (leaf_of(unknown) == "<<") return "merge keys (<<) are not supported; write the keys out";
  return "unknown key " + in_quotes(unknown) + suggestion_for(unknown);
}

// ---------------------------------------------------------------------------------------------
// Failing with a located message
// ---------------------------------------------------------------------------------------------

/// Where a value came from: a file (with a position) or an override (no position).
struct Origin {
  std::string source;
  bool has_position = true;
};

[[noreturn]] void fail(const std::string& source, const std::string& what) {
  throw Error(ErrorKind::usage, source + ": " + what);
}

[[noreturn]] void fail_at(const Origin& origin, const YAML::Mark& mark, const std::string& what) {
  if (!origin.has_position || mark.is_null()) fail(origin.source, what);
  fail(origin.source + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1),
       what);
}

// ---------------------------------------------------------------------------------------------
// Scalars
// ---------------------------------------------------------------------------------------------

std::string describe_node(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "nothing (null)";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Scalar:
      if (node.Tag() == "!") return "the quoted string " + in_quotes(node.Scalar());
      if (node.Tag() != "?") {
        constexpr std::string_view kCoreTagPrefix = "tag:yaml.org,2002:";
        std::string_view tag = node.Tag();
        if (tag.starts_with(kCoreTagPrefix)) {
          return "a scalar tagged !!" + printable(tag.substr(kCoreTagPrefix.size()));
        }
        return "a scalar tagged " + printable(tag);
      }
      return printable(node.Scalar());
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

std::string lowercase(std::string_view text) {
  std::string out(text);
  for (char& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return out;
}

/// YAML's spellings of NaN and infinity (and the bare words std::from_chars would accept).
bool is_non_finite_word(std::string_view text) {
  if (!text.empty() && (text.front() == '+' || text.front() == '-')) text.remove_prefix(1);
  std::string word = lowercase(text);
  return word == ".nan" || word == "nan" || word == ".inf" || word == "inf" || word == "infinity" ||
         word == ".infinity";
}

/// Decimal number syntax: [+-] (digits [. digits] | . digits) [(e|E) [+-] digits].
bool is_decimal(std::string_view s, bool& integral) {
  std::size_t i = 0;
  auto digits = [&] {
    std::size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    return i - start;
  };
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  std::size_t mantissa_digits = digits();
  integral = true;
  if (i < s.size() && s[i] == '.') {
    ++i;
    mantissa_digits += digits();
    integral = false;
  }
  if (mantissa_digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (digits() == 0) return false;
    integral = false;
  }
  return i == s.size();
}

/// The text of a plain scalar that must be a number or bool; quoted or tagged scalars and
/// non-scalars are type errors (`value: "0.35"` is a string in YAML).
std::string plain_scalar(const YAML::Node& node, std::string_view key, std::string_view expected,
                         const Origin& origin) {
  if (!node.IsScalar() || node.Tag() != "?") {
    std::string hint = node.IsScalar() && node.Tag() == "!" ? " (remove the quotes)" : "";
    fail_at(origin, node.Mark(),
            std::string(key) + ": expected " + std::string(expected) + ", got " +
                describe_node(node) + hint);
  }
  return node.Scalar();
}

std::string out_of_range_message(const KeySpec& spec, std::string_view shown_key,
                                 std::string_view shown_value) {
  bool bounded = std::isfinite(spec.range.lo) && std::isfinite(spec.range.hi);
  return std::string(shown_key) + " = " + std::string(shown_value) + " is out of range: must be " +
         (bounded ? "in " : "") + range_text(spec.range, spec.type);
}

[[noreturn]] void fail_range(const KeySpec& spec, std::string_view shown_key,
                             std::string_view shown_value, const YAML::Mark& mark,
                             const Origin& origin) {
  fail_at(origin, mark, out_of_range_message(spec, shown_key, shown_value));
}

double parse_real(const YAML::Node& node, std::string_view key, const Origin& origin) {
  std::string text = plain_scalar(node, key, "a number", origin);
  if (is_non_finite_word(text)) {
    fail_at(origin, node.Mark(),
            std::string(key) + ": " + printable(text) + " is not a finite number");
  }
  bool integral = false;
  if (!is_decimal(text, integral)) {
    fail_at(origin, node.Mark(),
            std::string(key) + ": expected a number, got " + describe_node(node));
  }
  std::string_view digits = text;
  if (digits.front() == '+') digits.remove_prefix(1);  // from_chars takes no '+'
  double value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec == std::errc::result_out_of_range || (ec == std::errc{} && !std::isfinite(value))) {
    // from_chars reports overflow and underflow alike; strtod tells them apart.
    bool overflow = std::isinf(std::strtod(text.c_str(), nullptr));
    fail_at(origin, node.Mark(),
            std::string(key) + ": " + printable(text) +
                (overflow ? " is not a finite number (too large for a double)"
                          : " is too small for a double (underflows to 0)"));
  }
  if (ec != std::errc{} || end != digits.data() + digits.size()) {
    fail_at(origin, node.Mark(),
            std::string(key) + ": expected a number, got " + describe_node(node));
  }
  return value;
}

std::int64_t parse_integer(const YAML::Node& node, const KeySpec& spec, std::string_view key,
                           const Origin& origin) {
  std::string text = plain_scalar(node, key, "an integer", origin);
  bool integral = false;
  if (is_non_finite_word(text) || !is_decimal(text, integral)) {
    fail_at(origin, node.Mark(),
            std::string(key) + ": expected an integer, got " + describe_node(node));
  }
  if (integral) {
    std::string_view digits = text;
    if (digits.front() == '+') digits.remove_prefix(1);
    std::int64_t value = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    // Too big for 64 bits is out of every range: report the range, never wrap or saturate.
    if (ec == std::errc::result_out_of_range)
      fail_range(spec, key, printable(text), node.Mark(), origin);
    if (ec != std::errc{} || end != digits.data() + digits.size()) {
      fail_at(origin, node.Mark(),
              std::string(key) + ": expected an integer, got " + describe_node(node));
    }
    return value;
  }
  // 1e12 or 512.0: accepted when the value is a whole number.
  double value = parse_real(node, key, origin);
  if (value != std::trunc(value)) {
    fail_at(origin, node.Mark(),
            std::string(key) + ": expected an integer, got " + describe_node(node));
  }
  if (!(std::fabs(value) < 9.0e18)) fail_range(spec, key, printable(text), node.Mark(), origin);
  return static_cast<std::int64_t>(value);
}

bool parse_bool(const YAML::Node& node, std::string_view key, const Origin& origin) {
  std::string text = plain_scalar(node, key, "true or false", origin);
  if (text == "true") return true;
  if (text == "false") return false;
  fail_at(origin, node.Mark(),
          std::string(key) + ": expected true or false, got " + describe_node(node));
}

std::string parse_string(const YAML::Node& node, std::string_view key, const Origin& origin) {
  if (!node.IsScalar()) {
    std::string hint = node.IsNull() ? " (write \"\" for an empty string)" : "";
    fail_at(origin, node.Mark(),
            std::string(key) + ": expected a string, got " + describe_node(node) + hint);
  }
  return node.Scalar();
}

const YAML::Node& require_list(const YAML::Node& node, std::string_view key,
                               std::string_view example, const Origin& origin) {
  if (!node.IsSequence()) {
    fail_at(origin, node.Mark(),
            std::string(key) + ": expected a list like " + std::string(example) + ", got " +
                describe_node(node));
  }
  return node;
}

// ---------------------------------------------------------------------------------------------
// Per-key checks (shared by parsing and validate)
// ---------------------------------------------------------------------------------------------

/// The problem with one key's value, or "" when it is fine. Messages start with the key.
std::string check_value(const KeySpec& spec, const Value& value) {
  std::string key(spec.key);
  if (spec.key == kSchemaVersionKey) {
    std::int64_t version = std::get<std::int64_t>(value);
    if (version == kConfigSchemaVersion) return {};
    return "schema_version " + std::to_string(version) +
           " is not supported (this aftermath reads schema_version: " +
           std::to_string(kConfigSchemaVersion) + ")";
  }
  auto out_of_range = [&](const std::string& shown_key, const std::string& shown_value) {
    return out_of_range_message(spec, shown_key, shown_value);
  };
  auto check_real = [&](double v) -> std::string {
    if (!std::isfinite(v)) return key + " = " + format_real(v) + " is not a finite number";
    if (!spec.range.contains(v)) return out_of_range(key, format_real(v));
    return {};
  };
  switch (spec.type) {
    case ValueType::integer: {
      std::int64_t v = std::get<std::int64_t>(value);
      if (!spec.range.contains(static_cast<double>(v))) return out_of_range(key, std::to_string(v));
      return {};
    }
    case ValueType::real:
      return check_real(std::get<double>(value));
    case ValueType::optional_real: {
      const auto& v = std::get<std::optional<double>>(value);
      return v ? check_real(*v) : std::string{};
    }
    case ValueType::boolean:
      return {};
    case ValueType::string: {
      const auto& v = std::get<std::string>(value);
      if (spec.choices.empty() ||
          std::find(spec.choices.begin(), spec.choices.end(), v) != spec.choices.end()) {
        return {};
      }
      std::string text = key + " = " + in_quotes(v) + " is not one of:";
      for (std::size_t i = 0; i < spec.choices.size(); ++i) {
        text += (i ? ", " : " ") + std::string(spec.choices[i]);
      }
      return text;
    }
    case ValueType::integer_list: {
      const auto& v = std::get<std::vector<std::int64_t>>(value);
      if (v.size() < spec.min_items) return key + " must not be empty";
      for (std::size_t i = 0; i < v.size(); ++i) {
        if (!spec.range.contains(static_cast<double>(v[i]))) {
          return out_of_range(key + "[" + std::to_string(i) + "]", std::to_string(v[i]));
        }
      }
      return {};
    }
    case ValueType::string_list: {
      const auto& v = std::get<std::vector<std::string>>(value);
      if (v.size() < spec.min_items) return key + " must not be empty";
      for (std::size_t i = 0; i < v.size(); ++i) {
        if (v[i].empty()) return key + "[" + std::to_string(i) + "] must not be empty";
      }
      return {};
    }
  }
  return {};
}

/// Reads one key's value from a YAML node with the type checks of its spec, then its range.
Value parse_value(const KeySpec& spec, const YAML::Node& node, const Origin& origin) {
  std::string key(spec.key);
  Value value;
  switch (spec.type) {
    case ValueType::integer:
      value = parse_integer(node, spec, key, origin);
      break;
    case ValueType::real:
      value = parse_real(node, key, origin);
      break;
    case ValueType::optional_real:
      value = node.IsNull() ? std::optional<double>{}
                            : std::optional<double>{parse_real(node, key, origin)};
      break;
    case ValueType::boolean:
      value = parse_bool(node, key, origin);
      break;
    case ValueType::string:
      value = parse_string(node, key, origin);
      break;
    case ValueType::integer_list: {
      std::vector<std::int64_t> items;
      for (const YAML::Node& item : require_list(node, key, "[1, 2, 3]", origin)) {
        items.push_back(
            parse_integer(item, spec, key + "[" + std::to_string(items.size()) + "]", origin));
        if (!spec.range.contains(static_cast<double>(items.back()))) {
          fail_range(spec, key + "[" + std::to_string(items.size() - 1) + "]",
                     std::to_string(items.back()), item.Mark(), origin);
        }
      }
      value = std::move(items);
      break;
    }
    case ValueType::string_list: {
      std::vector<std::string> items;
      for (const YAML::Node& item : require_list(node, key, "[GTiff, COG]", origin)) {
        items.push_back(parse_string(item, key + "[" + std::to_string(items.size()) + "]", origin));
      }
      value = std::move(items);
      break;
    }
  }
  if (std::string problem = check_value(spec, value); !problem.empty()) {
    fail_at(origin, node.Mark(), problem);
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Documents
// ---------------------------------------------------------------------------------------------

/// Map entries with scalar keys, rejecting duplicates (yaml-cpp keeps both when iterating).
struct Entry {
  std::string name;  ///< dotted for section keys
  YAML::Node key;
  YAML::Node value;
};

std::vector<Entry> entries_of(const YAML::Node& map, const std::string& prefix,
                              const Origin& origin) {
  std::vector<Entry> entries;
  std::set<std::string> seen;
  // `*it` is a temporary key/value pair: take copies of its nodes (they share the data).
  for (const auto& pair : map) {
    YAML::Node key = pair.first;
    if (!key.IsScalar()) {
      fail_at(origin, key.Mark(),
              "keys must be names, got " + describe_node(key) +
                  (prefix.empty() ? std::string(" at the top level")
                                  : " in section " + prefix.substr(0, prefix.size() - 1)));
    }
    std::string name = prefix + key.Scalar();
    if (!seen.insert(name).second) fail_at(origin, key.Mark(), "duplicate key " + in_quotes(name));
    entries.push_back({std::move(name), key, pair.second});
  }
  return entries;
}

void validate_in(const JobConfig& config, const std::string& source);

JobConfig parse_document(const YAML::Node& root, const Origin& origin) {
  if (!root.IsMap()) {
    fail_at(origin, root.Mark(),
            "the top level must be a mapping of sections (like \"threshold:\"), got " +
                describe_node(root));
  }
  std::vector<Entry> top = entries_of(root, "", origin);

  // The version first: a file of another version is best told so, not that its keys are unknown.
  auto version = std::find_if(top.begin(), top.end(),
                              [](const Entry& e) { return e.name == kSchemaVersionKey; });
  if (version == top.end()) {
    std::string hint;
    for (const Entry& entry : top) {
      if (edit_distance(entry.name.substr(0, 32), kSchemaVersionKey) <= 2) {
        hint = "; is " + in_quotes(entry.name) + " a misspelling?";
      }
    }
    fail(origin.source, "missing schema_version (this aftermath reads schema_version: " +
                            std::to_string(kConfigSchemaVersion) + ")" + hint);
  }
  JobConfig config;
  const KeySpec& version_spec = *find_key(kSchemaVersionKey);
  version_spec.set(config, parse_value(version_spec, version->value, origin));

  for (const Entry& entry : top) {
    if (entry.name == kSchemaVersionKey) continue;
    if (!is_section(entry.name)) {
      if (find_key(entry.name) != nullptr) {
        auto dot = entry.name.find('.');
        fail_at(origin, entry.key.Mark(),
                "key " + in_quotes(entry.name) + " must be nested in its section: " +
                    entry.name.substr(0, dot) + ": {" + entry.name.substr(dot + 1) + ": ...}");
      }
      fail_at(origin, entry.key.Mark(), unknown_key_message(entry.name));
    }
    // A section left empty (all its keys commented out) is null: it keeps every default.
    if (entry.value.IsNull()) continue;
    if (!entry.value.IsMap()) {
      fail_at(origin, entry.value.Mark(),
              "section " + in_quotes(entry.name) + " must be a mapping of keys, got " +
                  describe_node(entry.value));
    }
    for (const Entry& item : entries_of(entry.value, entry.name + ".", origin)) {
      const KeySpec* spec = find_key(item.name);
      if (spec == nullptr) fail_at(origin, item.key.Mark(), unknown_key_message(item.name));
      spec->set(config, parse_value(*spec, item.value, origin));
    }
  }
  validate_in(config, origin.source);
  return config;
}

std::string check_kind_rule(const std::string& rule) {
  std::string problem;
  (void)parse_kind_rule(rule, problem);
  return problem;
}

/// Cross-field rules and every key's own check; messages name `source`.
void validate_in(const JobConfig& config, const std::string& source) {
  for (const KeySpec& spec : kKeys) {
    if (std::string problem = check_value(spec, spec.get(config)); !problem.empty()) {
      fail(source, problem);
    }
  }
  const DamageConfig& damage = config.damage;
  if (!(damage.minor <= damage.major)) {
    fail(source, "damage.minor (" + format_real(damage.minor) + ") must be <= damage.major (" +
                     format_real(damage.major) + ")");
  }
  if (!(damage.major <= damage.destroyed)) {
    fail(source, "damage.major (" + format_real(damage.major) + ") must be <= damage.destroyed (" +
                     format_real(damage.destroyed) + ")");
  }
  if (damage.scheme == "unosat" &&
      !(damage.possibly <= damage.moderately && damage.moderately <= damage.severely &&
        damage.severely <= damage.destroyed)) {
    fail(source, "damage levels of the unosat scheme must rise: possibly (" +
                     format_real(damage.possibly) + ") <= moderately (" +
                     format_real(damage.moderately) + ") <= severely (" +
                     format_real(damage.severely) + ") <= destroyed (" +
                     format_real(damage.destroyed) + ")");
  }
  for (const std::string& rule : config.features.kinds) {
    if (std::string problem = check_kind_rule(rule); !problem.empty()) {
      fail(source, "features.kinds: rule " + in_quotes(rule) + ": " + problem);
    }
  }
  int window = config.align.window_size;
  if (window <= 0 || (window & (window - 1)) != 0) {
    fail(source, "align.window_size = " + std::to_string(window) +
                     " must be a power of two (e.g. 128, 256, 512)");
  }
  if (config.tiling.halo >= config.tiling.tile_size) {
    fail(source, "tiling.halo (" + std::to_string(config.tiling.halo) +
                     ") must be smaller than tiling.tile_size (" +
                     std::to_string(config.tiling.tile_size) + ")");
  }
  // A tile's mask equals the whole-scene mask only if the halo covers the detector's and the
  // opening's reach.
  if (config.tiling.halo > 0 &&
      config.tiling.halo < detect_radius(config.detect) + 2 * config.threshold.open_radius) {
    fail(source,
         "tiling.halo (" + std::to_string(config.tiling.halo) +
             ") must be at least the radius of detector " + config.detect.method + " (" +
             std::to_string(detect_radius(config.detect)) + ") + 2 x threshold.open_radius (" +
             std::to_string(detect_radius(config.detect) + 2 * config.threshold.open_radius) + ")");
  }
  const DetectConfig& d = config.detect;
  if (d.method == "ensemble" && !(d.ensemble_cva + d.ensemble_log_ratio + d.ensemble_irmad +
                                      d.ensemble_ssim + d.ensemble_texture + d.ensemble_ttest >
                                  0)) {
    fail(source, "detect.method ensemble needs at least one detect.ensemble_* weight > 0");
  }
  if (!(config.radiometry.irmad_no_change_probability < 1)) {
    fail(source,
         "radiometry.irmad_no_change_probability must be < 1 (no pixel has a no-change probability "
         "above 1)");
  }
  const InputConfig& input = config.input;
  if (input.pre_bands.size() != input.post_bands.size()) {
    fail(source, "input.pre_bands has " + std::to_string(input.pre_bands.size()) +
                     " bands and input.post_bands has " + std::to_string(input.post_bands.size()) +
                     "; give both with the same length (paired in order) or neither");
  }
}

std::string strip_bom(std::string text) {
  constexpr std::string_view kBom = "\xEF\xBB\xBF";
  if (std::string_view(text).starts_with(kBom)) text.erase(0, kBom.size());
  return text;
}

std::string override_source(const std::string& item) { return "override " + in_quotes(item); }

std::string trim(std::string_view text) {
  constexpr std::string_view kSpace = " \t\r\n";
  auto first = text.find_first_not_of(kSpace);
  if (first == std::string_view::npos) return {};
  auto last = text.find_last_not_of(kSpace);
  return std::string(text.substr(first, last - first + 1));
}

}  // namespace

// -----------------------------------------------------------------------------------------------
// Public API
// -----------------------------------------------------------------------------------------------

void reject_yaml_hazards(const std::string& text, const std::string& source) {
  int depth = 0;          // [ { nesting
  char quote = 0;         // open ' or " (may span lines)
  int block_indent = -1;  // >= 0: inside a block scalar whose parent line had this indentation
  // A plain scalar left open at the end of a line continues on more-indented lines, where a
  // leading '[' or '{' is text, not a flow collection (fuzz_config: "e 'x\n {{{a\n ,b" hid a
  // stray ',' on which yaml-cpp 0.7 loops allocating).
  bool plain_open = false;
  // Its continuation lines are indented past this: the line's own indentation for "key: value"
  // or "- value"; for a bare scalar (a value on the line after its key, or the document's root)
  // its parent's, -1 at the root, so there any line continues it, also one less indented than
  // the scalar (fuzz_config: "e '0:.3\n{ #0.3\n ,2val" and "  :.3\n {{{ni\n ,2v": the '{' is
  // text and the ',' stray).
  int plain_indent = -1;
  // The last line with content: its indentation, and whether it ended with ':' or '-' (its
  // value follows on the next lines).
  int prev_indent = -1;
  bool prev_opens_value = false;
  std::size_t line_no = 0, pos = 0;
  while (pos <= text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(pos, end - pos);
    ++line_no;
    pos = end + 1;
    const std::size_t first = line.find_first_not_of(" \t\r");
    const int indent = first == std::string::npos ? -1 : static_cast<int>(first);
    if (block_indent >= 0) {
      if (indent < 0 || indent > block_indent) continue;  // block scalar content
      block_indent = -1;
    }
    const bool continuation = plain_open && !quote && depth == 0 && indent > plain_indent;
    // This line's node is a mapping value or a sequence entry (else a bare scalar).
    bool keyed = first != std::string::npos && line[first] == '-' &&
                 (first + 1 == line.size() || line[first + 1] == ' ' || line[first + 1] == '\t');
    bool token_start =
        true;  // at the start of a token (line start, after blank or a closing quote)
    char last = 0;
    bool commented = false;
    for (std::size_t i = 0; i < line.size(); ++i) {
      const char c = line[i];
      if (quote) {
        if (c == quote) {
          if (quote == '\'' && i + 1 < line.size() && line[i + 1] == '\'') {
            ++i;
            continue;
          }
          quote = 0;
          token_start = true;
        } else if (c == '\\' && quote == '"') {
          ++i;
        }
        continue;
      }
      if (c == '#' && (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t')) {
        commented = true;
        break;
      }
      // A quote that starts a continuation line of a plain scalar is text too (fuzz_config:
      // "(\n\" #\n," opened a quote there that hid the stray ',' on the next line).
      if ((c == '\'' || c == '"') && token_start && !(continuation && i == first)) {
        quote = c;
        continue;
      }
      // A '[' or '{' opens a flow collection only where a token starts (or inside one); elsewhere
      // it is plain text ("a{b"), and counting it would hide a stray ',' below (fuzz_config).
      if ((c == '[' || c == '{') && ((token_start && !(continuation && i == first)) || depth > 0)) {
        ++depth;
        token_start = true;
        continue;
      }
      if ((c == ']' || c == '}') && depth > 0) {
        --depth;
        token_start = true;
        continue;
      }
      if (c == ',' && depth == 0 && token_start) {
        throw Error(ErrorKind::usage, source + ":" + std::to_string(line_no) + ":" +
                                          std::to_string(i + 1) +
                                          ": YAML syntax error: ',' outside a flow collection");
      }
      // An explicit key ("? key"): never needed by a config or manifest, and yaml-cpp 0.7 loops
      // forever on one that follows a node with a tag or anchor ("!t x" or "&a x", then "? a").
      if (c == '?' && depth == 0 && token_start &&
          (i + 1 == line.size() || line[i + 1] == ' ' || line[i + 1] == '\t' ||
           line[i + 1] == '\r')) {
        throw Error(ErrorKind::usage,
                    source + ":" + std::to_string(line_no) + ":" + std::to_string(i + 1) +
                        ": explicit mapping keys ('? ') are not supported; write 'key: value'");
      }
      // A blank starts a token only after an indicator (": ", "- ", "? ", or a flow ',' '[' '{')
      // or at the line start; inside a plain scalar ("e '0") it does not, so a quote there is
      // plain text (fuzz_config found the divergence: a ' mid-scalar hid a stray ',' below it).
      if (c == ' ' || c == '\t') {
        token_start = token_start || last == 0 || last == ':' || last == '-' || last == '?' ||
                      (depth > 0 && (last == ',' || last == '[' || last == '{'));
        continue;
      }
      // an anchor or tag is a prefix of the token that follows it
      if ((c == '&' || c == '!') && token_start) {
        while (i + 1 < line.size() && line[i + 1] != ' ' && line[i + 1] != '\t' &&
               line[i + 1] != ',')
          ++i;
        continue;
      }
      if (c == ':' && depth == 0 &&
          (i + 1 == line.size() || line[i + 1] == ' ' || line[i + 1] == '\t' || line[i + 1] == '\r')) {
        keyed = true;
      }
      token_start = depth > 0 && (c == ',' || c == ':');
      last = c;
    }
    // A block scalar indicator (| or > with optional modifiers) ends the line: skip its content.
    const std::size_t hash = line.find(" #");
    std::string head = line.substr(0, hash == std::string::npos ? line.size() : hash);
    while (!head.empty() && (head.back() == ' ' || head.back() == '\t' || head.back() == '\r'))
      head.pop_back();
    const std::size_t bar = head.find_last_of("|>");
    if (!quote && depth == 0 && bar != std::string::npos && bar > 0 && head[bar - 1] == ' ' &&
        head.find_first_not_of("+-0123456789", bar + 1) == std::string::npos) {
      block_indent = std::max(indent, 0);
    }
    if (indent >= 0) {
      const bool open = !commented && !quote && depth == 0 && !token_start && last != ':' && last != '-';
      if (open && !continuation) {
        plain_indent =
            keyed ? indent : (prev_opens_value && prev_indent < indent ? prev_indent : -1);
      }
      plain_open = open;
      if (line[first] != '#') {
        prev_indent = indent;
        prev_opens_value = !quote && depth == 0 && (last == ':' || last == '-');
      }
    }
  }
}

JobConfig parse_config(const std::string& yaml_text, const std::string& source) {
  std::string text = strip_bom(yaml_text);
  if (text.find('\0') != std::string::npos) {
    fail(source, "contains a NUL byte; a config is YAML text");
  }
  reject_yaml_hazards(text, source);
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(text);
  } catch (const YAML::Exception& e) {
    std::string what = e.msg.empty() ? std::string(e.what()) : e.msg;
    if (e.mark.is_null()) fail(source, "YAML syntax error: " + printable(what, 200));
    fail(source + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1),
         "YAML syntax error: " + printable(what, 200));
  }
  if (documents.empty() || (documents.size() == 1 && documents.front().IsNull())) {
    throw Error(ErrorKind::usage, "config " + source + " is empty");
  }
  if (documents.size() > 1) {
    fail(source, "holds " + std::to_string(documents.size()) +
                     " YAML documents (separated by ---); a config is one document");
  }
  try {
    return parse_document(documents.front(), Origin{source});
  } catch (const YAML::Exception& e) {
    // Not expected (values are read as text), but never let a yaml-cpp exception escape.
    fail(source, "cannot read the config: " + printable(e.what(), 200));
  }
}

JobConfig load_config(const std::string& path) {
  namespace fs = std::filesystem;
  if (path.empty()) throw Error(ErrorKind::usage, "config file path is empty");
  std::error_code ec;
  fs::file_status status = fs::status(path, ec);
  if (status.type() == fs::file_type::not_found) {
    throw Error(ErrorKind::usage, "config file " + path + " does not exist");
  }
  if (status.type() == fs::file_type::directory) {
    throw Error(ErrorKind::usage, "config file " + path + " is a directory, not a file");
  }
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    throw Error(ErrorKind::usage, "cannot open config file " + path + ": " + std::strerror(errno));
  }
  // Read at most one byte past the limit, so /dev/zero or a huge file cannot exhaust memory.
  std::string text(kMaxConfigBytes + 1, '\0');
  file.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (file.bad()) {
    throw Error(ErrorKind::usage, "cannot read config file " + path + ": " + std::strerror(errno));
  }
  text.resize(static_cast<std::size_t>(file.gcount()));
  if (text.size() > kMaxConfigBytes) {
    throw Error(ErrorKind::usage, "config file " + path + " is larger than " +
                                      std::to_string(kMaxConfigBytes >> 20) +
                                      " MiB; is it the right file?");
  }
  return parse_config(text, path);
}

void apply_overrides(JobConfig& config, const std::vector<std::string>& overrides) {
  // Work on a copy: a failing override leaves the caller's config untouched.
  JobConfig updated = config;
  for (const std::string& item : overrides) {
    const std::string source = override_source(item);
    auto equals = item.find('=');
    std::string key = trim(std::string_view(item).substr(0, equals));
    if (equals == std::string::npos || key.empty()) {
      fail(source, "expected section.key=value, e.g. threshold.value=0.4");
    }
    const KeySpec* spec = find_key(key);
    if (spec == nullptr) {
      if (is_section(key)) {
        std::string example;
        for (const KeySpec& s : kKeys) {
          if (s.section() == key) {
            example = std::string(s.key);
            break;
          }
        }
        fail(source,
             in_quotes(key) + " is a section; set one of its keys, e.g. " + example + "=...");
      }
      fail(source, unknown_key_message(key));
    }
    YAML::Node node;
    try {
      reject_yaml_hazards(item.substr(equals + 1), source + ": " + std::string(spec->key));
      node = YAML::Load(item.substr(equals + 1));
    } catch (const YAML::Exception& e) {
      fail(source,
           std::string(spec->key) + ": the value is not valid YAML: " + printable(e.msg, 200));
    }
    spec->set(updated, parse_value(*spec, node, Origin{source, false}));
  }
  validate_in(updated, overrides.empty() ? "config" : "config with overrides");
  config = std::move(updated);
}

void validate(const JobConfig& config) { validate_in(config, "config"); }

int detect_radius(const DetectConfig& d) {
  if (d.method == "cva") return d.cva_radius;
  if (d.method == "log-ratio") return d.log_ratio_radius;
  if (d.method == "irmad") return 0;
  if (d.method == "ssim") return d.ssim_radius;
  if (d.method == "texture") return d.texture_radius + 1;  // + the central-difference gradient
  if (d.method == "ttest") return d.ttest_radius;
  if (d.method == "ensemble") {
    int r = 0;
    if (d.ensemble_cva > 0) r = std::max(r, d.cva_radius);
    if (d.ensemble_log_ratio > 0) r = std::max(r, d.log_ratio_radius);
    if (d.ensemble_ssim > 0) r = std::max(r, d.ssim_radius);
    if (d.ensemble_texture > 0) r = std::max(r, d.texture_radius + 1);
    if (d.ensemble_ttest > 0) r = std::max(r, d.ttest_radius);
    return r;
  }
  return 0;
}

std::string to_yaml(const JobConfig& config) {
  std::string out = "# aftermath job configuration (every key; see `aftermath describe-config`)\n";
  std::string_view section;
  for (const KeySpec& spec : kKeys) {
    std::string value = value_to_yaml(spec.get(config));
    if (spec.section().empty()) {
      out += std::string(spec.key) + ": " + value + "\n";
      continue;
    }
    if (spec.section() != section) {
      section = spec.section();
      out += std::string(section) + ":\n";
    }
    out += "  " + std::string(spec.leaf()) + ": " + value + "\n";
  }
  return out;
}

std::string describe_config() {
  static constexpr std::array<std::string_view, 7> kTypeNames{
      "integer", "number", "number or ~", "bool", "string", "list of integers", "list of strings"};
  using Row = std::array<std::string, 5>;
  std::vector<Row> rows{{"key", "type", "range / choices", "default", "meaning"}};
  const JobConfig defaults;
  for (const KeySpec& spec : kKeys) {
    std::string allowed;
    switch (spec.type) {
      case ValueType::integer:
      case ValueType::real:
      case ValueType::optional_real:
        allowed = range_text(spec.range, spec.type);
        break;
      case ValueType::boolean:
        allowed = "true | false";
        break;
      case ValueType::string:
        for (std::size_t i = 0; i < spec.choices.size(); ++i) {
          allowed += (i ? " | " : "") + std::string(spec.choices[i]);
        }
        if (allowed.empty()) allowed = "any";
        break;
      case ValueType::integer_list:
        allowed = "each " + range_text(spec.range, spec.type);
        break;
      case ValueType::string_list:
        allowed = spec.min_items > 0 ? "non-empty names" : "names";
        break;
    }
    if (!spec.rule.empty()) allowed += "; " + std::string(spec.rule);
    rows.push_back({std::string(spec.key), std::string(kTypeNames[static_cast<int>(spec.type)]),
                    allowed, value_to_yaml(spec.get(defaults)), std::string(spec.meaning)});
  }
  std::array<std::size_t, 4> widths{};
  for (const Row& row : rows) {
    for (std::size_t c = 0; c < widths.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  }
  std::string out;
  for (const Row& row : rows) {
    for (std::size_t c = 0; c < widths.size(); ++c) {
      out += row[c] + std::string(widths[c] - row[c].size() + 2, ' ');
    }
    out += row[4] + "\n";
  }
  return out;
}

}  // namespace aftermath
