// Tests of the HDF5 / netCDF-4 output writer: chunk encoding, layer round trips read back with
// plain HDF5, tables, attributes, the temporary-file / commit protocol and GDAL interoperability.
#include <memory>

#include "aftermath/io/hdf5_writer.hpp"

#include <dirent.h>
#include <gtest/gtest.h>
#include <hdf5.h>
#include <hdf5_hl.h>
#include <libdeflate.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <thread>

#include <ogr_spatialref.h>

#include "aftermath/core/error.hpp"

namespace aftermath {
namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// helpers

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "aftermath-h5-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(path_)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  fs::path path_;
};

std::string utm15n_wkt() {
  OGRSpatialReference srs;
  if (srs.importFromEPSG(32615) == OGRERR_NONE) {
    char* wkt = nullptr;
    if (srs.exportToWkt(&wkt) == OGRERR_NONE && wkt != nullptr) {
      std::string s(wkt);
      CPLFree(wkt);
      return s;
    }
    CPLFree(wkt);
  }
  return R"(PROJCS["WGS 84 / UTM zone 15N",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,AUTHORITY["EPSG","7030"]],AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,AUTHORITY["EPSG","8901"]],UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]],AUTHORITY["EPSG","4326"]],PROJECTION["Transverse_Mercator"],PARAMETER["latitude_of_origin",0],PARAMETER["central_meridian",-93],PARAMETER["scale_factor",0.9996],PARAMETER["false_easting",500000],PARAMETER["false_northing",0],UNIT["metre",1,AUTHORITY["EPSG","9001"]],AXIS["Easting",EAST],AXIS["Northing",NORTH],AUTHORITY["EPSG","32615"]])";
}

Grid utm_grid(int width, int height) {
  Grid g;
  g.crs_wkt = utm15n_wkt();
  g.geotransform = {500000.0, 10.0, 0.0, 4200000.0, 0.0, -10.0};
  g.width = width;
  g.height = height;
  return g;
}

std::vector<LayerSpec> test_layers() {
  LayerSpec score;
  score.name = "change_score";
  score.type = LayerType::float32;
  score.fill_value = std::numeric_limits<double>::quiet_NaN();
  score.long_name = "change score";
  score.units = "1";
  LayerSpec cls;
  cls.name = "change_class";
  cls.type = LayerType::uint8;
  cls.fill_value = 255;
  cls.long_name = "change class";
  cls.flag_values = {0, 1, 2};
  cls.flag_meanings = "unchanged changed destroyed";
  LayerSpec unwritten;
  unwritten.name = "unwritten";
  unwritten.type = LayerType::float32;
  unwritten.fill_value = -9999;
  return {score, cls, unwritten};
}

cv::Mat make_score(int w, int h) {
  cv::Mat m(h, w, CV_32FC1);
  for (int r = 0; r < h; ++r) {
    for (int c = 0; c < w; ++c) m.at<float>(r, c) = float(r) * 1000.0f + float(c) + 0.25f;
  }
  return m;
}

cv::Mat make_class(int w, int h) {
  cv::Mat m(h, w, CV_8UC1);
  for (int r = 0; r < h; ++r) {
    for (int c = 0; c < w; ++c) m.at<std::uint8_t>(r, c) = std::uint8_t((r * 7 + c * 3) % 3);
  }
  return m;
}

/// Encodes (in two threads) and writes every tile of the given layers.
void write_tiles(Hdf5Writer& writer, const std::vector<LayerSpec>& specs,
                 const std::vector<cv::Mat>& images, int chunk, int level) {
  const TileGrid tiles(images[0].cols, images[0].rows, chunk, 8);
  std::vector<std::vector<EncodedChunk>> encoded(images.size(), std::vector<EncodedChunk>(std::size_t(tiles.count())));
  auto work = [&](int parity) {
    for (int i = parity; i < tiles.count(); i += 2) {
      const Tile t = tiles.tile(i);
      for (std::size_t l = 0; l < images.size(); ++l) {
        encoded[l][std::size_t(i)] = encode_chunk(specs[l], images[l](t.core.rect()), chunk, level);
      }
    }
  };
  std::thread a(work, 0), b(work, 1);
  a.join();
  b.join();
  for (int i = 0; i < tiles.count(); ++i) {
    for (std::size_t l = 0; l < images.size(); ++l) {
      writer.write_chunk(int(l), tiles.tile(i), encoded[l][std::size_t(i)]);
    }
  }
}

struct H5 {
  hid_t id;
  herr_t (*close)(hid_t);
  ~H5() {
    if (id >= 0) close(id);
  }
};

std::string read_string_attr(hid_t obj, const char* name) {
  if (H5Aexists(obj, name) <= 0) return "<missing>";
  H5 a{H5Aopen(obj, name, H5P_DEFAULT), H5Aclose};
  H5 t{H5Aget_type(a.id), H5Tclose};
  if (H5Tget_class(t.id) != H5T_STRING || H5Tis_variable_str(t.id) > 0) return "<not a fixed string>";
  const std::size_t n = H5Tget_size(t.id);
  std::string s(n, '\0');
  H5Aread(a.id, t.id, s.data());
  s.resize(std::strlen(s.c_str()));
  return s;
}

std::vector<double> read_double_attr(hid_t obj, const char* name) {
  H5 a{H5Aopen(obj, name, H5P_DEFAULT), H5Aclose};
  H5 sp{H5Aget_space(a.id), H5Sclose};
  const auto n = H5Sget_simple_extent_npoints(sp.id);
  std::vector<double> v(std::size_t(std::max<hssize_t>(n, 0)));
  if (!v.empty()) H5Aread(a.id, H5T_NATIVE_DOUBLE, v.data());
  return v;
}

