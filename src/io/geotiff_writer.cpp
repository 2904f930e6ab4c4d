#include "aftermath/io/geotiff_writer.hpp"

#include <cpl_conv.h>
#include <cpl_error.h>
#include <gdal.h>
#include <ogr_srs_api.h>

#include "aftermath/core/error.hpp"
#include "aftermath/io/scene.hpp"

namespace aftermath {

struct GeoTiffWriter::Impl {
  std::string path;
  GDALDatasetH ds = nullptr;
  GDALDataType type = GDT_Byte;
  int bands = 0;
};

namespace {
GDALDataType gdal_type(int depth) {
  switch (depth) {
    case CV_8U: return GDT_Byte;
    case CV_16U: return GDT_UInt16;
    case CV_32F: return GDT_Float32;
    default: throw Error(ErrorKind::internal, "GeoTiffWriter: unsupported depth");
  }
}
}  // namespace

GeoTiffWriter::GeoTiffWriter(const std::string& path, const Grid& grid, int bands, int cv_depth,
                             std::optional<double> nodata)
    : impl_(std::make_unique<Impl>()) {
  init_gdal();
  impl_->path = path;
  impl_->type = gdal_type(cv_depth);
  impl_->bands = bands;
  GDALDriverH drv = GDALGetDriverByName("GTiff");
  const char* opts[] = {"TILED=YES", "COMPRESS=DEFLATE", "ZLEVEL=1", "BIGTIFF=IF_SAFER",
                        "INTERLEAVE=PIXEL", nullptr};
  CPLErrorReset();
  impl_->ds = GDALCreate(drv, path.c_str(), grid.width, grid.height, bands, impl_->type,
                         const_cast<char**>(opts));
  if (!impl_->ds) throw_output(std::string("cannot create GeoTIFF: ") + CPLGetLastErrorMsg(), path);
  if (!grid.crs_wkt.empty()) {
    double gt[6];
    for (int i = 0; i < 6; ++i) gt[i] = grid.geotransform[static_cast<std::size_t>(i)];
    GDALSetGeoTransform(impl_->ds, gt);
    GDALSetProjection(impl_->ds, grid.crs_wkt.c_str());
  }
  if (nodata) {
    for (int b = 1; b <= bands; ++b) GDALSetRasterNoDataValue(GDALGetRasterBand(impl_->ds, b), *nodata);
  }
}

GeoTiffWriter::~GeoTiffWriter() {
  if (impl_ && impl_->ds) GDALClose(impl_->ds);
}

void GeoTiffWriter::write(const Window& w, const std::vector<cv::Mat>& bands) {
  if (static_cast<int>(bands.size()) != impl_->bands) throw Error(ErrorKind::internal, "GeoTiffWriter: band count");
  for (int b = 0; b < impl_->bands; ++b) {
    cv::Mat m = bands[static_cast<std::size_t>(b)].isContinuous() ? bands[static_cast<std::size_t>(b)]
                                                                  : bands[static_cast<std::size_t>(b)].clone();
    CPLErrorReset();
    if (GDALRasterIO(GDALGetRasterBand(impl_->ds, b + 1), GF_Write, w.x, w.y, w.width, w.height, m.data,
                     w.width, w.height, impl_->type, 0, 0) != CE_None) {
      throw_output(std::string("write failed: ") + CPLGetLastErrorMsg(), impl_->path);
    }
  }
}

void GeoTiffWriter::close() {
  if (!impl_->ds) return;
  CPLErrorReset();
  GDALClose(impl_->ds);
  impl_->ds = nullptr;
  if (CPLGetLastErrorType() >= CE_Failure) {
    throw_output(std::string("close failed: ") + CPLGetLastErrorMsg(), impl_->path);
  }
}

}  // namespace aftermath
