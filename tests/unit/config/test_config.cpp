// Unit tests of the config module: schema, YAML parsing, hostile inputs, overrides, round trip.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "aftermath/config/config.hpp"
#include "aftermath/core/error.hpp"

namespace aftermath {
namespace {

const std::string kHeader = "schema_version: 1\n";

/// The usage-error message of parse_config(text), or "" if it parsed.
std::string parse_error(const std::string& text, const std::string& source = "job.yaml") {
  try {
    parse_config(text, source);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::usage) << e.what();
    return e.message();
  }
  return {};
}

std::string override_error(const std::vector<std::string>& overrides) {
  JobConfig config;
  try {
    apply_overrides(config, overrides);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::usage) << e.what();
    return e.message();
  }
  return {};
}

std::string validate_error(const JobConfig& config) {
  try {
    validate(config);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::usage) << e.what();
    return e.message();
  }
  return {};
}

#define EXPECT_CONTAINS(haystack, needle)                                         \
  do {                                                                            \
    const std::string haystack_value = (haystack);                                \
    EXPECT_NE(haystack_value.find(needle), std::string::npos)                     \
        << "expected to find [" << (needle) << "] in [" << haystack_value << "]"; \
  } while (0)

/// A config with every key away from its default, to catch a key the table forgot.
JobConfig everything_changed() {
  JobConfig c;
  c.grid.crs = "EPSG:32637";
  c.grid.resolution = 0.3;
  c.tiling.tile_size = 1024;
  c.tiling.halo = 48;
  c.tiling.tiles_in_flight = 12;
  c.input.pre_bands = {3, 2, 1};
  c.input.post_bands = {1, 2, 3};
  c.input.pre_nodata = -9999.0;
  c.input.post_nodata = 0.1;  // not exact in binary: needs all digits to round-trip
  c.input.resampling = "cubic";
  c.input.max_pixels = 123'456'789'012;
  c.input.min_overlap_px = 100;
  c.input.allowed_drivers = {"GTiff", "MEM"};
  c.align.enabled = false;
  c.align.window_size = 128;
  c.align.max_windows = 9;
  c.align.max_shift_px = 12.5;
  c.align.min_peak = 1.0 / 3.0;
  c.align.min_valid_fraction = 0.7;
  c.detect.method = "cva";
  c.detect.cva_half_score_sigma = 2.0 / 7.0;
  c.threshold.method = "otsu";
  c.threshold.value = 0.45;
  c.threshold.open_radius = 3;
  c.damage.metric = "mean_score";
  c.damage.minor = 0.1;
  c.damage.major = 0.2;
  c.damage.destroyed = 0.9;
  c.damage.min_valid_fraction = 0.25;
  c.output.deflate_level = 9;
  return c;
}

// --- Valid files ---------------------------------------------------------------------------

TEST(ConfigParse, MinimalFileIsAllDefaults) { EXPECT_EQ(parse_config(kHeader), JobConfig{}); }