template <typename T>
std::vector<T> read_1d(hid_t loc, const char* name, hid_t mtype) {
  H5 d{H5Dopen2(loc, name, H5P_DEFAULT), H5Dclose};
  EXPECT_GE(d.id, 0) << name;
  H5 sp{H5Dget_space(d.id), H5Sclose};
  std::vector<T> v(std::size_t(H5Sget_simple_extent_npoints(sp.id)));
  if (!v.empty()) {
    EXPECT_GE(H5Dread(d.id, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), 0);
  }
  return v;
}

std::vector<std::string> read_strings(hid_t loc, const char* name) {
  H5 d{H5Dopen2(loc, name, H5P_DEFAULT), H5Dclose};
  H5 sp{H5Dget_space(d.id), H5Sclose};
  H5 t{H5Dget_type(d.id), H5Tclose};
  EXPECT_GT(H5Tis_variable_str(t.id), 0);
  EXPECT_EQ(H5Tget_cset(t.id), H5T_CSET_UTF8);
  std::vector<char*> ptrs(std::size_t(H5Sget_simple_extent_npoints(sp.id)));
  std::vector<std::string> out;
  if (ptrs.empty()) return out;
  H5 mt{H5Tcopy(H5T_C_S1), H5Tclose};
  H5Tset_size(mt.id, H5T_VARIABLE);
  H5Tset_cset(mt.id, H5T_CSET_UTF8);
  EXPECT_GE(H5Dread(d.id, mt.id, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), 0);
  for (char* p : ptrs) out.emplace_back(p);
  H5Dvlen_reclaim(mt.id, sp.id, H5P_DEFAULT, ptrs.data());
  return out;
}

/// Reads a whole 2-D layer.
cv::Mat read_layer(hid_t file, const char* name, LayerType type) {
  H5 d{H5Dopen2(file, name, H5P_DEFAULT), H5Dclose};
  EXPECT_GE(d.id, 0) << name;
  H5 sp{H5Dget_space(d.id), H5Sclose};
  hsize_t dims[2] = {0, 0};
  EXPECT_EQ(H5Sget_simple_extent_ndims(sp.id), 2);
  H5Sget_simple_extent_dims(sp.id, dims, nullptr);
  cv::Mat m(static_cast<int>(dims[0]), static_cast<int>(dims[1]), type == LayerType::float32 ? CV_32FC1 : CV_8UC1);
  EXPECT_GE(H5Dread(d.id, type == LayerType::float32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_UCHAR, H5S_ALL,
                    H5S_ALL, H5P_DEFAULT, m.data),
            0);
  return m;
}

bool bit_equal(const cv::Mat& a, const cv::Mat& b) {
  if (a.size() != b.size() || a.type() != b.type()) return false;
  for (int r = 0; r < a.rows; ++r) {
    if (std::memcmp(a.ptr(r), b.ptr(r), a.cols * a.elemSize()) != 0) return false;
  }
  return true;
}

bool have_tool(const char* name) {
  return std::system((std::string("command -v ") + name + " >/dev/null 2>&1").c_str()) == 0;
}

/// Runs a shell command, returns (exit status, stdout+stderr).
std::pair<int, std::string> run(const std::string& cmd, const TempDir& dir) {
  const std::string out = dir.file("cmd-output.txt");
  const int rc = std::system((cmd + " >'" + out + "' 2>&1").c_str());
  std::ifstream in(out);
  std::stringstream ss;
  ss << in.rdbuf();
  fs::remove(out);
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, ss.str()};
}

// ---------------------------------------------------------------------------------------------
// encode_chunk

TEST(Hdf5EncodeChunk, Level0IsRawPaddedBytes) {
  LayerSpec spec;
  spec.type = LayerType::float32;
  spec.fill_value = -1;
  const cv::Mat core = make_score(3, 2);
  const EncodedChunk e = encode_chunk(spec, core, 4, 0);
  ASSERT_EQ(e.bytes.size(), 4u * 4u * 4u);
  std::vector<float> v(16);
  std::memcpy(v.data(), e.bytes.data(), e.bytes.size());
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 4; ++c) {
      const float want = (r < 2 && c < 3) ? core.at<float>(r, c) : -1.0f;
      EXPECT_EQ(v[std::size_t(r * 4 + c)], want) << r << "," << c;
    }
  }
}

TEST(Hdf5EncodeChunk, DeflatedIsZlibOfShuffledPaddedChunk) {
  LayerSpec spec;
  spec.type = LayerType::float32;
  spec.fill_value = 7;
  const cv::Mat core = make_score(5, 3);
  const int chunk = 8;
  const EncodedChunk e = encode_chunk(spec, core, chunk, 6);
  const std::size_t n = std::size_t(chunk * chunk), s = 4;
  std::vector<std::uint8_t> shuffled(n * s);
  libdeflate_decompressor* d = libdeflate_alloc_decompressor();
  std::size_t got = 0;
  ASSERT_EQ(libdeflate_zlib_decompress(d, e.bytes.data(), e.bytes.size(), shuffled.data(), shuffled.size(), &got),
            LIBDEFLATE_SUCCESS);
  libdeflate_free_decompressor(d);
  ASSERT_EQ(got, n * s);
  std::vector<std::uint8_t> raw(n * s);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < s; ++j) raw[i * s + j] = shuffled[j * n + i];
  }
  std::vector<float> v(n);
  std::memcpy(v.data(), raw.data(), raw.size());
  for (int r = 0; r < chunk; ++r) {
    for (int c = 0; c < chunk; ++c) {
      const float want = (r < 3 && c < 5) ? core.at<float>(r, c) : 7.0f;
      EXPECT_EQ(v[std::size_t(r * chunk + c)], want);
    }
  }
}

