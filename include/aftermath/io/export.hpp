#pragma once
/// @file export.hpp
/// Exports an aftermath output (the HDF5 file) to formats mapping tools open as they are:
/// a Cloud-Optimized GeoTIFF per layer, a GeoPackage of the footprints styled for QGIS, GeoJSON
/// (RFC 7946, EPSG:4326) of the same features, and a STAC Item describing it all.
/// See docs/exports.md.
#include <cstdint>
#include <string>
#include <vector>

namespace aftermath {

struct ExportOptions {
  /// Acquisition times of the pre and post scenes (RFC 3339, e.g. "2011-05-22T17:00:00Z"). Empty:
  /// read from the inputs named in the HDF5 file (GDAL IMAGERY/ACQUISITIONDATETIME) when they
  /// still exist and carry it; else unknown. Both known: the STAC Item has datetime null with
  /// start_datetime = pre and end_datetime = post; otherwise datetime = the run's `created`.
  std::string pre_datetime;
  std::string post_datetime;
};

struct ExportResult {
  std::string dir;                ///< the output directory
  std::vector<std::string> cogs;  ///< one COG per 2-D layer, "<stem>_<layer>.tif"
  std::string geopackage;         ///< "<stem>.gpkg" (layers `footprints`, `damage_sites`, `layer_styles`)
  std::string geojson;            ///< "<stem>.geojson"; "" for a plain pixel grid (no CRS)
  std::string stac_item;          ///< "<stem>.stac.json"
  std::int64_t features = 0;      ///< features written to the GeoPackage
  std::int64_t sites = 0;         ///< damage sites written to its `damage_sites` layer
  bool georeferenced = false;     ///< false: a plain pixel grid (no CRS in the COGs, no GeoJSON)
  std::vector<std::string> warnings;  ///< what was left out, and why
};

/// Reads `h5_path` (an aftermath output, via Hdf5Reader) and writes the exports into `out_dir`
/// (created if missing), file names from the HDF5 file's stem. Each file is written under a
/// temporary name and renamed when complete; existing files of the same names are replaced.
/// COG pixel values are identical to the HDF5 layers (lossless DEFLATE; nodata = _FillValue).
/// Throws Error(input) for an unreadable or foreign HDF5 file, Error(output) when a file cannot
/// be written, Error(usage) for a malformed ExportOptions datetime.
ExportResult export_outputs(const std::string& h5_path, const std::string& out_dir,
                            const ExportOptions& options = {});

}  // namespace aftermath
