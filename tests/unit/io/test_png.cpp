// encode_png (GDAL's PNG driver) against OpenCV's decoder: the pixels and the channel order
// survive, and what PNG cannot hold is refused.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>

#include "aftermath/core/error.hpp"
#include "aftermath/io/png.hpp"
#include "temp_dir.hpp"

namespace aftermath {
namespace {

cv::Mat pattern(int type) {
  cv::Mat m(37, 53, type);
  cv::randu(m, cv::Scalar::all(0), cv::Scalar::all(256));
  return m;
}

TEST(Png, GreyBgrAndBgraRoundTripThroughOpenCvsDecoder) {
  for (const int type : {CV_8UC1, CV_8UC3, CV_8UC4}) {
    const cv::Mat img = pattern(type);
    const std::vector<std::uint8_t> bytes = encode_png(img);
    ASSERT_GT(bytes.size(), 8u);
    EXPECT_EQ(bytes[1], 'P');
    const cv::Mat back = cv::imdecode(bytes, cv::IMREAD_UNCHANGED);  // B, G, R(, A) again
    ASSERT_EQ(back.type(), type);
    EXPECT_EQ(cv::norm(back, img, cv::NORM_INF), 0.0) << "channels " << img.channels();
  }
  // A view into a larger image (not continuous) is encoded as what it shows.
  const cv::Mat big = pattern(CV_8UC3);
  const cv::Mat view = big(cv::Rect(3, 4, 20, 10));
  EXPECT_EQ(cv::norm(cv::imdecode(encode_png(view), cv::IMREAD_UNCHANGED), view, cv::NORM_INF),
            0.0);
}

TEST(Png, RefusesWhatPngCannotHoldAndNamesAnUnwritablePath) {
  EXPECT_THROW(encode_png(cv::Mat(4, 4, CV_32F, cv::Scalar(1))), Error);
  EXPECT_THROW(encode_png(cv::Mat(4, 4, CV_8UC2, cv::Scalar(1, 2))), Error);
  EXPECT_THROW(encode_png(cv::Mat()), Error);
  test::TempDir tmp("aftermath-png");
  const std::string good = (tmp.path / "q.png").string();
  write_png(good, pattern(CV_8UC3));
  EXPECT_FALSE(cv::imread(good, cv::IMREAD_UNCHANGED).empty());
  const std::string bad = (tmp.path / "no-such-dir" / "q.png").string();
  try {
    write_png(bad, pattern(CV_8UC3));
    FAIL() << "expected an output error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::output);
    EXPECT_NE(std::string(e.what()).find(bad), std::string::npos);
  }
}

}  // namespace
}  // namespace aftermath