/// Inflates an encoded chunk that holds `nbytes` bytes (still shuffled).
std::vector<std::uint8_t> inflate_chunk(const EncodedChunk& e, std::size_t nbytes) {
  std::vector<std::uint8_t> out(nbytes);
  libdeflate_decompressor* d = libdeflate_alloc_decompressor();
  std::size_t got = 0;
  const auto rc =
      libdeflate_zlib_decompress(d, e.bytes.data(), e.bytes.size(), out.data(), nbytes, &got);
  libdeflate_free_decompressor(d);
  EXPECT_EQ(rc, LIBDEFLATE_SUCCESS);
  EXPECT_EQ(got, nbytes);
  return out;
}

/// Inflates and unshuffles an encoded float32 chunk of n elements.
std::vector<float> decode_float_chunk(const EncodedChunk& e, std::size_t n) {
  const std::vector<std::uint8_t> shuffled = inflate_chunk(e, n * 4);
  std::vector<std::uint8_t> raw(n * 4);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < 4; ++j) raw[i * 4 + j] = shuffled[j * n + i];
  }
  std::vector<float> v(n);
  std::memcpy(v.data(), raw.data(), raw.size());
  return v;
}

// Uniform chunks are encoded once per thread and reused: the reused bytes must be those a fresh
// encoding gives, and a chunk that differs in one element or in its level must not be served.
TEST(Hdf5EncodeChunk, UniformChunksReuseTheirEncodingExactly) {
  LayerSpec spec;
  spec.type = LayerType::float32;
  spec.fill_value = -1;
  const int chunk = 64;
  const std::size_t n = std::size_t(chunk) * chunk;
  const cv::Mat uniform(chunk, chunk, CV_32F, cv::Scalar(0.25f));
  EncodedChunk fresh;
  std::thread([&] { fresh = encode_chunk(spec, uniform, chunk, 4); }).join();  // an empty memo
  const EncodedChunk first = encode_chunk(spec, uniform, chunk, 4);
  const EncodedChunk again = encode_chunk(spec, uniform, chunk, 4);
  EXPECT_EQ(first.bytes, fresh.bytes);
  EXPECT_EQ(again.bytes, fresh.bytes);
  for (float v : decode_float_chunk(again, n)) ASSERT_EQ(v, 0.25f);

  cv::Mat one_off = uniform.clone();
  one_off.at<float>(chunk - 1, chunk - 1) = 0.5f;
  const std::vector<float> v = decode_float_chunk(encode_chunk(spec, one_off, chunk, 4), n);
  EXPECT_EQ(v[n - 1], 0.5f);
  EXPECT_EQ(v[0], 0.25f);

  // A partial core padded with a different fill value is not uniform.
  const std::vector<float> padded = decode_float_chunk(
      encode_chunk(spec, uniform(cv::Rect(0, 0, chunk - 1, chunk)), chunk, 4), n);
  EXPECT_EQ(padded[std::size_t(chunk - 1)], -1.0f);
  EXPECT_EQ(padded[0], 0.25f);

  // Other levels and values get their own entries.
  EncodedChunk fresh6;
  std::thread([&] { fresh6 = encode_chunk(spec, uniform, chunk, 6); }).join();
  EXPECT_EQ(encode_chunk(spec, uniform, chunk, 6).bytes, fresh6.bytes);
  const cv::Mat other(chunk, chunk, CV_32F, cv::Scalar(-1.0f));
  for (float x : decode_float_chunk(encode_chunk(spec, other, chunk, 4), n)) ASSERT_EQ(x, -1.0f);
}

// A run-length layer (the damage mask) is deflated by zlib's Z_RLE strategy: it must inflate to
// the padded chunk, give the same bytes on any thread, and keep its own uniform-chunk entries
// apart from a plain layer's. (Its size is not a property: these rectangles repeat whole rows,
// which libdeflate's matches at any distance store better; real masks do not.)
TEST(Hdf5EncodeChunk, RunLengthLayersInflateToTheChunk) {
  LayerSpec plain;
  plain.type = LayerType::uint8;
  plain.fill_value = 255;
  LayerSpec runs = plain;
  runs.run_length = true;
  const int chunk = 128;
  const std::size_t n = std::size_t(chunk) * chunk;
  cv::Mat mask(chunk, chunk - 5, CV_8U, cv::Scalar(0));  // a partial core: padded with 255
  for (int k = 0; k < 40; ++k) {
    const int x = (k * 37) % (chunk - 20), y = (k * 53) % (chunk - 12);
    mask(cv::Rect(x, y, 12 + k % 7, 6 + k % 5)).setTo(1);
  }
  const EncodedChunk rle = encode_chunk(runs, mask, chunk, 4);
  const std::vector<std::uint8_t> v = inflate_chunk(rle, n);
  for (int y = 0; y < chunk; ++y) {
    for (int x = 0; x < chunk; ++x) {
      const std::uint8_t want = x < mask.cols ? mask.at<std::uint8_t>(y, x) : 255;
      ASSERT_EQ(v[std::size_t(y) * chunk + x], want) << x << "," << y;
    }
  }
  EXPECT_EQ(inflate_chunk(encode_chunk(plain, mask, chunk, 4), n), v);
  EncodedChunk other_thread;
  std::thread([&] { other_thread = encode_chunk(runs, mask, chunk, 4); }).join();
  EXPECT_EQ(other_thread.bytes, rle.bytes);

  // Uniform chunks: each kind of layer is served its own encoding.
  const cv::Mat zeros(chunk, chunk, CV_8U, cv::Scalar(0));
  EncodedChunk fresh_runs, fresh_plain;
  std::thread([&] {
    fresh_runs = encode_chunk(runs, zeros, chunk, 4);
    fresh_plain = encode_chunk(plain, zeros, chunk, 4);
  }).join();
  EXPECT_EQ(encode_chunk(runs, zeros, chunk, 4).bytes, fresh_runs.bytes);
  EXPECT_EQ(encode_chunk(plain, zeros, chunk, 4).bytes, fresh_plain.bytes);
  EXPECT_EQ(encode_chunk(runs, zeros, chunk, 4).bytes, fresh_runs.bytes);
}