TEST(ConfigParse, ReadsNestedKeys) {
  JobConfig c = parse_config(kHeader +
                             "threshold:\n"
                             "  method: otsu\n"
                             "  value: 0.4\n"
                             "align: {enabled: false, window_size: 512}\n"
                             "input:\n"
                             "  pre_bands: [1, 2, 3]\n"
                             "  post_bands: [4, 5, 6]\n"
                             "  pre_nodata: -1.5\n"
                             "  allowed_drivers: [GTiff]\n"
                             "grid: {crs: 'EPSG:4326', resolution: 1e-4}\n");
  EXPECT_EQ(c.threshold.method, "otsu");
  EXPECT_DOUBLE_EQ(c.threshold.value, 0.4);
  EXPECT_FALSE(c.align.enabled);
  EXPECT_EQ(c.align.window_size, 512);
  EXPECT_EQ(c.input.pre_bands, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(c.input.post_bands, (std::vector<int>{4, 5, 6}));
  ASSERT_TRUE(c.input.pre_nodata.has_value());
  EXPECT_DOUBLE_EQ(*c.input.pre_nodata, -1.5);
  EXPECT_FALSE(c.input.post_nodata.has_value());
  EXPECT_EQ(c.input.allowed_drivers, (std::vector<std::string>{"GTiff"}));
  EXPECT_EQ(c.grid.crs, "EPSG:4326");
  EXPECT_DOUBLE_EQ(c.grid.resolution, 1e-4);
}

TEST(ConfigParse, AcceptsUtf8Bom) {
  JobConfig c = parse_config("\xEF\xBB\xBF" + kHeader + "threshold: {value: 0.25}\n");
  EXPECT_DOUBLE_EQ(c.threshold.value, 0.25);
}

TEST(ConfigParse, AcceptsWholeNumbersInFloatNotationForIntegers) {
  JobConfig c = parse_config(kHeader + "input: {max_pixels: 1e12}\ntiling: {tile_size: 256.0}\n");
  EXPECT_EQ(c.input.max_pixels, 1'000'000'000'000);
  EXPECT_EQ(c.tiling.tile_size, 256);
}

TEST(ConfigParse, EmptySectionKeepsDefaults) {
  EXPECT_EQ(parse_config(kHeader + "threshold:\n  # value: 0.3\n"), JobConfig{});
}

TEST(ConfigParse, NullNodataIsUnset) {
  JobConfig c = parse_config(kHeader + "input: {pre_nodata: ~, post_nodata: null}\n");
  EXPECT_FALSE(c.input.pre_nodata.has_value());
  EXPECT_FALSE(c.input.post_nodata.has_value());
}

TEST(ConfigParse, QuotedStringsAreFineForStringKeys) {
  JobConfig c = parse_config(kHeader + "input: {resampling: \"nearest\"}\n");
  EXPECT_EQ(c.input.resampling, "nearest");
}

// --- Unknown keys ---------------------------------------------------------------------------

TEST(ConfigUnknownKey, NestedKeySuggestsNearest) {
  std::string msg = parse_error(kHeader + "threshold: {valu: 0.4}\n");
  EXPECT_CONTAINS(msg, "job.yaml");
  EXPECT_CONTAINS(msg, "unknown key \"threshold.valu\" (did you mean \"threshold.value\"?)");
}

TEST(ConfigUnknownKey, TopLevelKeyIsRejected) {
  std::string msg = parse_error(kHeader + "chnage_threshold: 0.4\n");
  EXPECT_CONTAINS(msg, "job.yaml:2:1:");
  EXPECT_CONTAINS(msg, "unknown key \"chnage_threshold\"");
  EXPECT_CONTAINS(msg, "did you mean \"threshold\"?");
}

TEST(ConfigUnknownKey, MisspelledSection) {
  EXPECT_CONTAINS(parse_error(kHeader + "treshold: {value: 0.4}\n"),
                  "unknown key \"treshold\" (did you mean \"threshold\"?)");
}

TEST(ConfigUnknownKey, KeyInWrongSectionSuggestsRightOne) {
  EXPECT_CONTAINS(parse_error(kHeader + "align: {open_radius: 2}\n"),
                  "did you mean \"threshold.open_radius\"?");
  EXPECT_CONTAINS(parse_error(kHeader + "value: 0.4\n"), "did you mean \"threshold.value\"?");
}

TEST(ConfigUnknownKey, FarOffKeyListsValidKeys) {
  std::string msg = parse_error(kHeader + "threshold: {zzzzzzzzzz: 1}\n");
  EXPECT_CONTAINS(msg, "unknown key \"threshold.zzzzzzzzzz\"");
  EXPECT_CONTAINS(msg, "valid keys in threshold: method, value, open_radius");
}

TEST(ConfigUnknownKey, HugeKeyIsCutInTheMessage) {
  std::string msg = parse_error(kHeader + "threshold: {" + std::string(1000, 'k') + ": 1}\n");
  EXPECT_CONTAINS(msg, "unknown key \"threshold.kkk");
  EXPECT_LT(msg.size(), 400u);
}

TEST(ConfigUnknownKey, FlattenedKeyAtTopLevelIsExplained) {
  EXPECT_CONTAINS(parse_error(kHeader + "threshold.value: 0.4\n"), "must be nested");
}

TEST(ConfigUnknownKey, MergeKeyIsRejected) {
  EXPECT_CONTAINS(parse_error(kHeader + "base: &b {value: 0.3}\nthreshold: {<<: *b}\n"),
                  "unknown key \"base\"");
  EXPECT_CONTAINS(parse_error(kHeader + "threshold: {<<: {value: 0.3}}\n"), "merge keys");
}

// --- Ranges and types -----------------------------------------------------------------------

TEST(ConfigRange, OutOfRangeNamesKeyValueAndRange) {
  std::string msg = parse_error(kHeader + "threshold:\n  value: -0.2\n");
  EXPECT_CONTAINS(msg, "job.yaml:3:10:");
  EXPECT_CONTAINS(msg, "threshold.value = -0.2 is out of range: must be in [0, 1]");
}

TEST(ConfigRange, OpenLowerBound) {
  EXPECT_CONTAINS(parse_error(kHeader + "detect: {cva_half_score_sigma: 0}\n"),
                  "detect.cva_half_score_sigma = 0 is out of range: must be in (0, 100]");
}

TEST(ConfigRange, IntegerRanges) {
  EXPECT_CONTAINS(parse_error(kHeader + "tiling: {tile_size: 32}\n"),
                  "tiling.tile_size = 32 is out of range: must be in [64, 8192]");
  EXPECT_CONTAINS(parse_error(kHeader + "output: {deflate_level: 10}\n"),
                  "output.deflate_level = 10 is out of range: must be in [0, 9]");
  EXPECT_CONTAINS(parse_error(kHeader + "input: {max_pixels: 0}\n"), "input.max_pixels = 0");
  EXPECT_CONTAINS(parse_error(kHeader + "grid: {resolution: -1}\n"),
                  "grid.resolution = -1 is out of range: must be >= 0");
}

TEST(ConfigRange, Int32OverflowIsRejectedNotWrapped) {
  std::string msg = parse_error(kHeader + "align: {window_size: 99999999999}\n");
  EXPECT_CONTAINS(msg, "align.window_size = 99999999999 is out of range");
  // Beyond int64 too.
  EXPECT_CONTAINS(parse_error(kHeader + "align: {window_size: 99999999999999999999999999}\n"),
                  "align.window_size = 99999999999999999999999999 is out of range");
  EXPECT_CONTAINS(parse_error(kHeader + "align: {window_size: 1e30}\n"),
                  "align.window_size = 1e30 is out of range");
  // 2^32 + 256 would wrap to 256.
  EXPECT_CONTAINS(parse_error(kHeader + "align: {window_size: 4294967552}\n"),
                  "align.window_size = 4294967552 is out of range");
}

TEST(ConfigType, QuotedNumberIsRejected) {
  std::string msg = parse_error(kHeader + "threshold: {value: \"0.35\"}\n");
  EXPECT_CONTAINS(msg, "threshold.value: expected a number, got the quoted string \"0.35\"");
  EXPECT_CONTAINS(parse_error(kHeader + "threshold: {value: '0.35'}\n"), "quoted string");
  EXPECT_CONTAINS(parse_error(kHeader + "tiling: {tile_size: \"512\"}\n"),
                  "tiling.tile_size: expected an integer, got the quoted string");
  EXPECT_CONTAINS(parse_error(kHeader + "align: {enabled: \"true\"}\n"),
                  "align.enabled: expected true or false, got the quoted string");
}

TEST(ConfigType, ListWhereScalarExpected) {
  EXPECT_CONTAINS(parse_error(kHeader + "threshold: {value: [0.3]}\n"),
                  "threshold.value: expected a number, got a list");
  EXPECT_CONTAINS(parse_error(kHeader + "threshold: {method: [otsu]}\n"),
                  "threshold.method: expected a string, got a list");
  EXPECT_CONTAINS(parse_error(kHeader + "threshold: {value: {a: 1}}\n"),
                  "threshold.value: expected a number, got a mapping");
}

TEST(ConfigType, ScalarWhereListExpected) {
  EXPECT_CONTAINS(parse_error(kHeader + "input: {pre_bands: 1}\n"),
                  "input.pre_bands: expected a list");
  EXPECT_CONTAINS(parse_error(kHeader + "input: {allowed_drivers: GTiff}\n"),
                  "input.allowed_drivers: expected a list");
}

TEST(ConfigType, NonIntegerForIntegerKey) {
  EXPECT_CONTAINS(parse_error(kHeader + "tiling: {tile_size: 512.5}\n"),
                  "tiling.tile_size: expected an integer, got 512.5");
  EXPECT_CONTAINS(parse_error(kHeader + "tiling: {tile_size: 0x200}\n"),
                  "tiling.tile_size: expected an integer, got 0x200");
  EXPECT_CONTAINS(parse_error(kHeader + "input: {pre_bands: [1, 2.5], post_bands: [1, 2]}\n"),
                  "input.pre_bands[1]: expected an integer, got 2.5");
}

TEST(ConfigType, NotANumber) {
  EXPECT_CONTAINS(parse_error(kHeader + "threshold: {value: high}\n"),
                  "threshold.value: expected a number, got high");
  EXPECT_CONTAINS(parse_error(kHeader + "threshold: {value: 0.5.1}\n"), "expected a number");
  EXPECT_CONTAINS(parse_error(kHeader + "threshold: {value: 1_000}\n"), "expected a number");
  EXPECT_CONTAINS(parse_error(kHeader + "threshold: {value: }\n"),
                  "threshold.value: expected a number, got nothing (null)");
}

TEST(ConfigType, BoolAcceptsOnlyTrueFalse) {
  for (const char* word : {"yes", "no", "on", "off", "1", "0", "True", "y"}) {
    EXPECT_CONTAINS(parse_error(kHeader + "align: {enabled: " + word + "}\n"),
                    "align.enabled: expected true or false, got " + std::string(word));
  }
  EXPECT_FALSE(parse_config(kHeader + "align: {enabled: false}\n").align.enabled);
}

TEST(ConfigType, TaggedNumberIsRejected) {
  EXPECT_CONTAINS(parse_error(kHeader + "threshold: {value: !!float 0.3}\n"),
                  "threshold.value: expected a number, got a scalar tagged !!float");
}

TEST(ConfigType, NullForStringIsRejected) {
  EXPECT_CONTAINS(parse_error(kHeader + "grid: {crs: }\n"),
                  "grid.crs: expected a string, got nothing (null)");
}

TEST(ConfigType, NonFiniteNumbersAreRejected) {
  for (const char* word : {".nan", ".NaN", ".inf", "-.inf", "+.Inf", "nan", "inf"}) {
    EXPECT_CONTAINS(parse_error(kHeader + "threshold: {value: " + word + "}\n"),
                    "is not a finite number");
  }
  EXPECT_CONTAINS(parse_error(kHeader + "threshold: {value: 1e999}\n"),
                  "threshold.value: 1e999 is not a finite number");
  EXPECT_CONTAINS(parse_error(kHeader + "threshold: {value: -1e999}\n"),
                  "threshold.value: -1e999 is not a finite number");
  EXPECT_CONTAINS(parse_error(kHeader + "threshold: {value: 1e-999}\n"),
                  "threshold.value: 1e-999 is too small for a double");
  EXPECT_CONTAINS(parse_error(kHeader + "input: {pre_nodata: .nan}\n"),
                  "input.pre_nodata: .nan is not a finite number");
}

TEST(ConfigChoices, UnknownChoiceListsTheValidOnes) {
  EXPECT_CONTAINS(parse_error(kHeader + "input: {resampling: lanczos}\n"),
                  "input.resampling = \"lanczos\" is not one of: nearest, bilinear, cubic");
  EXPECT_CONTAINS(parse_error(kHeader + "threshold: {method: Otsu}\n"),
                  "threshold.method = \"Otsu\" is not one of: fixed, otsu");
  EXPECT_CONTAINS(parse_error(kHeader + "detect: {method: pca}\n"), "detect.method");
  EXPECT_CONTAINS(parse_error(kHeader + "damage: {metric: max}\n"), "damage.metric");
}

TEST(ConfigLists, BandRules) {
  EXPECT_CONTAINS(parse_error(kHeader + "input: {pre_bands: [1, 0], post_bands: [1, 2]}\n"),
                  "input.pre_bands[1] = 0 is out of range: must be in [1, 65535]");
  EXPECT_CONTAINS(parse_error(kHeader + "input: {pre_bands: [1, 2], post_bands: [1]}\n"),
                  "input.pre_bands has 2 bands and input.post_bands has 1");
  EXPECT_CONTAINS(parse_error(kHeader + "input: {pre_bands: [1, 2]}\n"),
                  "input.pre_bands has 2 bands and input.post_bands has 0");
  EXPECT_CONTAINS(parse_error(kHeader + "input: {pre_bands: [\"1\"], post_bands: [1]}\n"),
                  "input.pre_bands[0]: expected an integer, got the quoted string");
}

TEST(ConfigLists, DriversMustBeNamed) {
  EXPECT_CONTAINS(parse_error(kHeader + "input: {allowed_drivers: []}\n"),
                  "input.allowed_drivers must not be empty");
  EXPECT_CONTAINS(parse_error(kHeader + "input: {allowed_drivers: [GTiff, '']}\n"),
                  "input.allowed_drivers[1] must not be empty");
  EXPECT_CONTAINS(parse_error(kHeader + "input: {allowed_drivers: [GTiff, [COG]]}\n"),
                  "input.allowed_drivers[1]: expected a string, got a list");
}

// --- Structure --------------------------------------------------------------------------------

TEST(ConfigStructure, DuplicateKeyInOneMapping) {
  std::string msg = parse_error(kHeader + "threshold: {value: 0.3, value: 0.9}\n");
  EXPECT_CONTAINS(msg, "duplicate key \"threshold.value\"");
  EXPECT_CONTAINS(msg, "job.yaml:2:");
}

TEST(ConfigStructure, DuplicateSection) {
  EXPECT_CONTAINS(parse_error(kHeader + "threshold:\n  value: 0.3\nthreshold:\n  method: otsu\n"),
                  "job.yaml:4:1: duplicate key \"threshold\"");
  EXPECT_CONTAINS(parse_error(kHeader + kHeader), "duplicate key \"schema_version\"");
}

TEST(ConfigStructure, SectionsMustBeMappings) {
  EXPECT_CONTAINS(parse_error(kHeader + "threshold: 0.4\n"),
                  "section \"threshold\" must be a mapping of keys, got 0.4");
  EXPECT_CONTAINS(parse_error(kHeader + "align: [1, 2]\n"),
                  "section \"align\" must be a mapping of keys, got a list");
}

TEST(ConfigStructure, TopLevelMustBeAMapping) {
  EXPECT_CONTAINS(parse_error("- schema_version: 1\n"),
                  "the top level must be a mapping of sections");
  EXPECT_CONTAINS(parse_error("just some words\n"), "the top level must be a mapping");
}

TEST(ConfigStructure, NonScalarKeysAreRejected) {
  EXPECT_CONTAINS(parse_error(kHeader + "[a, b]: 1\n"), "keys must be names");
  EXPECT_CONTAINS(parse_error(kHeader + "? [a, b]\n: 1\n"), "explicit mapping keys ('? ') are not supported");
}

TEST(ConfigStructure, SyntaxErrorHasLineAndColumn) {
  // The unclosed list is noticed at the ':' of the next line (line 4, column 9).
  EXPECT_CONTAINS(parse_error(kHeader + "threshold:\n  value: [0.3\n  method: otsu\n"),
                  "job.yaml:4:9: YAML syntax error: ");
  EXPECT_CONTAINS(parse_error(kHeader + "\tthreshold: {value: 0.3}\n"),
                  "job.yaml:2:1: YAML syntax error: ");
  EXPECT_CONTAINS(parse_error(kHeader + "threshold: {value: 0.3\n"), "YAML syntax error");
}

TEST(ConfigStructure, EmptyFile) {
  EXPECT_EQ(parse_error(""), "config job.yaml is empty");
  EXPECT_EQ(parse_error("   \n\n\t\n"), "config job.yaml is empty");
  EXPECT_EQ(parse_error("# only a comment\n# and another\n"), "config job.yaml is empty");
  EXPECT_EQ(parse_error("\xEF\xBB\xBF"), "config job.yaml is empty");
}

TEST(ConfigStructure, MultipleDocumentsAreRejected) {
  EXPECT_CONTAINS(parse_error(kHeader + "---\n" + kHeader), "holds 2 YAML documents");
}

TEST(ConfigStructure, NulByteIsRejected) {
  EXPECT_CONTAINS(parse_error(kHeader + std::string(1, '\0') + "x"), "NUL byte");
}

TEST(ConfigStructure, DeepNestingDoesNotCrash) {
  std::string deep = kHeader + "threshold: {value: " + std::string(100000, '[') + "\n";
  EXPECT_CONTAINS(parse_error(deep), "job.yaml");
}

TEST(ConfigStructure, ControlCharactersInMessagesAreEscaped) {
  std::string msg = parse_error(kHeader + "threshold: {method: \"a\\nb\"}\n");
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  EXPECT_CONTAINS(msg, "\"a\\nb\"");
}

// --- schema_version ----------------------------------------------------------------------------

TEST(ConfigSchemaVersion, Missing) {
  EXPECT_EQ(parse_error("threshold: {value: 0.4}\n"),
            "job.yaml: missing schema_version (this aftermath reads schema_version: 1)");
}

TEST(ConfigSchemaVersion, MisspelledIsPointedOut) {
  EXPECT_EQ(parse_error("schema_versoin: 1\n"),
            "job.yaml: missing schema_version (this aftermath reads schema_version: 1); is "
            "\"schema_versoin\" a misspelling?");
}

TEST(ConfigSchemaVersion, OtherVersionNamesBoth) {
  std::string msg = parse_error("schema_version: 2\nnew_section: {x: 1}\n");
  EXPECT_CONTAINS(msg,
                  "schema_version 2 is not supported (this aftermath reads schema_version: 1)");
  EXPECT_CONTAINS(parse_error("schema_version: \"1\"\n"), "schema_version: expected an integer");
  EXPECT_CONTAINS(parse_error("schema_version: 1.5\n"), "schema_version: expected an integer");
}

// --- Cross-field rules ------------------------------------------------------------------------

TEST(ConfigValidate, DefaultsAreValid) { EXPECT_EQ(validate_error(JobConfig{}), ""); }

TEST(ConfigValidate, DamageLevelsAreOrdered) {
  EXPECT_CONTAINS(parse_error(kHeader + "damage: {minor: 0.5, major: 0.4}\n"),
                  "job.yaml: damage.minor (0.5) must be <= damage.major (0.4)");
  EXPECT_CONTAINS(parse_error(kHeader + "damage: {destroyed: 0.2}\n"),
                  "damage.major (0.25) must be <= damage.destroyed (0.2)");
  EXPECT_EQ(parse_error(kHeader + "damage: {minor: 0.4, major: 0.4, destroyed: 0.4}\n"), "");
}

TEST(ConfigValidate, WindowSizeIsAPowerOfTwo) {
  EXPECT_CONTAINS(parse_error(kHeader + "align: {window_size: 300}\n"),
                  "align.window_size = 300 must be a power of two");
  EXPECT_EQ(parse_error(kHeader + "align: {window_size: 2048}\n"), "");
}

TEST(ConfigValidate, HaloSmallerThanTile) {
  EXPECT_CONTAINS(parse_error(kHeader + "tiling: {tile_size: 64, halo: 64}\n"),
                  "tiling.halo (64) must be smaller than tiling.tile_size (64)");
}

TEST(ConfigValidate, CheckedConfigBuiltInCode) {
  JobConfig c;
  c.threshold.value = std::numeric_limits<double>::quiet_NaN();
  EXPECT_CONTAINS(validate_error(c), "threshold.value = .nan is not a finite number");
  c = JobConfig{};
  c.tiling.tile_size = 100000;
  EXPECT_CONTAINS(validate_error(c), "tiling.tile_size = 100000 is out of range");
  c = JobConfig{};
  c.input.resampling = "";
  EXPECT_CONTAINS(validate_error(c), "input.resampling");
  c = JobConfig{};
  c.schema_version = 7;
  EXPECT_CONTAINS(validate_error(c), "schema_version 7 is not supported");
  c = JobConfig{};
  c.input.post_nodata = std::numeric_limits<double>::infinity();
  EXPECT_CONTAINS(validate_error(c), "input.post_nodata = .inf is not a finite number");
  EXPECT_EQ(validate_error(everything_changed()), "");
}

// --- Overrides --------------------------------------------------------------------------------

TEST(ConfigOverrides, AppliesValues) {
  JobConfig c;
  apply_overrides(c, {"threshold.value=0.4", "align.enabled=false", "input.pre_bands=[1,2,3]",
                      "input.post_bands=[3, 2, 1]", "grid.crs=EPSG:32637", "input.pre_nodata=-9999",
                      "threshold.method=otsu"});
  EXPECT_DOUBLE_EQ(c.threshold.value, 0.4);
  EXPECT_FALSE(c.align.enabled);
  EXPECT_EQ(c.input.pre_bands, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(c.input.post_bands, (std::vector<int>{3, 2, 1}));
  EXPECT_EQ(c.grid.crs, "EPSG:32637");
  EXPECT_EQ(c.input.pre_nodata, -9999.0);
  EXPECT_EQ(c.threshold.method, "otsu");
  apply_overrides(c, {"input.pre_nodata=~", "grid.crs=\"\""});
  EXPECT_FALSE(c.input.pre_nodata.has_value());
  EXPECT_EQ(c.grid.crs, "");
}

TEST(ConfigOverrides, LaterOverrideWins) {
  JobConfig c;
  apply_overrides(c, {"threshold.value=0.4", "threshold.value=0.6"});
  EXPECT_DOUBLE_EQ(c.threshold.value, 0.6);
}

TEST(ConfigOverrides, Errors) {
  EXPECT_CONTAINS(override_error({"threshold.valu=0.4"}),
                  "override \"threshold.valu=0.4\": unknown key \"threshold.valu\" (did you mean "
                  "\"threshold.value\"?)");
  EXPECT_CONTAINS(override_error({"threshold.value=-0.2"}),
                  "threshold.value = -0.2 is out of range: must be in [0, 1]");
  EXPECT_CONTAINS(override_error({"threshold.value=\"0.3\""}), "quoted string");
  EXPECT_CONTAINS(override_error({"threshold.value="}), "expected a number, got nothing");
  EXPECT_CONTAINS(override_error({"align.enabled=yes"}), "expected true or false");
  EXPECT_CONTAINS(override_error({"tiling.tile_size=512.5"}), "expected an integer");
  EXPECT_CONTAINS(override_error({"align.window_size=99999999999"}), "out of range");
  EXPECT_CONTAINS(override_error({"threshold.value=.nan"}), "not a finite number");
  EXPECT_CONTAINS(override_error({"threshold.value"}), "expected section.key=value");
  EXPECT_CONTAINS(override_error({"=0.4"}), "expected section.key=value");
  EXPECT_CONTAINS(override_error({"threshold=0.4"}), "\"threshold\" is a section");
  EXPECT_CONTAINS(override_error({"input.pre_bands=[1,2"}), "not valid YAML");
  EXPECT_CONTAINS(override_error({"input.pre_bands=[1,2]"}),
                  "config with overrides: input.pre_bands has 2 bands");
  EXPECT_CONTAINS(override_error({"align.window_size=100"}), "power of two");
}

TEST(ConfigOverrides, FailureLeavesConfigUntouched) {
  JobConfig c;
  EXPECT_THROW(apply_overrides(c, {"threshold.value=0.4", "threshold.valu=0.1"}), Error);
  EXPECT_EQ(c, JobConfig{});
  EXPECT_THROW(apply_overrides(c, {"damage.minor=0.9"}), Error);  // cross-field
  EXPECT_EQ(c, JobConfig{});
}

// --- Round trip and files ---------------------------------------------------------------------

TEST(ConfigYaml, DefaultsRoundTrip) { EXPECT_EQ(parse_config(to_yaml(JobConfig{})), JobConfig{}); }

TEST(ConfigYaml, EveryKeyRoundTripsExactly) {
  JobConfig c = everything_changed();
  ASSERT_NE(c, JobConfig{});
  JobConfig back = parse_config(to_yaml(c));
  EXPECT_EQ(back, c) << to_yaml(c);
  EXPECT_EQ(back.input.post_nodata, 0.1);
  EXPECT_EQ(back.align.min_peak, 1.0 / 3.0);
}

TEST(ConfigYaml, ExtremeDoublesRoundTrip) {
  JobConfig c;
  c.input.pre_nodata = -3.4028234663852886e38;  // float lowest, a common nodata
  c.input.post_nodata = std::numeric_limits<double>::denorm_min();
  c.grid.resolution = 1e-300;
  c.threshold.value = std::nextafter(0.5, 1.0);
  EXPECT_EQ(parse_config(to_yaml(c)), c) << to_yaml(c);
}

TEST(ConfigYaml, AwkwardStringsRoundTrip) {
  JobConfig c;
  c.grid.crs = "PROJCS[\"WGS 84 / UTM zone 37N\",GEOGCS[\"WGS 84\"]]\n\ttab: # not a comment \\ é";
  c.input.allowed_drivers = {"GTiff", "a: b", "#x", "- y", "~", "true", "'q'"};
  EXPECT_EQ(parse_config(to_yaml(c)), c) << to_yaml(c);
}

TEST(ConfigYaml, WritesEveryKeyInSectionOrder) {
  std::string yaml = to_yaml(JobConfig{});
  std::vector<std::string> in_order = {"schema_version: 1",
                                       "grid:",
                                       "  crs:",
                                       "tiling:",
                                       "  tiles_in_flight: 0",
                                       "input:",
                                       "  pre_nodata: ~",
                                       "align:",
                                       "detect:",
                                       "threshold:",
                                       "damage:",
                                       "  destroyed: 0.4",
                                       "output:",
                                       "  deflate_level: 4"};
  std::size_t at = 0;
  for (const std::string& piece : in_order) {
    std::size_t found = yaml.find(piece, at);
    ASSERT_NE(found, std::string::npos) << piece << " missing or out of order in\n" << yaml;
    at = found;
  }
}

TEST(ConfigFiles, DefaultYamlIsExactlyTheDefaults) {
  EXPECT_EQ(load_config("configs/default.yaml"), JobConfig{});
}

TEST(ConfigFiles, DefaultYamlNamesEveryKey) {
  // Every key written by to_yaml also appears in default.yaml (so it documents all of them).
  std::ifstream file("configs/default.yaml");
  std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  std::istringstream yaml(to_yaml(JobConfig{}));
  std::string line;
  while (std::getline(yaml, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::string key = line.substr(0, line.find(':') + 1);
    EXPECT_NE(text.find(key), std::string::npos) << key;
  }
}

TEST(ConfigFiles, OtsuExampleParses) {
  JobConfig c = load_config("configs/otsu.yaml");
  EXPECT_EQ(c.threshold.method, "otsu");
}

class ConfigTempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("aftermath_config_test_" +
            std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
  std::filesystem::path dir_;
};

std::string load_error(const std::string& path) {
  try {
    load_config(path);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::usage);
    return e.message();
  }
  return {};
}

TEST_F(ConfigTempDir, MissingFile) {
  std::string path = (dir_ / "nope.yaml").string();
  EXPECT_EQ(load_error(path), "config file " + path + " does not exist");
  EXPECT_EQ(load_error(""), "config file path is empty");
}

TEST_F(ConfigTempDir, Directory) { EXPECT_CONTAINS(load_error(dir_.string()), "is a directory"); }

TEST_F(ConfigTempDir, EmptyFileNamesPath) {
  std::string path = write("empty.yaml", "# nothing here\n");
  EXPECT_EQ(load_error(path), "config " + path + " is empty");
}

TEST_F(ConfigTempDir, ErrorsNameThePath) {
  std::string path = write("bad.yaml", kHeader + "threshold:\n  valu: 0.4\n");
  EXPECT_CONTAINS(load_error(path), path + ":3:3: unknown key \"threshold.valu\"");
}

TEST_F(ConfigTempDir, HugeFileIsRefused) {
  std::string path = write("huge.yaml", kHeader + "# " + std::string(2 << 20, 'x') + "\n");
  EXPECT_CONTAINS(load_error(path), "is larger than 1 MiB");
}

TEST_F(ConfigTempDir, BomFileLoads) {
  std::string path = write("bom.yaml", "\xEF\xBB\xBF" + kHeader + "output: {deflate_level: 0}\n");
  EXPECT_EQ(load_config(path).output.deflate_level, 0);
}

// --- describe_config ---------------------------------------------------------------------------

TEST(ConfigDescribe, OneLinePerKeyWithTypeRangeDefaultMeaning) {
  std::string text = describe_config();
  std::istringstream lines(text);
  std::string line;
  int count = 0;
  while (std::getline(lines, line)) ++count;
  // header + every key (each key is one "  leaf: value" line of to_yaml, or schema_version)
  std::istringstream yaml(to_yaml(JobConfig{}));
  int keys = 0;
  while (std::getline(yaml, line)) keys += line.starts_with("  ") || line.starts_with("schema_version:");
  EXPECT_GE(keys, 48);
  EXPECT_EQ(count, 1 + keys);
  EXPECT_CONTAINS(text, "threshold.value");
  EXPECT_CONTAINS(text, "[0, 1]");
  EXPECT_CONTAINS(text, "nearest | bilinear | cubic");
  EXPECT_CONTAINS(text, "power of two");
  EXPECT_CONTAINS(text, "score threshold for `fixed`");
  EXPECT_CONTAINS(text, "(0, 100]");
}

}  // namespace
}  // namespace aftermath

