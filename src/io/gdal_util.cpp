#include "gdal_util.hpp"

#include <cpl_conv.h>

namespace aftermath::io_detail {

ErrorCapture::ErrorCapture() {
  CPLErrorReset();
  CPLPushErrorHandlerEx(&ErrorCapture::handler, this);
}

ErrorCapture::~ErrorCapture() { CPLPopErrorHandler(); }

void CPL_STDCALL ErrorCapture::handler(CPLErr type, CPLErrorNum, const char* msg) {
  auto* self = static_cast<ErrorCapture*>(CPLGetErrorHandlerUserData());
  if (!self) return;
  const std::string text = msg ? msg : "";
  if (type == CE_Failure || type == CE_Fatal) {
    if (!self->failed_) self->failure_ = text.empty() ? "unspecified GDAL error" : text;
    self->failed_ = true;
  } else if (type == CE_Warning) {
    self->warning_ = text;
  }
}

std::string ErrorCapture::message() const { return failed_ ? failure_ : warning_; }

void ErrorCapture::check(ErrorKind kind, const std::string& what) const {
  if (failed_) throw Error(kind, with_reason(what, failure_));
}

void ErrorCapture::reset() {
  failed_ = false;
  failure_.clear();
  warning_.clear();
  CPLErrorReset();
}

std::string with_reason(const std::string& what, const std::string& reason) {
  return reason.empty() ? what : what + " (" + reason + ")";
}

std::unique_ptr<OGRSpatialReference> srs_from(const std::string& text) {
  if (text.empty()) return nullptr;
  auto srs = std::make_unique<OGRSpatialReference>();
  const char* const opts[] = {"ALLOW_NETWORK_ACCESS=NO", "ALLOW_FILE_ACCESS=NO", nullptr};
  ErrorCapture cap;
  if (srs->SetFromUserInput(text.c_str(), opts) != OGRERR_NONE) return nullptr;
  srs->SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  return srs;
}

std::string srs_to_wkt2(const OGRSpatialReference& srs) {
  char* wkt = nullptr;
  const char* const opts[] = {"FORMAT=WKT2_2018", nullptr};
  ErrorCapture cap;
  std::string out;
  if (srs.exportToWkt(&wkt, opts) == OGRERR_NONE && wkt) out = wkt;
  CPLFree(wkt);
  return out;
}

}  // namespace aftermath::io_detail