TEST(Hdf5EncodeChunk, RejectsWrongTypeAndOversizedCore) {
  LayerSpec spec;
  spec.name = "l";
  spec.type = LayerType::uint8;
  EXPECT_THROW(encode_chunk(spec, make_score(4, 4), 8, 1), Error);
  EXPECT_THROW(encode_chunk(spec, make_class(9, 4), 8, 1), Error);
  EXPECT_THROW(encode_chunk(spec, make_class(4, 4), 8, 13), Error);
  EXPECT_NO_THROW(encode_chunk(spec, make_class(8, 8), 8, 12));
}

// ---------------------------------------------------------------------------------------------
// layers

class Hdf5WriterLayers : public ::testing::TestWithParam<int> {};

TEST_P(Hdf5WriterLayers, TiledRoundTripWithPartialEdgeChunks) {
  const int level = GetParam();
  TempDir dir;
  const std::string path = dir.file("out.h5");
  const Grid grid = utm_grid(300, 200);
  const auto specs = test_layers();
  const cv::Mat score = make_score(grid.width, grid.height);
  const cv::Mat cls = make_class(grid.width, grid.height);
  {
    Hdf5Writer w(path, grid, 128, specs, level);
    write_tiles(w, specs, {score, cls}, 128, level);
    w.commit();
  }
  H5 f{H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose};
  ASSERT_GE(f.id, 0);
  EXPECT_TRUE(bit_equal(read_layer(f.id, "change_score", LayerType::float32), score));
  EXPECT_TRUE(bit_equal(read_layer(f.id, "change_class", LayerType::uint8), cls));
  // A layer never written reads as its fill value everywhere.
  const cv::Mat unwritten = read_layer(f.id, "unwritten", LayerType::float32);
  ASSERT_EQ(unwritten.size(), cv::Size(300, 200));
  EXPECT_EQ(cv::countNonZero(unwritten != -9999.0f), 0);

  // Layout: chunking, filters, fill value, attributes, dimension scales.
  H5 d{H5Dopen2(f.id, "change_score", H5P_DEFAULT), H5Dclose};
  H5 dcpl{H5Dget_create_plist(d.id), H5Pclose};
  hsize_t chunk[2] = {0, 0};
  ASSERT_EQ(H5Pget_chunk(dcpl.id, 2, chunk), 2);
  EXPECT_EQ(chunk[0], 128u);
  EXPECT_EQ(chunk[1], 128u);
  EXPECT_EQ(H5Pget_nfilters(dcpl.id), level > 0 ? 2 : 0);
  if (level > 0) {
    EXPECT_GT(H5Pget_filter_by_id2(dcpl.id, H5Z_FILTER_SHUFFLE, nullptr, nullptr, nullptr, 0, nullptr, nullptr), -1);
    EXPECT_GT(H5Pget_filter_by_id2(dcpl.id, H5Z_FILTER_DEFLATE, nullptr, nullptr, nullptr, 0, nullptr, nullptr), -1);
  }
  {
    H5 a{H5Aopen(d.id, "_FillValue", H5P_DEFAULT), H5Aclose};
    H5 t{H5Aget_type(a.id), H5Tclose};
    EXPECT_EQ(H5Tget_class(t.id), H5T_FLOAT);
    EXPECT_EQ(H5Tget_size(t.id), 4u);
    float fv = 0;
    H5Aread(a.id, H5T_NATIVE_FLOAT, &fv);
    EXPECT_TRUE(std::isnan(fv));
  }
  EXPECT_EQ(read_string_attr(d.id, "long_name"), "change score");
  EXPECT_EQ(read_string_attr(d.id, "units"), "1");
  EXPECT_EQ(read_string_attr(d.id, "grid_mapping"), "crs");
  H5 x{H5Dopen2(f.id, "x", H5P_DEFAULT), H5Dclose};
  H5 y{H5Dopen2(f.id, "y", H5P_DEFAULT), H5Dclose};
  EXPECT_GT(H5DSis_scale(x.id), 0);
  EXPECT_GT(H5DSis_attached(d.id, y.id, 0), 0);
  EXPECT_GT(H5DSis_attached(d.id, x.id, 1), 0);

  H5 c{H5Dopen2(f.id, "change_class", H5P_DEFAULT), H5Dclose};
  {
    H5 a{H5Aopen(c.id, "_FillValue", H5P_DEFAULT), H5Aclose};
    H5 t{H5Aget_type(a.id), H5Tclose};
    EXPECT_EQ(H5Tget_class(t.id), H5T_INTEGER);
    EXPECT_EQ(H5Tget_size(t.id), 1u);
    EXPECT_EQ(H5Tget_sign(t.id), H5T_SGN_NONE);
    std::uint8_t fv = 0;
    H5Aread(a.id, H5T_NATIVE_UCHAR, &fv);
    EXPECT_EQ(fv, 255);
    H5 fa{H5Aopen(c.id, "flag_values", H5P_DEFAULT), H5Aclose};
    H5 ft{H5Aget_type(fa.id), H5Tclose};
    EXPECT_EQ(H5Tget_size(ft.id), 1u);
    std::uint8_t flags[3] = {9, 9, 9};
    H5Aread(fa.id, H5T_NATIVE_UCHAR, flags);
    EXPECT_EQ(flags[0], 0);
    EXPECT_EQ(flags[1], 1);
    EXPECT_EQ(flags[2], 2);
  }
  EXPECT_EQ(read_string_attr(c.id, "flag_meanings"), "unchanged changed destroyed");
  EXPECT_EQ(read_string_attr(c.id, "grid_mapping"), "crs");

  // Coordinates: pixel centres.
  const auto xs = read_1d<double>(f.id, "x", H5T_NATIVE_DOUBLE);
  const auto ys = read_1d<double>(f.id, "y", H5T_NATIVE_DOUBLE);
  ASSERT_EQ(xs.size(), 300u);
  ASSERT_EQ(ys.size(), 200u);
  EXPECT_DOUBLE_EQ(xs[0], 500005.0);
  EXPECT_DOUBLE_EQ(xs[299], 500000.0 + 299.5 * 10);
  EXPECT_DOUBLE_EQ(ys[0], 4199995.0);
  EXPECT_DOUBLE_EQ(ys[199], 4200000.0 - 199.5 * 10);
  EXPECT_EQ(read_string_attr(x.id, "units"), "m");
  EXPECT_EQ(read_string_attr(x.id, "standard_name"), "projection_x_coordinate");
  EXPECT_EQ(read_string_attr(x.id, "axis"), "X");
  EXPECT_EQ(read_string_attr(y.id, "standard_name"), "projection_y_coordinate");
  EXPECT_EQ(read_string_attr(y.id, "axis"), "Y");

  H5 crs{H5Dopen2(f.id, "crs", H5P_DEFAULT), H5Dclose};
  ASSERT_GE(crs.id, 0);
  EXPECT_EQ(read_string_attr(crs.id, "crs_wkt"), grid.crs_wkt);
  EXPECT_EQ(read_string_attr(crs.id, "spatial_ref"), grid.crs_wkt);
  EXPECT_EQ(read_string_attr(crs.id, "GeoTransform"), "500000 10 0 4200000 0 -10");
  EXPECT_EQ(read_string_attr(crs.id, "grid_mapping_name"), "transverse_mercator");
  EXPECT_EQ(read_string_attr(f.id, "Conventions"), "CF-1.8");
}

