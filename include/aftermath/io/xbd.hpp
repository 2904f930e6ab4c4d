#pragma once
/// @file xbd.hpp
/// xBD pairs: PNG images without georeferencing and label JSON giving every building polygon both
/// in pixel `xy` and in `lng_lat` WKT. The pixel -> lon/lat affine is fitted (least squares) from
/// all polygon vertices, so the pair can be written as georeferenced GeoTIFFs.
#include <array>
#include <string>

namespace aftermath {

struct XbdImportResult {
  std::string pre_tif, post_tif, footprints_geojson;
  std::array<double, 6> geotransform;  ///< fitted, EPSG:4326
  double fit_rmse_px = 0;              ///< residual of the affine fit, pixels
  int buildings = 0;
};

/// Writes `<out_dir>/<stem>_pre.tif`, `<stem>_post.tif` (EPSG:4326, deflate) and
/// `<stem>_footprints.geojson` (RFC 7946, with `uid` and `subtype` from the post labels).
/// Throws Error(input) for unreadable or inconsistent inputs.
XbdImportResult xbd_import(const std::string& pre_image, const std::string& post_image,
                           const std::string& post_labels, const std::string& out_dir,
                           const std::string& stem);

}  // namespace aftermath
