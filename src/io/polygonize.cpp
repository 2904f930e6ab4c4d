#include "aftermath/io/polygonize.hpp"

#include <gdal_alg.h>
#include <gdal_priv.h>
#include <ogrsf_frmts.h>

#include <memory>

#include "aftermath/core/error.hpp"
#include "aftermath/io/scene.hpp"
#include "gdal_util.hpp"

namespace aftermath {

std::string outline_wkt(const cv::Mat& pixels, cv::Point origin, const Grid& grid) {
  init_gdal();
  io_detail::ErrorCapture cap;
  if (pixels.empty() || pixels.type() != CV_8U)
    throw Error(ErrorKind::internal, "outline_wkt: empty or not CV_8U", "write");
  const cv::Rect b(origin.x, origin.y, pixels.cols, pixels.rows);
  const cv::Mat binary = pixels != 0;
  GDALDriver* mem = GetGDALDriverManager()->GetDriverByName("MEM");
  if (!mem) throw Error(ErrorKind::internal, "GDAL MEM driver missing", "write");
  std::unique_ptr<GDALDataset> raster(mem->Create("", b.width, b.height, 1, GDT_Byte, nullptr));
  if (!raster)
    throw Error(ErrorKind::internal,
                io_detail::with_reason("cannot create a MEM raster", cap.message()), "write");
  // Geotransform of the site's box: polygons come out in the grid's map coordinates.
  const auto& gt = grid.geotransform;
  const cv::Point2d corner = grid.pixel_to_map(b.x, b.y);
  double box_gt[6] = {corner.x, gt[1], gt[2], corner.y, gt[4], gt[5]};
  raster->SetGeoTransform(box_gt);
  GDALRasterBand* band = raster->GetRasterBand(1);
  if (band->RasterIO(GF_Write, 0, 0, b.width, b.height,
                     const_cast<std::uint8_t*>(binary.ptr<std::uint8_t>()), b.width, b.height,
                     GDT_Byte, 0, static_cast<GSpacing>(binary.step[0]), nullptr) != CE_None) {
    throw Error(ErrorKind::internal,
                io_detail::with_reason("cannot fill a MEM raster", cap.message()), "write");
  }
  GDALDriver* memv = GetGDALDriverManager()->GetDriverByName("Memory");
  if (!memv) throw Error(ErrorKind::internal, "GDAL Memory vector driver missing", "write");
  std::unique_ptr<GDALDataset> vec(memv->Create("", 0, 0, 0, GDT_Unknown, nullptr));
  OGRLayer* layer = vec ? vec->CreateLayer("site", nullptr, wkbPolygon, nullptr) : nullptr;
  if (!layer)
    throw Error(ErrorKind::internal,
                io_detail::with_reason("cannot create a Memory layer", cap.message()), "write");
  OGRFieldDefn field("value", OFTInteger);
  layer->CreateField(&field);
  // The band is its own mask: only the set pixels become polygons.
  if (GDALPolygonize(band, band, layer, 0, nullptr, nullptr, nullptr) != CE_None) {
    throw Error(ErrorKind::internal, io_detail::with_reason("GDALPolygonize failed", cap.message()),
                "write");
  }
  OGRMultiPolygon parts;
  layer->ResetReading();
  while (OGRFeatureUniquePtr f{layer->GetNextFeature()}) {
    if (const OGRGeometry* g = f->GetGeometryRef()) {
      if (wkbFlatten(g->getGeometryType()) == wkbPolygon) parts.addGeometry(g);
    }
  }
  if (parts.IsEmpty()) throw Error(ErrorKind::internal, "GDALPolygonize gave no polygon", "write");
  const OGRGeometry* out = parts.getNumGeometries() == 1
                               ? static_cast<const OGRGeometry*>(parts.getGeometryRef(0))
                               : &parts;
  OGRErr err = OGRERR_NONE;
  std::string wkt = out->exportToWkt(OGRWktOptions(), &err);
  if (err != OGRERR_NONE)
    throw Error(ErrorKind::internal, "cannot write an outline as WKT", "write");
  return wkt;
}

}  // namespace aftermath