INSTANTIATE_TEST_SUITE_P(Hdf5, Hdf5WriterLayers, ::testing::Values(0, 4));

TEST(Hdf5Writer, GridSmallerThanOneChunk) {
  for (int level : {0, 1}) {
    TempDir dir;
    const std::string path = dir.file("small.h5");
    Grid grid;  // a plain pixel grid
    grid.width = 50;
    grid.height = 40;
    const auto specs = test_layers();
    const cv::Mat score = make_score(grid.width, grid.height);
    const cv::Mat cls = make_class(grid.width, grid.height);
    {
      Hdf5Writer w(path, grid, 128, specs, level);
      write_tiles(w, specs, {score, cls}, 128, level);
      w.commit();
    }
    H5 f{H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose};
    ASSERT_GE(f.id, 0);
    EXPECT_TRUE(bit_equal(read_layer(f.id, "change_score", LayerType::float32), score));
    EXPECT_TRUE(bit_equal(read_layer(f.id, "change_class", LayerType::uint8), cls));
    EXPECT_LE(H5Lexists(f.id, "crs", H5P_DEFAULT), 0);
    H5 x{H5Dopen2(f.id, "x", H5P_DEFAULT), H5Dclose};
    EXPECT_EQ(read_string_attr(x.id, "units"), "pixel");
    H5 d{H5Dopen2(f.id, "change_score", H5P_DEFAULT), H5Dclose};
    EXPECT_EQ(H5Aexists(d.id, "grid_mapping"), 0);
    const auto xs = read_1d<double>(f.id, "x", H5T_NATIVE_DOUBLE);
    ASSERT_EQ(xs.size(), 50u);
    EXPECT_DOUBLE_EQ(xs[0], 0.5);
  }
}

TEST(Hdf5Writer, GeographicAxes) {
  OGRSpatialReference srs;
  ASSERT_EQ(srs.importFromEPSG(4326), OGRERR_NONE);
  char* wkt = nullptr;
  ASSERT_EQ(srs.exportToWkt(&wkt), OGRERR_NONE);
  Grid grid;
  grid.crs_wkt = wkt;
  CPLFree(wkt);
  grid.geotransform = {-93.5, 0.001, 0, 30.25, 0, -0.001};
  grid.width = 30;
  grid.height = 20;
  TempDir dir;
  const std::string path = dir.file("geo.h5");
  {
    Hdf5Writer w(path, grid, 16, test_layers(), 2);
    w.commit();
  }
  H5 f{H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose};
  H5 x{H5Dopen2(f.id, "x", H5P_DEFAULT), H5Dclose};
  H5 y{H5Dopen2(f.id, "y", H5P_DEFAULT), H5Dclose};
  EXPECT_EQ(read_string_attr(x.id, "units"), "degrees_east");
  EXPECT_EQ(read_string_attr(x.id, "standard_name"), "longitude");
  EXPECT_EQ(read_string_attr(y.id, "units"), "degrees_north");
  EXPECT_EQ(read_string_attr(y.id, "standard_name"), "latitude");
  H5 crs{H5Dopen2(f.id, "crs", H5P_DEFAULT), H5Dclose};
  EXPECT_EQ(read_string_attr(crs.id, "grid_mapping_name"), "latitude_longitude");
  // Nothing written: every pixel is the fill value.
  const cv::Mat c = read_layer(f.id, "change_class", LayerType::uint8);
  EXPECT_EQ(cv::countNonZero(c != 255), 0);
}

