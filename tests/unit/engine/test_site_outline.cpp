// site_outline (score/sites) against GDALPolygonize: the same polygons, holes and corner
// touches included, on random masks; and its rings fill back exactly the site's pixels.
#include <gdal_alg.h>
#include <gdal_priv.h>
#include <gtest/gtest.h>
#include <ogrsf_frmts.h>

#include <memory>
#include <opencv2/imgproc.hpp>

#include "aftermath/io/scene.hpp"
#include "aftermath/score/footprint_accumulator.hpp"
#include "aftermath/score/sites.hpp"
#include "aftermath/score/threshold.hpp"

using namespace aftermath;

namespace {

/// GDALPolygonize (4-connected) of the set pixels of `component`, in pixel coordinates.
std::unique_ptr<OGRGeometry> gdal_outline(const cv::Mat& component) {
  GDALDriver* mem = GetGDALDriverManager()->GetDriverByName("MEM");
  std::unique_ptr<GDALDataset> raster(
      mem->Create("", component.cols, component.rows, 1, GDT_Byte, nullptr));
  double identity[6] = {0, 1, 0, 0, 0, 1};
  raster->SetGeoTransform(identity);
  GDALRasterBand* band = raster->GetRasterBand(1);
  cv::Mat c = component.clone();
  EXPECT_EQ(band->RasterIO(GF_Write, 0, 0, c.cols, c.rows, c.data, c.cols, c.rows, GDT_Byte, 0, 0,
                           nullptr),
            CE_None);
  GDALDriver* memv = GetGDALDriverManager()->GetDriverByName("Memory");
  std::unique_ptr<GDALDataset> vec(memv->Create("", 0, 0, 0, GDT_Unknown, nullptr));
  OGRLayer* layer = vec->CreateLayer("p", nullptr, wkbPolygon, nullptr);
  OGRFieldDefn field("v", OFTInteger);
  layer->CreateField(&field);
  EXPECT_EQ(GDALPolygonize(band, band, layer, 0, nullptr, nullptr, nullptr), CE_None);
  auto multi = std::make_unique<OGRMultiPolygon>();
  layer->ResetReading();
  while (OGRFeatureUniquePtr f{layer->GetNextFeature()}) multi->addGeometry(f->GetGeometryRef());
  return multi;
}

std::unique_ptr<OGRGeometry> polygon_of(const std::vector<std::vector<cv::Point>>& rings) {
  auto poly = std::make_unique<OGRPolygon>();
  for (const auto& ring : rings) {
    OGRLinearRing r;
    for (std::size_t k = 0; k <= ring.size(); ++k)
      r.addPoint(ring[k % ring.size()].x, ring[k % ring.size()].y);
    poly->addRing(&r);
  }
  auto multi = std::make_unique<OGRMultiPolygon>();
  multi->addGeometryDirectly(poly.release());
  return multi;
}

TEST(SiteOutline, SameAsGdalPolygonizeAndFillsBackTheSitePixels) {
  init_gdal();
  for (const unsigned seed : {1u, 2u, 3u}) {
    // Blobs with holes and pixels touching at corners: thresholded smoothed noise plus salt.
    cv::Mat noise(120, 160, CV_32F);
    cv::RNG rng(seed);
    rng.fill(noise, cv::RNG::UNIFORM, 0.0, 1.0);
    cv::Mat smooth;
    cv::GaussianBlur(noise, smooth, cv::Size(0, 0), 3.0);
    cv::normalize(smooth, smooth, 0, 1, cv::NORM_MINMAX);
    cv::Mat score = 0.7 * smooth + 0.3 * noise;
    const cv::Mat valid(score.size(), CV_8U, cv::Scalar(255));
    const cv::Mat codes = encode_scores(score, valid);
    const cv::Mat mask = damage_mask_from_codes(codes, 0.55, 0);
    SiteAccumulator acc;
    acc.add(mask_runs(Window{0, 0, mask.cols, mask.rows}, mask, codes));
    const auto sites = acc.finalize(1, 0);
    ASSERT_GT(sites.size(), 10u);
    int with_holes = 0;
    for (const DamageSite& s : sites) {
      const auto rings = site_outline(s);
      ASSERT_FALSE(rings.empty());
      with_holes += rings.size() > 1;
      // The site's pixels alone, in its box, for GDAL.
      cv::Mat component = cv::Mat::zeros(mask.size(), CV_8U);
      for (const MaskRun& r : s.runs) component(cv::Rect(r.x0, r.row, r.x1 - r.x0, 1)).setTo(1);
      const auto ours = polygon_of(rings);
      const auto theirs = gdal_outline(component);
      // Topologically equal (OGRGeometry::Equals compares vertex lists) and a valid polygon.
      EXPECT_TRUE(ours->IsValid()) << ours->exportToWkt();
      const std::unique_ptr<OGRGeometry> diff(ours->SymDifference(theirs.get()));
      EXPECT_TRUE(diff && diff->IsEmpty()) << "seed " << seed << " site " << s.id << "\n"
                                           << ours->exportToWkt() << "\n"
                                           << theirs->exportToWkt();
      // Filling the rings (pixel centres, even-odd) gives back exactly the site's pixels.
      Footprint f;
      for (const auto& ring : rings) {
        std::vector<cv::Point2d> pts(ring.begin(), ring.end());
        f.rings.push_back(pts);
      }
      finalize_geometry(f);
      EXPECT_DOUBLE_EQ(f.area_px, static_cast<double>(s.pixels));
      Tile whole;
      whole.core = whole.outer = Window{0, 0, mask.cols, mask.rows};
      const auto parts =
          accumulate_tile({f}, {0}, whole, codes, valid, component);  // 1 = kMaskChanged
      EXPECT_EQ(parts[0].sums.inside, s.pixels);
      EXPECT_EQ(parts[0].sums.changed, s.pixels);  // every inside pixel is one of the site's
    }
    EXPECT_GT(with_holes, 0) << "seed " << seed;
  }
}

}  // namespace
