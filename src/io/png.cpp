// PNG through GDAL: the image goes into a MEM dataset (bands in R, G, B, A order), the PNG
// driver copies it into a /vsimem/ file, whose bytes are taken.
#include "aftermath/io/png.hpp"

#include <cpl_vsi.h>
#include <gdal.h>

#include <atomic>
#include <fstream>
#include <memory>

#include "aftermath/core/error.hpp"
#include "aftermath/io/scene.hpp"
#include "gdal_util.hpp"

namespace aftermath {

std::vector<std::uint8_t> encode_png(const cv::Mat& image) {
  init_gdal();
  const int channels = image.channels();
  if (image.depth() != CV_8U || (channels != 1 && channels != 3 && channels != 4) ||
      image.empty()) {
    throw Error(ErrorKind::internal, "encode_png: not an 8-bit image of 1, 3 or 4 channels");
  }
  io_detail::ErrorCapture cap;
  GDALDriverH mem_driver = GDALGetDriverByName("MEM");
  GDALDriverH png_driver = GDALGetDriverByName("PNG");
  if (mem_driver == nullptr || png_driver == nullptr) {
    throw Error(ErrorKind::internal, "encode_png: GDAL has no MEM or PNG driver");
  }
  const auto close = [](GDALDatasetH h) {
    if (h != nullptr) GDALClose(h);
  };
  std::unique_ptr<void, decltype(close)> mem(
      GDALCreate(mem_driver, "", image.cols, image.rows, channels, GDT_Byte, nullptr), close);
  if (!mem)
    throw Error(ErrorKind::internal,
                "encode_png: cannot create a MEM dataset (" + cap.message() + ")");
  // OpenCV keeps colour as B, G, R(, A); PNG bands are R, G, B(, A).
  static constexpr int kOrder[4][4] = {{0}, {}, {2, 1, 0}, {2, 1, 0, 3}};
  for (int b = 0; b < channels; ++b) {
    const int c = kOrder[channels - 1][b];
    GDALRasterBandH band = GDALGetRasterBand(mem.get(), b + 1);
    if (GDALRasterIO(band, GF_Write, 0, 0, image.cols, image.rows,
                     const_cast<std::uint8_t*>(image.ptr<std::uint8_t>(0)) + c, image.cols,
                     image.rows, GDT_Byte, channels, static_cast<int>(image.step[0])) != CE_None) {
      throw Error(ErrorKind::internal,
                  "encode_png: cannot fill the MEM dataset (" + cap.message() + ")");
    }
    if (channels == 4 && b == 3) GDALSetRasterColorInterpretation(band, GCI_AlphaBand);
  }
  static std::atomic<std::uint64_t> serial{0};
  const std::string name = "/vsimem/aftermath-png-" + std::to_string(serial.fetch_add(1)) + ".png";
  GDALDatasetH png =
      GDALCreateCopy(png_driver, name.c_str(), mem.get(), FALSE, nullptr, nullptr, nullptr);
  if (png != nullptr) GDALClose(png);  // flushes; a failure is in `cap`
  const bool written = png != nullptr && !cap.failed();
  std::vector<std::uint8_t> bytes;
  vsi_l_offset length = 0;
  GByte* data = written ? VSIGetMemFileBuffer(name.c_str(), &length, FALSE) : nullptr;
  if (data != nullptr) bytes.assign(data, data + length);
  VSIUnlink(name.c_str());
  VSIUnlink((name + ".aux.xml").c_str());
  if (bytes.empty())
    throw Error(ErrorKind::internal,
                "encode_png: GDAL's PNG driver failed (" + cap.message() + ")");
  return bytes;
}

void write_png(const std::string& path, const cv::Mat& image) {
  const std::vector<std::uint8_t> bytes = encode_png(image);
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  f.close();
  if (!f) throw Error(ErrorKind::output, path + ": cannot write the PNG");
}

}  // namespace aftermath