TEST(Hdf5Writer, WriteChunkValidatesTheTile) {
  TempDir dir;
  const Grid grid = utm_grid(300, 200);
  const auto specs = test_layers();
  Hdf5Writer w(dir.file("v.h5"), grid, 128, specs, 1);
  const EncodedChunk e = encode_chunk(specs[0], make_score(128, 128), 128, 1);
  Tile t;
  t.core = {64, 0, 128, 128};
  EXPECT_THROW(w.write_chunk(0, t, e), Error);
  t.core = {0, 0, 128, 128};
  EXPECT_THROW(w.write_chunk(7, t, e), Error);
  EXPECT_THROW(w.write_chunk(0, t, EncodedChunk{}), Error);
  EXPECT_NO_THROW(w.write_chunk(0, t, e));
}

TEST(Hdf5Writer, RejectsBadLayerSpecs) {
  TempDir dir;
  auto specs = test_layers();
  specs[1].name = specs[0].name;
  EXPECT_THROW(Hdf5Writer(dir.file("a.h5"), utm_grid(10, 10), 8, specs, 1), Error);
  specs = test_layers();
  specs[1].fill_value = 300;
  EXPECT_THROW(Hdf5Writer(dir.file("a.h5"), utm_grid(10, 10), 8, specs, 1), Error);
  EXPECT_TRUE(dir.entries().empty());
}

// ---------------------------------------------------------------------------------------------
// temporary file and commit

TEST(Hdf5WriterCommit, FinalFileAppearsOnlyOnCommit) {
  TempDir dir;
  const std::string path = dir.file("result.h5");
  Hdf5Writer w(path, utm_grid(20, 10), 16, test_layers(), 1);
  const std::string tmp = w.temp_path();
  EXPECT_EQ(fs::path(tmp).parent_path(), dir.path());
  EXPECT_EQ(fs::path(tmp).filename().string().rfind(".result.h5.tmp-" + std::to_string(::getpid()) + "-", 0), 0u)
      << tmp;
  EXPECT_TRUE(fs::exists(tmp));
  EXPECT_FALSE(fs::exists(path));
  EXPECT_EQ(dir.entries().size(), 1u);
  w.commit();
  EXPECT_TRUE(fs::exists(path));
  EXPECT_FALSE(fs::exists(tmp));
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"result.h5"});
  EXPECT_GT(H5Fis_hdf5(path.c_str()), 0);
  EXPECT_THROW(w.commit(), Error);
  EXPECT_THROW(w.set_attribute("/", "a", 1.0), Error);
}

TEST(Hdf5WriterCommit, DestroyWithoutCommitLeavesNothing) {
  TempDir dir;
  {
    Hdf5Writer w(dir.file("result.h5"), utm_grid(300, 200), 128, test_layers(), 4);
    write_tiles(w, test_layers(), {make_score(300, 200)}, 128, 4);
    EXPECT_EQ(dir.entries().size(), 1u);
  }
  EXPECT_TRUE(dir.entries().empty());
}

TEST(Hdf5WriterCommit, CommitReplacesExistingFile) {
  TempDir dir;
  const std::string path = dir.file("result.h5");
  { std::ofstream(path) << "old contents"; }
  Hdf5Writer w(path, utm_grid(20, 10), 16, test_layers(), 1);
  w.set_attribute("/", "run", std::string("second"));
  EXPECT_EQ(fs::file_size(path), 12u);
  w.commit();
  ASSERT_GT(H5Fis_hdf5(path.c_str()), 0);
  H5 f{H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose};
  EXPECT_EQ(read_string_attr(f.id, "run"), "second");
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"result.h5"});
}

TEST(Hdf5WriterCommit, UnwritablePlacesAreOutputErrors) {
  TempDir dir;
  const std::string missing = dir.file("no/such/dir/out.h5");
  try {
    Hdf5Writer w(missing, utm_grid(10, 10), 8, test_layers(), 1);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::output);
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
  }
  fs::create_directory(dir.path() / "adir");
  try {
    Hdf5Writer w(dir.file("adir"), utm_grid(10, 10), 8, test_layers(), 1);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::output);
    EXPECT_NE(std::string(e.what()).find("directory"), std::string::npos) << e.what();
  }
  if (::geteuid() != 0) {  // root ignores permissions
    fs::create_directory(dir.path() / "ro");
    fs::permissions(dir.path() / "ro", fs::perms::owner_read | fs::perms::owner_exec);
    EXPECT_THROW(Hdf5Writer(dir.file("ro/out.h5"), utm_grid(10, 10), 8, test_layers(), 1), Error);
    fs::permissions(dir.path() / "ro", fs::perms::owner_all);
  }
}

// ---------------------------------------------------------------------------------------------
// tables and attributes

Table sample_table(std::size_t n) {
  Table t;
  t.group = "alignment/tie_points";
  t.dimension = "point";
  Column a{"score", std::vector<double>{}, "score", "1", {}};
  Column b{"id", std::vector<std::int64_t>{}, "", "", {}};
  Column c{"class", std::vector<std::uint8_t>{}, "damage class", "", {}};
  c.attributes["flag_meanings"] = std::string("none minor destroyed");
  c.attributes["valid_max"] = std::int64_t{2};
  Column d{"uid", std::vector<std::string>{}, "building uid", "", {}};
  auto& av = std::get<std::vector<double>>(a.values);
  auto& bv = std::get<std::vector<std::int64_t>>(b.values);
  auto& cv_ = std::get<std::vector<std::uint8_t>>(c.values);
  auto& dv = std::get<std::vector<std::string>>(d.values);
  for (std::size_t i = 0; i < n; ++i) {
    av.push_back(0.5 * double(i));
    bv.push_back(std::int64_t(i) * 1000000000000LL - 7);
    cv_.push_back(std::uint8_t(i % 3));
    dv.push_back(i % 2 ? "bâtiment-" + std::to_string(i) : "");
  }
  t.columns = {a, b, c, d};
  t.attributes["method"] = std::string("ecc");
  t.attributes["rmse"] = 0.25;
  t.attributes["count"] = std::int64_t(n);
  t.attributes["affine"] = std::vector<double>{1, 0, 0, 0, 1, 0};
  return t;
}

