#pragma once
/// @file manifest.hpp
/// Batch manifests: a YAML list of jobs (pre/post scenes, optional footprints, config file and
/// overrides, output), with paths relative to the manifest; or jobs paired from a directory of
/// scenes (`scan_directory`). Everything is validated before any job runs (docs/batch.md).
#include <cstddef>
#include <string>
#include <vector>

#include "aftermath/config/config.hpp"

namespace aftermath::batch {

/// One job as written in the manifest, paths already resolved against the manifest directory.
struct BatchJob {
  std::string name;
  int line = 0;                    ///< 1-based line of the job in the manifest; 0 = generated (scan)
  std::vector<std::string> pre;    ///< one scene today (several need detect.method ttest)
  std::vector<std::string> post;
  std::string footprints;          ///< "" = none
  std::string footprint_layer;
  std::string config_path;         ///< "" = the batch default (--config) or built-in defaults
  std::vector<std::string> overrides;  ///< "section.key=value", applied after the config file
  std::string out;
};

struct Manifest {
  std::string source;    ///< the manifest file, or "scan of DIR"
  std::string base_dir;  ///< directory relative paths were resolved against
  std::vector<BatchJob> jobs;
};

/// Parses manifest text (a UTF-8 BOM and CRLF line endings are accepted). Relative paths are
/// resolved against `base_dir`. Throws Error(usage) naming `source`, the line, the job and the
/// field: YAML syntax, unknown or duplicate keys, wrong types, missing required fields (name,
/// pre, post, out). A zero-byte or comment-only text is refused (likely truncated); `jobs: []`
/// is a valid manifest with nothing to do.
Manifest parse_manifest(const std::string& text, const std::string& base_dir, const std::string& source);
/// Reads and parses a manifest file; relative paths are relative to the file's directory.
Manifest load_manifest(const std::string& path);

/// The manifest as YAML text (absolute paths), which parse_manifest reads back to the same jobs.
std::string to_manifest_yaml(const Manifest& manifest);

/// How scanned scenes of one area are paired, oldest first.
enum class Pairing {
  previous,  ///< each scene with the one before it (d0->d1, d1->d2, ...)
  first,     ///< each scene with the oldest one (d0->d1, d0->d2, ...)
};

struct ScanOptions {
  std::string out_dir;  ///< where outputs go; "" = the scanned directory
  Pairing pairing = Pairing::previous;
};

/// Builds jobs from a directory (not recursive): rasters named `<area>_<YYYYMMDD>[_anything].<ext>`
/// (ext tif/tiff/vrt/jp2; the date may be YYYY-MM-DD) and STAC Item JSON files (area from
/// properties "aftermath:area" or "grid:code", date from properties "datetime", raster from the
/// first asset with role "data", relative href). Footprints `<area>_footprints.<geojson|gpkg|shp>`
/// or `<area>.<geojson|gpkg>` are used when present. Output `<out_dir>/<area>_<pre>_<post>.h5`.
/// Throws Error(usage) for a missing directory or two scenes of one area on one date.
Manifest scan_directory(const std::string& dir, const ScanOptions& options);

/// Settings given on the command line that apply to every job.
struct JobDefaults {
  std::string config_path;             ///< used by jobs that name no config
  std::vector<std::string> overrides;  ///< applied last (the command line wins)
};

/// A validated job: the resolved config and the single pre/post scene.
struct ResolvedJob {
  std::size_t index = 0;  ///< position in the manifest (sharding is by this index)
  BatchJob job;
  std::string pre, post;
  std::string config_path;
  JobConfig config;
};

/// Validates every job before any runs and throws one Error(usage) listing every problem, each
/// naming the job and the field: more than one scene per side, missing or directory inputs,
/// config errors, duplicate job names, two jobs writing one output, an output that is (after
/// realpath) an input of any job, an output that is a directory.
std::vector<ResolvedJob> validate_manifest(const Manifest& manifest, const JobDefaults& defaults = {});

}  // namespace aftermath::batch
