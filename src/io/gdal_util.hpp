#pragma once
/// @file gdal_util.hpp
/// Private helpers of the io module: RAII for GDAL/OGR handles and per-call capture of GDAL
/// errors. GDAL's error state is thread-local, and so is the handler stack this uses, so an
/// ErrorCapture sees only the errors raised by GDAL calls made on its own thread.
#include <memory>
#include <string>

#include <cpl_error.h>
#include <gdal.h>
#include <ogr_spatialref.h>

#include "aftermath/core/error.hpp"

namespace aftermath::io_detail {

/// Closes a GDAL dataset handle.
struct DatasetCloser {
  void operator()(void* ds) const noexcept {
    if (ds) GDALClose(static_cast<GDALDatasetH>(ds));
  }
};
using DatasetPtr = std::unique_ptr<void, DatasetCloser>;
inline GDALDatasetH get(const DatasetPtr& p) { return static_cast<GDALDatasetH>(p.get()); }

struct TransformDeleter {
  void operator()(OGRCoordinateTransformation* ct) const noexcept {
    if (ct) OGRCoordinateTransformation::DestroyCT(ct);
  }
};
using TransformPtr = std::unique_ptr<OGRCoordinateTransformation, TransformDeleter>;

/// Records the GDAL errors raised on this thread while it is alive (pushed handler; nothing is
/// printed). The first CE_Failure/CE_Fatal message is kept, as it names the cause; later ones are
/// usually consequences.
class ErrorCapture {
 public:
  ErrorCapture();
  ~ErrorCapture();
  ErrorCapture(const ErrorCapture&) = delete;
  ErrorCapture& operator=(const ErrorCapture&) = delete;

  bool failed() const { return failed_; }
  /// The first failure message, or the last warning if there was no failure, or "".
  std::string message() const;
  /// Throws Error(kind, what + " (" + message + ")") if a failure was captured.
  void check(ErrorKind kind, const std::string& what) const;
  /// Forgets everything captured so far.
  void reset();

 private:
  static void CPL_STDCALL handler(CPLErr type, CPLErrorNum num, const char* msg);
  bool failed_ = false;
  std::string failure_, warning_;
};

/// "what (reason)" or "what" when reason is empty.
std::string with_reason(const std::string& what, const std::string& reason);

/// An OGRSpatialReference from WKT (or any user input), traditional GIS axis order
/// (x = longitude/easting). Returns nullptr if it cannot be parsed.
std::unique_ptr<OGRSpatialReference> srs_from(const std::string& wkt_or_user_input);

/// WKT2_2018 of an SRS.
std::string srs_to_wkt2(const OGRSpatialReference& srs);

}  // namespace aftermath::io_detail