void check_table(hid_t f, std::size_t n) {
  H5 g{H5Gopen2(f, "alignment/tie_points", H5P_DEFAULT), H5Gclose};
  ASSERT_GE(g.id, 0);
  const Table want = sample_table(n);
  EXPECT_EQ(read_1d<double>(g.id, "score", H5T_NATIVE_DOUBLE), std::get<std::vector<double>>(want.columns[0].values));
  EXPECT_EQ(read_1d<std::int64_t>(g.id, "id", H5T_NATIVE_INT64),
            std::get<std::vector<std::int64_t>>(want.columns[1].values));
  EXPECT_EQ(read_1d<std::uint8_t>(g.id, "class", H5T_NATIVE_UCHAR),
            std::get<std::vector<std::uint8_t>>(want.columns[2].values));
  EXPECT_EQ(read_strings(g.id, "uid"), std::get<std::vector<std::string>>(want.columns[3].values));
  std::vector<std::int64_t> idx(n);
  for (std::size_t i = 0; i < n; ++i) idx[i] = std::int64_t(i);
  EXPECT_EQ(read_1d<std::int64_t>(g.id, "point", H5T_NATIVE_INT64), idx);
  H5 dim{H5Dopen2(g.id, "point", H5P_DEFAULT), H5Dclose};
  EXPECT_GT(H5DSis_scale(dim.id), 0);
  for (const char* col : {"score", "id", "class", "uid"}) {
    H5 d{H5Dopen2(g.id, col, H5P_DEFAULT), H5Dclose};
    EXPECT_GT(H5DSis_attached(d.id, dim.id, 0), 0) << col;
  }
  H5 s{H5Dopen2(g.id, "score", H5P_DEFAULT), H5Dclose};
  EXPECT_EQ(read_string_attr(s.id, "units"), "1");
  EXPECT_EQ(read_string_attr(s.id, "long_name"), "score");
  H5 c{H5Dopen2(g.id, "class", H5P_DEFAULT), H5Dclose};
  EXPECT_EQ(read_string_attr(c.id, "flag_meanings"), "none minor destroyed");
  std::int64_t vmax = 0;
  {
    H5 a{H5Aopen(c.id, "valid_max", H5P_DEFAULT), H5Aclose};
    H5Aread(a.id, H5T_NATIVE_INT64, &vmax);
  }
  EXPECT_EQ(vmax, 2);
  EXPECT_EQ(read_string_attr(g.id, "method"), "ecc");
  EXPECT_EQ(read_double_attr(g.id, "rmse"), std::vector<double>{0.25});
  EXPECT_EQ(read_double_attr(g.id, "affine"), (std::vector<double>{1, 0, 0, 0, 1, 0}));
}

TEST(Hdf5WriterTable, RowsRoundTrip) {
  for (std::size_t n : {std::size_t(5), std::size_t(10000)}) {
    TempDir dir;
    const std::string path = dir.file("t.h5");
    {
      Hdf5Writer w(path, utm_grid(20, 10), 16, test_layers(), 4);
      w.write_table(sample_table(n));
      Table other;
      other.group = "footprints";
      other.dimension = "feature";
      other.columns.push_back(Column{"area", std::vector<double>{1.5, 2.5}, "area", "m2", {}});
      w.write_table(other);
      EXPECT_THROW(w.write_table(other), Error);  // columns exist already
      Table bad;
      bad.group = "bad";
      bad.columns.push_back(Column{"a", std::vector<double>{1.0}, "", "", {}});
      bad.columns.push_back(Column{"b", std::vector<double>{1.0, 2.0}, "", "", {}});
      EXPECT_THROW(w.write_table(bad), Error);
      w.commit();
    }
    H5 f{H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose};
    ASSERT_GE(f.id, 0);
    check_table(f.id, n);
    if (n > 4096) {
      H5 d{H5Dopen2(f.id, "alignment/tie_points/score", H5P_DEFAULT), H5Dclose};
      H5 dcpl{H5Dget_create_plist(d.id), H5Pclose};
      EXPECT_EQ(H5Pget_layout(dcpl.id), H5D_CHUNKED);
      EXPECT_EQ(H5Pget_nfilters(dcpl.id), 2);
    }
    H5 fp{H5Gopen2(f.id, "footprints", H5P_DEFAULT), H5Gclose};
    EXPECT_EQ(read_1d<double>(fp.id, "area", H5T_NATIVE_DOUBLE), (std::vector<double>{1.5, 2.5}));
  }
}

TEST(Hdf5WriterTable, ZeroRows) {
  TempDir dir;
  const std::string path = dir.file("t0.h5");
  {
    Hdf5Writer w(path, utm_grid(20, 10), 16, test_layers(), 4);
    w.write_table(sample_table(0));
    w.commit();
  }
  H5 f{H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose};
  ASSERT_GE(f.id, 0);
  check_table(f.id, 0);
  if (have_tool("h5dump")) {
    EXPECT_EQ(run("h5dump '" + path + "'", dir).first, 0);
  }
  if (have_tool("gdalinfo")) {
    const auto [rc, out] = run("gdalinfo '" + path + "'", dir);
    EXPECT_EQ(rc, 0) << out;
    const auto [rc2, out2] = run("gdalinfo NETCDF:\"" + path + "\":change_score", dir);
    EXPECT_EQ(rc2, 0) << out2;
  }
}