namespace aftermath {
namespace {
/// `text` (as the config file "f.yaml") is refused with an error whose position starts with
/// `where` ("f.yaml:" for any line, "f.yaml:3:" for line 3).
void expect_refused_at(const std::string& text, const std::string& where) {
  try {
    parse_config(text, "f.yaml");
    ADD_FAILURE() << "accepted: " << text;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(where), std::string::npos) << e.what();
  }
}
}  // namespace

// Regression (fuzz_config timeout, artifact ",&\n"): yaml-cpp 0.7 loops forever on a ',' flow
// entry outside any flow collection; such text is refused before yaml-cpp sees it.
TEST(ConfigStructure, StrayFlowEntryIsRefusedNotHung) {
  for (const char* text :
       {",&\n", ",\n", "# c\n,x\n", "'x', y\n", "{a: 1}, b\n", "&x ,\n", "---\n,\n"})
    expect_refused_at(text, "f.yaml:");
  // fuzz_config, second finding: a ' inside a plain scalar is not a quote, so the ',' on the
  // next line is still a stray flow entry (yaml-cpp 0.7 hangs on it).
  expect_refused_at("e '0:z&: #:\n   , e 0z&:\n", "f.yaml:2:");
  // fuzz_config, third finding: a '{' inside a plain scalar ("..{{{") is not a flow collection,
  // so it must not hide the stray ',' on the next line either.
  expect_refused_at("e '0:z&>..{{{{~{{ni\"{ #0.3\n ,2value:  c0.9\n \"\"B0\n", "f.yaml:2:");
  EXPECT_NO_THROW(parse_config(std::string(kHeader) + "grid:\n  crs: a{b}c\n"));
  // Fifth finding (this session's CI-style fuzz run): the '{' starts the continuation line of a
  // plain scalar ("e '0:.3" then " {{{ni..."), so it is text too; the ',' below is stray.
  expect_refused_at(
      "e '0:.3\n {{{ni\"{ #0.3\n ,2value:  :0.9\n ,2value:  :0.9\n \"\"B0\3319\"B\"\".",
      "f.yaml:3:");
  // Sixth finding (a CI-style run): the same behind a '{' at column 0 that continues a bare plain
  // scalar at the document's root ("e '0:.3..." then "{ #0.3" then " ,2val.3").
  expect_refused_at(
      "e '0:.3\"n {'{i\n{ #0.3\n ,2val.3\n {{'ni\"{ #0.3\n ,2value:  \"B0\3319\"B\"\".",
      "f.yaml:3:");
  // Seventh finding (CI's fuzz run in a fresh Debian, 2026-11-29): a quote that starts the
  // continuation line of a plain scalar is text, so the ',' below it is stray.
  for (const char* text : {"(\n\" #\n,\n", "x\n ' #\n ,\n"}) expect_refused_at(text, "f.yaml:3:");
  // Eighth finding (the fuzz run of the same day): a bare scalar at the root ("  :.3" after a
  // comment) is continued by a less indented line too; its '{' is text, the ',' below stray.
  expect_refused_at("# c\n  :.3\n {{{ni\"{ #0.3\n ,2value:( :0.9\n", "f.yaml:4:");
  // A quoted value on the line after its key is still a quote.
  EXPECT_NO_THROW(parse_config(std::string(kHeader) + "grid:\n  crs:\n    \"EPSG:32615\"\n"));
  // A bare scalar's continuation at column 0 is still text ("a\nb" is the scalar "a b"), and a
  // key's value on the next line at the key's column is not a continuation.
  EXPECT_NO_THROW(parse_config(std::string(kHeader) + "grid:\n  crs:\n    EPSG:32615\n"));
  // A flow value on the line after its key still parses.
  EXPECT_NO_THROW(parse_config(std::string(kHeader) + "input:\n  allowed_drivers:\n    [GTiff, VRT]\n"));
  // Fourth finding: an explicit key after a tagged or anchored node hangs yaml-cpp 0.7
  // ("!u x" / "&a x" then "? a"); explicit keys are refused wherever they stand.
  for (const char* text :
       {"!u x\n? a\n", "&a x\n?\n", "!u# e\n? open_rBBB\n", "grid:\n  ? crs\n  : x\n"})
    expect_refused_at(text, "f.yaml:");
  EXPECT_NO_THROW(parse_config(std::string(kHeader) + "grid:\n  crs: ?x\n"));
  EXPECT_NO_THROW(parse_config(std::string(kHeader) + "grid:\n  crs: it's fine, really\n"));
  JobConfig c;
  EXPECT_THROW(apply_overrides(c, {"threshold.value=,"}), Error);
  // Commas that are valid YAML stay accepted.
  EXPECT_NO_THROW(parse_config(std::string(kHeader) + "input:\n  allowed_drivers: [GTiff, VRT]\ngrid: {crs: 'EPSG:4326'}\n"));
  EXPECT_NO_THROW(parse_config(std::string(kHeader) + "grid:\n  crs: |\n    , not a flow entry\n"));
}
}  // namespace aftermath

namespace aftermath {
namespace {
// Detector and radiometry keys (issue 4): choices, the halo each detector needs, ensemble weights.
TEST(ConfigDetect, MethodsHaloAndEnsembleRules) {
  for (const char* m : {"cva", "log-ratio", "irmad", "ssim", "texture", "ttest", "ensemble"}) {
    EXPECT_EQ(parse_config(kHeader + "detect: {method: " + m + "}\n").detect.method, m);
  }
  for (const char* m : {"none", "robust-linear", "irmad", "histogram"}) {
    EXPECT_EQ(parse_config(kHeader + "radiometry: {method: " + m + "}\n").radiometry.method, m);
  }
  EXPECT_CONTAINS(parse_error(kHeader + "radiometry: {method: pca}\n"), "radiometry.method");
  EXPECT_CONTAINS(parse_error(kHeader + "detect: {method: ssim, ssim_radius: 15}\ntiling: {halo: 16}\n"),
                  "must be at least the radius of detector ssim (15) + 2 x threshold.open_radius (17)");
  EXPECT_CONTAINS(parse_error(kHeader + "detect: {method: ensemble, ensemble_cva: 0, ensemble_irmad: 0, "
                                        "ensemble_ssim: 0}\n"),
                  "needs at least one detect.ensemble_* weight > 0");
  EXPECT_CONTAINS(parse_error(kHeader + "radiometry: {irmad_no_change_probability: 1}\n"), "must be < 1");
  DetectConfig d;
  d.method = "texture";
  d.texture_radius = 4;
  EXPECT_EQ(detect_radius(d), 5);
  d.method = "ensemble";
  d.ensemble_texture = 1;
  EXPECT_EQ(detect_radius(d), 5);
}
}  // namespace
}  // namespace aftermath