TEST(Hdf5WriterAttributes, SetOnRootGroupsAndDatasets) {
  TempDir dir;
  const std::string path = dir.file("a.h5");
  {
    Hdf5Writer w(path, utm_grid(20, 10), 16, test_layers(), 1);
    w.write_table(sample_table(3));
    w.set_attribute("/", "title", std::string("aftermath"));
    w.set_attribute("/", "threshold", 0.5);
    w.set_attribute("/", "threshold", 0.75);  // replaces
    w.set_attribute("/", "tiles", std::int64_t{6});
    w.set_attribute("/alignment", "affine", std::vector<double>{1, 2, 3});
    w.set_attribute("alignment/tie_points/score", "comment", std::string("ok"));
    w.set_attribute("/change_score", "valid_min", 0.0);
    w.set_attribute("/", "empty", std::vector<double>{});
    EXPECT_THROW(w.set_attribute("/nope", "a", 1.0), Error);
    EXPECT_THROW(w.set_attribute("/alignment/nope/deeper", "a", 1.0), Error);
    w.commit();
  }
  H5 f{H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose};
  EXPECT_EQ(read_string_attr(f.id, "title"), "aftermath");
  EXPECT_EQ(read_double_attr(f.id, "threshold"), std::vector<double>{0.75});
  {
    H5 a{H5Aopen(f.id, "tiles", H5P_DEFAULT), H5Aclose};
    H5 t{H5Aget_type(a.id), H5Tclose};
    EXPECT_EQ(H5Tget_class(t.id), H5T_INTEGER);
    EXPECT_EQ(H5Tget_size(t.id), 8u);
  }
  H5 g{H5Gopen2(f.id, "alignment", H5P_DEFAULT), H5Gclose};
  EXPECT_EQ(read_double_attr(g.id, "affine"), (std::vector<double>{1, 2, 3}));
  H5 s{H5Dopen2(f.id, "alignment/tie_points/score", H5P_DEFAULT), H5Dclose};
  EXPECT_EQ(read_string_attr(s.id, "comment"), "ok");
  H5 c{H5Dopen2(f.id, "change_score", H5P_DEFAULT), H5Dclose};
  EXPECT_EQ(read_double_attr(c.id, "valid_min"), std::vector<double>{0.0});
  EXPECT_EQ(H5Aexists(f.id, "empty"), 1);
}

// ---------------------------------------------------------------------------------------------
// interoperability with the command-line tools

TEST(Hdf5WriterGdal, GdalinfoSeesTheGeoreferencing) {
  if (!have_tool("gdalinfo") || !have_tool("h5dump")) GTEST_SKIP() << "gdalinfo/h5dump not installed";
  TempDir dir;
  const std::string path = dir.file("geo.h5");
  const Grid grid = utm_grid(300, 200);
  const auto specs = test_layers();
  {
    Hdf5Writer w(path, grid, 128, specs, 4);
    write_tiles(w, specs, {make_score(300, 200), make_class(300, 200)}, 128, 4);
    w.write_table(sample_table(4));
    w.commit();
  }
  const auto [rc, out] = run("gdalinfo NETCDF:\"" + path + "\":change_score", dir);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_TRUE(out.find("UTM zone 15N") != std::string::npos || out.find("32615") != std::string::npos) << out;
  EXPECT_NE(out.find("Size is 300, 200"), std::string::npos) << out;
  EXPECT_NE(out.find("Origin = (500000.000000000000000,4200000.000000000000000)"), std::string::npos) << out;
  EXPECT_NE(out.find("Pixel Size = (10.000000000000000,-10.000000000000000)"), std::string::npos) << out;

  const auto [rc2, out2] = run("gdalinfo -stats NETCDF:\"" + path + "\":change_class", dir);
  EXPECT_EQ(rc2, 0) << out2;
  EXPECT_NE(out2.find("NoData Value=255"), std::string::npos) << out2;
  EXPECT_NE(out2.find("Maximum=2.000"), std::string::npos) << out2;

  const auto [rc3, out3] = run("gdalinfo HDF5:\"" + path + "\"://change_score", dir);
  EXPECT_EQ(rc3, 0) << out3;
  EXPECT_NE(out3.find("Size is 300, 200"), std::string::npos) << out3;

  const auto [rc4, out4] = run("h5dump -H '" + path + "'", dir);
  EXPECT_EQ(rc4, 0) << out4;
}

TEST(Hdf5WriterGdal, GridSmallerThanOneChunkOpensInGdal) {
  if (!have_tool("gdalinfo")) GTEST_SKIP() << "gdalinfo not installed";
  TempDir dir;
  const std::string path = dir.file("small.h5");
  const Grid grid = utm_grid(50, 40);
  const auto specs = test_layers();
  {
    Hdf5Writer w(path, grid, 128, specs, 4);
    write_tiles(w, specs, {make_score(50, 40), make_class(50, 40)}, 128, 4);
    w.commit();
  }
  const auto [rc, out] = run("gdalinfo -stats NETCDF:\"" + path + "\":change_score", dir);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("Size is 50, 40"), std::string::npos) << out;
  EXPECT_NE(out.find("Origin = (500000.000000000000000,4200000.000000000000000)"), std::string::npos) << out;
  // make_score: r*1000 + c + 0.25 for r < 40, c < 50; no padding value shows up.
  EXPECT_NE(out.find("Minimum=0.250, Maximum=39049.250"), std::string::npos) << out;
}

}  // namespace
}  // namespace aftermath
