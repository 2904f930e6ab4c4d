// The hostile-input catalogue (docs/hostile.md), one test per row. Every test builds its inputs
// itself (GDAL/OGR/HDF5 from C++) in a temporary directory, runs the `aftermath` binary and
// checks what the row asks: exit code, one error line naming the file and the problem, and no
// output or temporary file left; or, for `ok` rows, the B00 result (b2 and b5 damaged).
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <random>
#include <regex>

#include <gtest/gtest.h>
#include <hdf5.h>
#include <opencv2/imgproc.hpp>

#include "aftermath/io/hdf5_reader.hpp"
#include "hostile_util.hpp"

using namespace hostile;

namespace {

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }
bool matches(const std::string& text, const std::string& pattern) {
  return std::regex_search(text, std::regex(pattern, std::regex::icase));
}
int count_lines_starting(const std::string& text, const std::string& prefix) {
  int n = 0;
  std::istringstream s(text);
  for (std::string line; std::getline(s, line);) n += line.rfind(prefix, 0) == 0;
  return n;
}
const std::set<std::string> kB00{"b2", "b5"};

bool can_drop_privileges() {
  if (::geteuid() != 0) return false;  // not root: permission tests run as this user
  return std::system("setpriv --reuid=65534 --regid=65534 --clear-groups true >/dev/null 2>&1") == 0;
}

class Hostile : public ::testing::Test {
 protected:
  fs::path dir, in, out;

  void SetUp() override {
    char tmpl[] = "/tmp/aftermath-hostile.XXXXXX";
    dir = ::mkdtemp(tmpl);
    in = dir / "in";
    out = dir / "out";
    fs::create_directories(in);
    fs::create_directories(out);
  }
  void TearDown() override {
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
         it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (!it->is_symlink()) fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
    }
    fs::permissions(dir, fs::perms::owner_all, fs::perm_options::add, ec);
    if (!::testing::Test::HasFailure()) fs::remove_all(dir, ec);
    else std::cerr << "kept " << dir << " for inspection\n";
  }

  fs::path pre() {
    const auto p = in / "pre.tif";
    if (!fs::exists(p)) write_pre(p);
    return p;
  }
  fs::path post() {
    const auto p = in / "post.tif";
    if (!fs::exists(p)) write_post(p);
    return p;
  }
  fs::path fp() {
    const auto p = in / "footprints.geojson";
    if (!fs::exists(p)) write_text(p, baseline_geojson());
    return p;
  }
  fs::path o() const { return out / "o.h5"; }

  Result aftermath(const std::vector<std::string>& args, const std::vector<std::string>& prefix = {}) {
    return run(args, dir / "log", prefix);
  }
  /// `aftermath --log-level warn run --pre P --post Q [--footprints F] --out out/o.h5 extra...`
  Result run_pair(const fs::path& p, const fs::path& q, const fs::path& f,
                  const std::vector<std::string>& extra = {}, const fs::path& output = {}) {
    std::vector<std::string> a{"--log-level", "warn", "run", "--threads", "2", "--pre", p.string(), "--post", q.string(),
                               "--out", (output.empty() ? o() : output).string()};
    if (!f.empty()) {
      a.push_back("--footprints");
      a.push_back(f.string());
    }
    a.insert(a.end(), extra.begin(), extra.end());
    return aftermath(a);
  }

  /// A `fail` row: exit code, exactly one error line that names `file` and matches `problem`,
  /// nothing left in `outdir` (no output, no temporary file).
  void expect_fail(const Result& r, int code, const std::string& file, const std::string& problem,
                   const fs::path& outdir = {}) {
    EXPECT_EQ(r.code, code) << r.err;
    if (!file.empty()) {
      EXPECT_TRUE(contains(r.err, file)) << "message does not name " << file << ": " << r.err;
    }
    EXPECT_TRUE(matches(r.err, problem)) << "message does not match '" << problem << "': " << r.err;
    EXPECT_EQ(count_lines_starting(r.err, "error"), 1) << r.err;
    EXPECT_TRUE(entries(outdir.empty() ? out : outdir).empty())
        << "left behind: " << ::testing::PrintToString(entries(outdir.empty() ? out : outdir));
  }
  /// An `ok` row: exit 0, the output and nothing else in out/.
  void expect_ok(const Result& r, const fs::path& output = {}) {
    const fs::path h5 = output.empty() ? o() : output;
    ASSERT_EQ(r.code, 0) << r.err;
    ASSERT_TRUE(fs::exists(h5));
    for (const auto& e : entries(h5.parent_path())) EXPECT_FALSE(contains(e, ".tmp")) << "temporary file left: " << e;
  }
  void expect_b00(const Result& r, const fs::path& output = {}) {
    expect_ok(r, output);
    if (::testing::Test::HasFatalFailure()) return;
    EXPECT_EQ(damaged(output.empty() ? o() : output), kB00) << r.out << r.err;
  }
  void expect_warning(const Result& r, const std::string& pattern) {
    bool found = false;
    std::istringstream s(r.err);
    for (std::string line; std::getline(s, line);) found = found || (line.rfind("warning", 0) == 0 && matches(line, pattern));
    EXPECT_TRUE(found) << "no warning matching '" << pattern << "' in: " << r.err;
  }
};

// ------------------------------------------------------------------------------------------------
// B00
// ------------------------------------------------------------------------------------------------

TEST_F(Hostile, B00_BaselineFlagsExactlyB2AndB5AndIsRepeatable) {
  const auto r = run_pair(pre(), post(), fp());
  expect_b00(r);
  const auto f = read_features(o());
  EXPECT_EQ(f.size(), 6u);
  for (const auto& [id, x] : f) EXPECT_EQ(x.status, "scored") << id;
  const auto second = out / "again.h5";
  expect_b00(run_pair(pre(), post(), fp(), {}, second), second);
  aftermath::Hdf5Reader a(o().string()), b(second.string());
  for (const char* layer : {"change_score", "damage_mask"}) {
    const cv::Mat la = a.layer(layer), lb = b.layer(layer);
    EXPECT_EQ(cv::norm(la, lb, cv::NORM_INF), 0.0) << layer;
  }
  EXPECT_EQ(a.column_uint8("footprints/damage_class"), b.column_uint8("footprints/damage_class"));
}

TEST_F(Hostile, B00_GeoPackageInUtm) {
  write_gpkg(in / "fp.gpkg", kUtm, {"buildings"});
  expect_b00(run_pair(pre(), post(), in / "fp.gpkg"));
}

// ------------------------------------------------------------------------------------------------
// R: rasters
// ------------------------------------------------------------------------------------------------

namespace {
void truncate_to(const fs::path& p, std::uintmax_t size) { fs::resize_file(p, size); }
void overwrite(const fs::path& p, std::uintmax_t offset, const std::string& bytes) {
  std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}
std::string random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng() & 0xFF);
  return s;
}
/// A header-only little-endian TIFF (no pixel data) declaring `w` x `h` 8-bit pixels.
std::string header_only_tiff(std::uint32_t w, std::uint32_t h) {
  std::string s = std::string("II*\0", 4);
  auto u16 = [&](std::uint16_t v) { s.push_back(char(v & 0xFF)); s.push_back(char(v >> 8)); };
  auto u32 = [&](std::uint32_t v) { for (int i = 0; i < 4; ++i) s.push_back(char((v >> (8 * i)) & 0xFF)); };
  u32(8);
  const std::vector<std::array<std::uint32_t, 3>> tags{  // tag, type (3 short, 4 long), value
      {256, 4, w}, {257, 4, h}, {258, 3, 8}, {259, 3, 1}, {262, 3, 1}, {273, 4, 200},
      {277, 3, 1}, {279, 4, 1}};  // no RowsPerStrip: one strip
  u16(static_cast<std::uint16_t>(tags.size()));
  for (const auto& t : tags) {
    u16(static_cast<std::uint16_t>(t[0]));
    u16(static_cast<std::uint16_t>(t[1]));
    u32(1);
    if (t[1] == 3) { u16(static_cast<std::uint16_t>(t[2])); u16(0); } else { u32(t[2]); }
  }
  u32(0);
  s.resize(std::max<std::size_t>(s.size(), 358), '\0');
  return s;
}
}  // namespace

TEST_F(Hostile, R01_TruncatedGeoTiffFailsAtReadTimeNamingTheBlock) {
  TifOptions t;
  t.gt = utm_gt();
  write_tif(in / "cut.tif", crop(world_post()), t);  // uncompressed strips, IFD first
  truncate_to(in / "cut.tif", fs::file_size(in / "cut.tif") / 2);
  const auto r = run_pair(pre(), in / "cut.tif", fp());
  expect_fail(r, 1, (in / "cut.tif").string(), "read failed|window|block|strip|offset");
}

TEST_F(Hostile, R02_GeoTiffCutInsideTheIfdFailsAtOpen) {
  write_post(in / "cut.tif");
  truncate_to(in / "cut.tif", 60);
  expect_fail(run_pair(pre(), in / "cut.tif", fp()), 1, (in / "cut.tif").string(),
              "cannot be opened as a raster \\(.+\\)|not a recognised raster format \\(.+\\)");
}

TEST_F(Hostile, R03_CorruptDeflateTileIsFatalForThePair) {
  TifOptions t;
  t.gt = utm_gt();
  t.creation = {"TILED=YES", "BLOCKXSIZE=64", "BLOCKYSIZE=64", "COMPRESS=DEFLATE"};
  write_tif(in / "bad.tif", crop(world_post()), t);
  // 256 random bytes over the middle of the compressed data of block (1, 1).
  std::uintmax_t offset = 0, size = 0;
  {
    GDALDatasetH ds = GDALOpen((in / "bad.tif").c_str(), GA_ReadOnly);
    ASSERT_NE(ds, nullptr);
    GDALRasterBandH b = GDALGetRasterBand(ds, 1);
    offset = std::stoull(GDALGetMetadataItem(b, "BLOCK_OFFSET_1_1", "TIFF"));
    size = std::stoull(GDALGetMetadataItem(b, "BLOCK_SIZE_1_1", "TIFF"));
    GDALClose(ds);
  }
  ASSERT_GT(size, 512u);
  overwrite(in / "bad.tif", offset + size / 2 - 128, random_bytes(256, 3));
  expect_fail(run_pair(pre(), in / "bad.tif", fp()), 1, (in / "bad.tif").string(), "read failed|decod|deflate");
}

TEST_F(Hostile, R04_SilentCorruptionIsRecordedBySha256) {
  TifOptions t;
  t.gt = utm_gt();
  write_tif(in / "post.tif", crop(world_post()), t);
  overwrite(in / "post.tif", fs::file_size(in / "post.tif") / 2, std::string(256, '\xFF'));
  const auto r = run_pair(pre(), in / "post.tif", fp());
  expect_ok(r);
  EXPECT_EQ(root_attr(o(), "input_post_sha256"), sha256_of(in / "post.tif"));
  EXPECT_EQ(root_attr(o(), "input_pre_sha256"), sha256_of(pre()));
}

TEST_F(Hostile, R05_ZeroByteFile) {
  write_text(in / "empty.tif", "");
  expect_fail(run_pair(pre(), in / "empty.tif", fp()), 1, (in / "empty.tif").string(), "empty");
}

TEST_F(Hostile, R06_TextFileWithTifExtension) {
  write_text(in / "text.tif", "this is not a raster\n");
  expect_fail(run_pair(in / "text.tif", post(), fp()), 1, (in / "text.tif").string(), "not a recognised raster format");
}

TEST_F(Hostile, R07_SidesOverIntMaxAreRejectedAtOpen) {
  write_text(in / "huge.tif", header_only_tiff(2147483648u, 2147483648u));
  EXPECT_EQ(fs::file_size(in / "huge.tif"), 358u);
  expect_fail(run_pair(in / "huge.tif", post(), fp()), 1, (in / "huge.tif").string(), "too large image size|exceeds input.max_pixels");
}

TEST_F(Hostile, R08_AreaOverflowingInt32IsRejectedWith64BitMath) {
  write_text(in / "huge.tif", header_only_tiff(2147483647u, 2147483647u));
  expect_fail(run_pair(in / "huge.tif", post(), fp()), 1, (in / "huge.tif").string(),
              "size 2147483647 x 2147483647 exceeds input.max_pixels");
}

TEST_F(Hostile, R11_OnePixelScenes) {
  TifOptions t;
  t.gt = utm_gt();
  write_tif(in / "p1.tif", crop(world_pre(), 0, 0, 1, 1), t);
  write_tif(in / "q1.tif", crop(world_post(), 0, 0, 1, 1), t);
  expect_fail(run_pair(in / "p1.tif", in / "q1.tif", fp()), 1, (in / "p1.tif").string(),
              "1 x 1 px, below input.min_overlap_px");
}

TEST_F(Hostile, R12_OnePixelWideAndTallStrips) {
  TifOptions t;
  t.gt = utm_gt();
  for (auto [w, h] : {std::pair{1, kSize}, std::pair{kSize, 1}}) {
    const auto p = in / ("p" + std::to_string(w) + ".tif"), q = in / ("q" + std::to_string(w) + ".tif");
    write_tif(p, crop(world_pre(), 0, 0, w, h), t);
    write_tif(q, crop(world_post(), 0, 0, w, h), t);
    expect_fail(run_pair(p, q, fp()), 1, p.string(), "below input.min_overlap_px");
    // With the minimum lowered to 1 px the strip is analysed: no crash, a valid (footprint-free) result.
    const auto r = run_pair(p, q, {}, {"--set", "input.min_overlap_px=1", "--set", "align.enabled=false"});
    expect_ok(r);
    fs::remove(o());
  }
}

TEST_F(Hostile, R13_NoGeoreferencingInOneScene) {
  TifOptions t;
  t.srs = "";
  write_tif(in / "plain.tif", crop(world_post()), t);
  expect_fail(run_pair(pre(), in / "plain.tif", fp()), 1, (in / "plain.tif").string(), "no georeferencing");
}

TEST_F(Hostile, R14_GeotransformWithoutCrs) {
  TifOptions t;
  t.gt = utm_gt();
  t.srs = "";
  write_tif(in / "nocrs.tif", crop(world_post()), t);
  expect_fail(run_pair(pre(), in / "nocrs.tif", fp()), 1, (in / "nocrs.tif").string(), "geotransform but no CRS");
}

TEST_F(Hostile, R17_EveryPixelIsNodata) {
  TifOptions t;
  t.gt = utm_gt();
  t.nodata = 0;
  auto zero = crop(world_post());
  for (auto& b : zero) b.setTo(0);
  write_tif(in / "nd.tif", zero, t);
  // Policy (documented): ok-warn. Exit 0, a warning, every footprint no-data (never undamaged).
  const auto r = run_pair(pre(), in / "nd.tif", fp());
  expect_ok(r);
  expect_warning(r, "no valid pixel");
  const auto f = read_features(o());
  EXPECT_EQ(f.size(), 6u);
  for (const auto& [id, x] : f) EXPECT_EQ(x.status, "no-data") << id;
  aftermath::Hdf5Reader h(o().string());
  EXPECT_EQ(cv::countNonZero(h.layer("damage_mask") != 255), 0);
}

TEST_F(Hostile, R18_NonFinitePixelsAreMaskedWithAWarning) {
  auto bands = crop(world_post());
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  for (auto& b : bands) {
    b(cv::Rect(0, 100, 30, 30)).setTo(nan);
    b.rowRange(250, 252).setTo(inf);
    b.colRange(250, 252).setTo(-inf);
  }
  TifOptions t;
  t.gt = utm_gt();
  t.type = GDT_Float32;
  write_tif(in / "nf.tif", bands, t);
  const auto r = run_pair(pre(), in / "nf.tif", fp());
  expect_b00(r);
  // A warning names the file and counts the non-finite pixels (every one is on the grid here).
  const cv::Mat finite = (bands[0] == bands[0]) & (cv::abs(bands[0]) < inf);
  const int expected = static_cast<int>(finite.total()) - cv::countNonZero(finite);
  expect_warning(r, (in / "nf.tif").string() + ": " + std::to_string(expected) +
                        " non-finite pixels \\(NaN/Inf\\) treated as invalid");
  aftermath::Hdf5Reader h(o().string());
  const cv::Mat s = h.layer("change_score");
  EXPECT_EQ(cv::countNonZero(s != s), 0) << "NaN in the scores";
  EXPECT_EQ(h.layer("damage_mask").at<std::uint8_t>(110, 10), 255);
}

TEST_F(Hostile, R19_NanNodataIsMaskedWithIsnan) {
  auto bands = crop(world_post());
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (auto& b : bands) b(cv::Rect(0, 20, 100, 60)).setTo(nan);  // rows 20..80 left of x = 100: b1 inside
  TifOptions t;
  t.gt = utm_gt();
  t.type = GDT_Float32;
  t.nodata = nan;
  write_tif(in / "nan.tif", bands, t);
  const auto r = run_pair(pre(), in / "nan.tif", fp());
  expect_ok(r);
  const auto f = read_features(o());
  EXPECT_EQ(f.at("b1").status, "no-data");
  EXPECT_EQ(damaged(o()), kB00);
}

TEST_F(Hostile, R20_BlackCollarWithoutNodata) {
  auto p = crop(world_pre()), q = crop(world_post());
  for (auto* set : {&p, &q}) {
    for (auto& b : *set) {
      cv::Mat keep = b(cv::Rect(12, 12, kSize - 24, kSize - 24)).clone();
      b.setTo(0);
      keep.copyTo(b(cv::Rect(12, 12, kSize - 24, kSize - 24)));
    }
  }
  // The post collar is offset: the collar rows of one scene lie on image data of the other.
  for (auto& b : q) {
    b.rowRange(0, 24).setTo(0);
    b.colRange(0, 24).setTo(0);
  }
  TifOptions t;
  t.gt = utm_gt();
  write_tif(in / "pc.tif", p, t);
  write_tif(in / "qc.tif", q, t);
  const auto r = run_pair(in / "pc.tif", in / "qc.tif", fp());
  expect_b00(r);
  expect_warning(r, "qc\\.tif: no nodata value is set.*0-valued");
  // With the override the collar is invalid, not change.
  fs::remove(o());
  const auto r2 = run_pair(in / "pc.tif", in / "qc.tif", fp(), {"--set", "input.pre_nodata=0", "--set", "input.post_nodata=0"});
  expect_b00(r2);
  aftermath::Hdf5Reader h(o().string());
  EXPECT_EQ(h.layer("damage_mask").at<std::uint8_t>(5, 128), 255);
  EXPECT_EQ(h.layer("damage_mask").at<std::uint8_t>(128, 18), 255);
}

TEST_F(Hostile, R22_AlphaBandIsTheValidityMask) {
  auto bands = crop(world_post());
  cv::Mat alpha(kSize, kSize, CV_32F, cv::Scalar(255));
  alpha.colRange(0, 20).setTo(0);
  bands.push_back(alpha);
  TifOptions t;
  t.gt = utm_gt();
  t.alpha_last = true;
  t.creation = {"ALPHA=YES"};
  write_tif(in / "rgba.tif", bands, t);
  const auto r = run_pair(pre(), in / "rgba.tif", fp());
  expect_b00(r);
  aftermath::Hdf5Reader h(o().string());
  EXPECT_EQ(h.layer("damage_mask").at<std::uint8_t>(128, 5), 255);
  EXPECT_NE(h.layer("damage_mask").at<std::uint8_t>(128, 60), 255);
}

namespace {
std::string vrt(const std::string& source, int bands = 3, const std::string& extra_band_xml = "") {
  std::string s = "<VRTDataset rasterXSize=\"256\" rasterYSize=\"256\">\n  <SRS>EPSG:32632</SRS>\n"
                  "  <GeoTransform>500000, 1, 0, 5000256, 0, -1</GeoTransform>\n";
  for (int b = 1; b <= bands; ++b) {
    s += "  <VRTRasterBand dataType=\"Byte\" band=\"" + std::to_string(b) + "\">\n" + extra_band_xml +
         "    <SimpleSource><SourceFilename relativeToVRT=\"1\">" + source +
         "</SourceFilename><SourceBand>" + std::to_string(b) +
         "</SourceBand></SimpleSource>\n  </VRTRasterBand>\n";
  }
  return s + "</VRTDataset>\n";
}
}  // namespace

TEST_F(Hostile, R23_VrtWithMissingSource) {
  write_text(in / "m.vrt", vrt("missing_source.tif"));
  expect_fail(run_pair(pre(), in / "m.vrt", fp()), 1, (in / "m.vrt").string(), "missing_source\\.tif");
}

TEST_F(Hostile, R24_VrtReferencingItself) {
  write_text(in / "self.vrt", vrt("self.vrt"));
  expect_fail(run_pair(pre(), in / "self.vrt", fp()), 1, (in / "self.vrt").string(), "itself|recurs|cycle");
}

TEST_F(Hostile, R26_Hdf5WithTwoDatasetsHasNoBands) {
  const auto p = in / "two.h5";
  hid_t f = H5Fcreate(p.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  hsize_t dims[2] = {64, 64};
  std::vector<float> zeros(64 * 64, 1.f);
  for (const char* name : {"a", "b"}) {
    hid_t sp = H5Screate_simple(2, dims, nullptr);
    hid_t d = H5Dcreate2(f, name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, zeros.data());
    H5Dclose(d);
    H5Sclose(sp);
  }
  H5Fclose(f);
  // Both HDF5-reading drivers allowed, so the check that fires is the 0-band one.
  expect_fail(run_pair(p, post(), fp(), {"--set", "input.allowed_drivers=[GTiff, netCDF, HDF5, HDF5Image]"}), 1,
              p.string(), "no raster bands; 2 subdatasets, choose one");
}

TEST_F(Hostile, R27_PathIsADirectory) {
  fs::create_directories(in / "dir.tif");
  expect_fail(run_pair(in / "dir.tif", post(), fp()), 1, (in / "dir.tif").string(), "is a directory");
}

TEST_F(Hostile, R28_DanglingSymlinkNamesLinkAndTarget) {
  fs::create_symlink(in / "gone.tif", in / "link.tif");
  expect_fail(run_pair(in / "link.tif", post(), fp()), 1, (in / "link.tif").string(), "dangling.*gone\\.tif");
}

TEST_F(Hostile, R29_UnreadableFileAsNonRoot) {
  if (!can_drop_privileges() && ::geteuid() == 0) GTEST_SKIP() << "root without setpriv: cannot test permissions";
  pre(); post(); fp();
  fs::permissions(in / "pre.tif", fs::perms::none);
  std::vector<std::string> prefix;
  if (::geteuid() == 0) {
    prefix = {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"};
    fs::permissions(dir, fs::perms::all);
    fs::permissions(in, fs::perms::all);
    fs::permissions(out, fs::perms::all);
  }
  const auto r = aftermath({"run", "--pre", (in / "pre.tif").string(), "--post", post().string(), "--footprints",
                            fp().string(), "--out", o().string()},
                           prefix);
  expect_fail(r, 1, (in / "pre.tif").string(), "permission denied");
}

TEST_F(Hostile, DriverAllowListStopsVrtReadingOtherFiles) {
  // A VRT whose source is a text grid (AAIGrid, not allowed) and one with a raw band over a
  // "secret" file: neither may be read into the output.
  std::string grid = "ncols 256\nnrows 256\nxllcorner 0\nyllcorner 0\ncellsize 1\n";
  for (int i = 0; i < 256 * 256; ++i) grid += "7 ";
  write_text(in / "secret.asc", grid);
  write_text(in / "a.vrt", vrt("secret.asc", 1));
  expect_fail(run_pair(pre(), in / "a.vrt", fp(), {"--set", "input.pre_bands=[1]", "--set", "input.post_bands=[1]"}),
              1, (in / "a.vrt").string(), "AAIGrid.*not allowed");
  write_text(in / "secret.bin", std::string(256 * 256, 'S'));
  write_text(in / "raw.vrt",
             "<VRTDataset rasterXSize=\"256\" rasterYSize=\"256\"><SRS>EPSG:32632</SRS>"
             "<GeoTransform>500000, 1, 0, 5000256, 0, -1</GeoTransform>"
             "<VRTRasterBand dataType=\"Byte\" band=\"1\" subClass=\"VRTRawRasterBand\">"
             "<SourceFilename relativetoVRT=\"1\">secret.bin</SourceFilename><ImageOffset>0</ImageOffset>"
             "<PixelOffset>1</PixelOffset><LineOffset>256</LineOffset></VRTRasterBand></VRTDataset>\n");
  expect_fail(run_pair(pre(), in / "raw.vrt", fp(), {"--set", "input.pre_bands=[1]", "--set", "input.post_bands=[1]"}),
              1, (in / "raw.vrt").string(), "raw");
  // A driver left out of the list is refused even for a plain file.
  expect_fail(run_pair(pre(), post(), fp(), {"--set", "input.allowed_drivers=[PNG]"}), 1, pre().string(),
              "GTiff is not allowed");
}

// ------------------------------------------------------------------------------------------------
// P: pairs
// ------------------------------------------------------------------------------------------------

TEST_F(Hostile, P01_PostInWebMercator) {
  warp(post(), in / "post3857.tif", {"-t_srs", "EPSG:3857", "-r", "bilinear"});
  expect_b00(run_pair(pre(), in / "post3857.tif", fp()));
}

TEST_F(Hostile, P02_PostInGeographic4326) {
  warp(post(), in / "post4326.tif", {"-t_srs", "EPSG:4326", "-r", "bilinear"});
  expect_b00(run_pair(pre(), in / "post4326.tif", fp()));
}

TEST_F(Hostile, P04_NoOverlapNamesBothExtents) {
  TifOptions t;
  t.gt = utm_gt(1.0, 10000, 0);
  write_tif(in / "east.tif", crop(world_post()), t);
  expect_fail(run_pair(pre(), in / "east.tif", fp()), 1, (in / "east.tif").string(),
              "do not overlap.*510000");
}

TEST_F(Hostile, P05_OnePixelOverlap) {
  TifOptions t;
  t.gt = utm_gt(1.0, kSize - 1, -(kSize - 1));
  write_tif(in / "corner.tif", crop(world_post()), t);
  expect_fail(run_pair(pre(), in / "corner.tif", fp()), 1, (in / "corner.tif").string(),
              "1 x 1 px, below input.min_overlap_px");
}

TEST_F(Hostile, P06_FinerAndCoarserPost) {
  warp(post(), in / "fine.tif", {"-tr", "0.5", "0.5", "-r", "cubic"});
  expect_b00(run_pair(pre(), in / "fine.tif", fp()));
  fs::remove(o());
  warp(post(), in / "coarse.tif", {"-tr", "3", "3", "-r", "average"});
  const auto r = run_pair(pre(), in / "coarse.tif", fp());
  expect_ok(r);
  const auto d = damaged(o());
  EXPECT_TRUE(d.count("b2") && d.count("b5")) << ::testing::PrintToString(d);
}

TEST_F(Hostile, P07_ThreeBandsAgainstFour) {
  auto bands = crop(world_post());
  bands.push_back(bands[0] * 0.5 + 60);  // NIR
  TifOptions t;
  t.gt = utm_gt();
  t.creation = {"PHOTOMETRIC=MINISBLACK"};  // 4 plain bands (GDAL would make band 4 alpha for RGB)
  write_tif(in / "rgbn.tif", bands, t);
  expect_fail(run_pair(pre(), in / "rgbn.tif", fp()), 1, (in / "rgbn.tif").string(),
              "has 4.*input.pre_bands");
  expect_b00(run_pair(pre(), in / "rgbn.tif", fp(), {"--set", "input.pre_bands=[1,2,3]", "--set", "input.post_bands=[1,2,3]"}));
}

TEST_F(Hostile, P08_Uint16AndReflectancePost) {
  TifOptions t;
  t.gt = utm_gt();
  t.type = GDT_UInt16;
  t.scale = 257;
  write_tif(in / "u16.tif", crop(world_post()), t);
  expect_b00(run_pair(pre(), in / "u16.tif", fp()));
  fs::remove(o());
  t.type = GDT_Float32;
  t.scale = 1.0 / 255;
  write_tif(in / "refl.tif", crop(world_post()), t);
  expect_b00(run_pair(pre(), in / "refl.tif", fp()));
}

TEST_F(Hostile, P10_SameFileTwice) {
  const auto r = run_pair(pre(), pre(), fp());
  expect_ok(r);
  EXPECT_TRUE(damaged(o()).empty());
  aftermath::Hdf5Reader h(o().string());
  const cv::Mat s = h.layer("change_score");
  EXPECT_EQ(cv::countNonZero(s != s), 0) << "NaN in the scores";
}

TEST_F(Hostile, P11_ConstantScenes) {
  std::vector<cv::Mat> flat(3, cv::Mat(kSize, kSize, CV_32F, cv::Scalar(100)));
  TifOptions t;
  t.gt = utm_gt();
  write_tif(in / "c1.tif", flat, t);
  write_tif(in / "c2.tif", flat, t);
  const auto r = run_pair(in / "c1.tif", in / "c2.tif", fp());
  // Documented: identity shift with a warning; no NaN score, nothing damaged.
  expect_ok(r);
  expect_warning(r, "texture|tie point|co-registration|alignment");
  EXPECT_TRUE(damaged(o()).empty());
  aftermath::Hdf5Reader h(o().string());
  const cv::Mat s = h.layer("change_score");
  EXPECT_EQ(cv::countNonZero(s != s), 0) << "NaN in the scores";
}

TEST_F(Hostile, P12_ContentShifted15PxEastIsCorrected) {
  TifOptions t;
  t.gt = utm_gt();
  write_tif(in / "shifted.tif", crop(world_post(), -15, 0), t);
  const auto r = run_pair(pre(), in / "shifted.tif", fp());
  expect_b00(r);
  const auto sx = number_attr(o(), "/alignment", "shift_x"), sy = number_attr(o(), "/alignment", "shift_y");
  ASSERT_TRUE(sx && sy);
  EXPECT_NEAR(*sx, 15.0, 0.5);
  EXPECT_NEAR(*sy, 0.0, 0.5);
  // Above align.max_shift_px: refused clearly, naming the post file and the key.
  fs::remove(o());
  const auto r2 = run_pair(pre(), in / "shifted.tif", fp(), {"--set", "align.max_shift_px=4"});
  expect_fail(r2, 1, (in / "shifted.tif").string(), "co-registration failed.*align.max_shift_px = 4");
}

// ------------------------------------------------------------------------------------------------
// V: vectors
// ------------------------------------------------------------------------------------------------

namespace {
std::vector<std::string> baseline_features() {
  std::vector<std::string> f;
  for (std::size_t i = 0; i < buildings().size(); ++i) {
    f.push_back(feature_json("b" + std::to_string(i + 1), polygon_json(buildings()[i])));
  }
  return f;
}
std::string ll(double c, double r) {
  const auto p = lonlat(c, r);
  std::ostringstream s;
  s.precision(12);
  s << "[" << p.x << "," << p.y << "]";
  return s.str();
}
}  // namespace

TEST_F(Hostile, V01_BowTieIsRepairedOrSkippedWithItsId) {
  auto f = baseline_features();
  f.push_back(feature_json("bad1", R"({"type":"Polygon","coordinates":[[)" + ll(10, 110) + "," + ll(30, 130) + "," +
                                       ll(30, 110) + "," + ll(10, 130) + "," + ll(10, 110) + "]]}"));
  write_text(in / "v.geojson", collection_json(f));
  const auto r = run_pair(pre(), post(), in / "v.geojson");
  expect_b00(r);
  expect_warning(r, "bad1");
  EXPECT_GE(read_features(o()).size(), 6u);
}

TEST_F(Hostile, V02_NullAndEmptyGeometriesAreSkippedById) {
  auto f = baseline_features();
  f.push_back(feature_json("nullgeom", "null"));
  f.push_back(feature_json("emptypoly", R"({"type":"Polygon","coordinates":[]})"));
  f.push_back(feature_json("emptymulti", R"({"type":"MultiPolygon","coordinates":[]})"));
  write_text(in / "v.geojson", collection_json(f));
  const auto r = run_pair(pre(), post(), in / "v.geojson");
  expect_b00(r);
  for (const char* id : {"nullgeom", "emptypoly", "emptymulti"}) expect_warning(r, id);
  EXPECT_EQ(read_features(o()).size(), 6u);
}

TEST_F(Hostile, V03_UtmCoordinatesWithoutCrsMember) {
  std::vector<std::string> f;
  for (std::size_t i = 0; i < buildings().size(); ++i) {
    f.push_back(feature_json("b" + std::to_string(i + 1), polygon_json(buildings()[i], true)));
  }
  write_text(in / "v.geojson", collection_json(f));
  expect_fail(run_pair(pre(), post(), in / "v.geojson"), 1, (in / "v.geojson").string(), "out of range");
}

TEST_F(Hostile, V04_GeoPackageInWebMercator) {
  write_gpkg(in / "fp3857.gpkg", "EPSG:3857", {"buildings"});
  expect_b00(run_pair(pre(), post(), in / "fp3857.gpkg"));
}

TEST_F(Hostile, V06_PointsInsteadOfPolygons) {
  std::vector<std::string> f;
  for (std::size_t i = 0; i < buildings().size(); ++i) {
    const auto& b = buildings()[i];
    f.push_back(feature_json("b" + std::to_string(i + 1), R"({"type":"Point","coordinates":)" + ll(b.x + 12, b.y + 12) + "}"));
  }
  write_text(in / "v.geojson", collection_json(f));
  expect_fail(run_pair(pre(), post(), in / "v.geojson"), 1, (in / "v.geojson").string(),
              "expected Polygon/MultiPolygon.*Point");
}

TEST_F(Hostile, V07_EmptyFeatureCollection) {
  write_text(in / "v.geojson", collection_json({}));
  const auto r = run_pair(pre(), post(), in / "v.geojson");
  expect_ok(r);
  expect_warning(r, "no features|0 features");
  EXPECT_TRUE(read_features(o()).empty());
  aftermath::Hdf5Reader h(o().string());
  EXPECT_TRUE(h.has("/change_score"));
}

TEST_F(Hostile, V08_TruncatedJson) {
  const std::string full = baseline_geojson();
  write_text(in / "v.geojson", full.substr(0, full.size() / 2));
  expect_fail(run_pair(pre(), post(), in / "v.geojson"), 1, (in / "v.geojson").string(), "malformed|parse|syntax|JSON|cannot");
}

TEST_F(Hostile, V09_ZeroByteGeoJson) {
  write_text(in / "v.geojson", "");
  expect_fail(run_pair(pre(), post(), in / "v.geojson"), 1, (in / "v.geojson").string(), "empty");
}

TEST_F(Hostile, V10_MixedGeometryTypes) {
  auto f = baseline_features();
  f[0] = feature_json("b1", R"({"type":"MultiPolygon","coordinates":[[)" + ring_json(buildings()[0]) + "]]}");
  f.push_back(feature_json("line1", R"({"type":"LineString","coordinates":[)" + ll(5, 5) + "," + ll(20, 20) + "]}"));
  f.push_back(feature_json("gc1", R"({"type":"GeometryCollection","geometries":[{"type":"Polygon","coordinates":[)" +
                                      ring_json({5, 100, 10, 10}) + R"(]},{"type":"Point","coordinates":)" + ll(3, 3) + "}]}"));
  write_text(in / "v.geojson", collection_json(f));
  const auto r = run_pair(pre(), post(), in / "v.geojson");
  expect_b00(r);
  expect_warning(r, "line1");
  expect_warning(r, "gc1");
  const auto fs_ = read_features(o());
  EXPECT_TRUE(fs_.count("b1"));
  EXPECT_FALSE(fs_.count("line1"));
}

TEST_F(Hostile, V11_UnclosedAndTwoPositionRings) {
  auto f = baseline_features();
  const auto& b1 = buildings()[0];
  const auto& b3 = buildings()[2];
  f[0] = feature_json("b1", R"({"type":"Polygon","coordinates":[[)" + ll(b1.x, b1.y) + "," + ll(b1.x + 24, b1.y) + "," +
                                ll(b1.x + 24, b1.y + 24) + "," + ll(b1.x, b1.y + 24) + "]]}");
  f[2] = feature_json("b3", R"({"type":"Polygon","coordinates":[[)" + ll(b3.x, b3.y) + "," + ll(b3.x + 24, b3.y) + "]]}");
  write_text(in / "v.geojson", collection_json(f));
  const auto r = run_pair(pre(), post(), in / "v.geojson");
  expect_ok(r);
  expect_warning(r, "b3");
  const auto d = damaged(o());
  EXPECT_EQ(d, kB00);
  const auto feats = read_features(o());
  for (const char* id : {"b2", "b4", "b5", "b6"}) EXPECT_EQ(feats.at(id).status, "scored") << id;
}

TEST_F(Hostile, V12_AllFootprintsOutside) {
  std::vector<std::string> f;
  for (std::size_t i = 0; i < buildings().size(); ++i) {
    f.push_back(feature_json("b" + std::to_string(i + 1), polygon_json(buildings()[i], false, 10000, 0)));
  }
  write_text(in / "v.geojson", collection_json(f));
  const auto r = run_pair(pre(), post(), in / "v.geojson");
  expect_ok(r);
  expect_warning(r, "0 of 6");
  for (const auto& [id, x] : read_features(o())) EXPECT_EQ(x.status, "outside") << id;
}

TEST_F(Hostile, V14_GeoPackageWithTwoLayers) {
  write_gpkg(in / "two.gpkg", kUtm, {"roads", "parcels"});
  expect_fail(run_pair(pre(), post(), in / "two.gpkg"), 1, (in / "two.gpkg").string(), "roads.*parcels|parcels.*roads");
}

TEST_F(Hostile, V15_LegacyCrsMemberIsHonoured) {
  std::vector<std::string> f;
  for (std::size_t i = 0; i < buildings().size(); ++i) {
    f.push_back(feature_json("b" + std::to_string(i + 1), polygon_json(buildings()[i], true)));
  }
  write_text(in / "v.geojson",
             collection_json(f, R"("crs":{"type":"name","properties":{"name":"urn:ogc:def:crs:EPSG::32632"}})"));
  expect_b00(run_pair(pre(), post(), in / "v.geojson"));
}

// ------------------------------------------------------------------------------------------------
// C: config (YAML, the project's format), through `aftermath run --config`
// ------------------------------------------------------------------------------------------------

class HostileConfig : public Hostile {
 protected:
  void check(const std::string& yaml, const std::string& problem) {
    write_text(in / "c.yaml", yaml);
    expect_fail(run_pair(pre(), post(), fp(), {"--config", (in / "c.yaml").string()}), 2,
                (in / "c.yaml").string(), problem);
  }
};

TEST_F(HostileConfig, C01_MisspeltKeySuggestsTheRealOne) {
  check("schema_version: 1\nthreshold:\n  vaule: 0.35\n", "threshold.vaule.*did you mean.*threshold.value");
}
TEST_F(HostileConfig, C02_OutOfRange) { check("schema_version: 1\nthreshold:\n  value: -0.2\n", "threshold.value.*-0.2.*\\[0, 1\\]"); }
TEST_F(HostileConfig, C03_QuotedNumber) { check("schema_version: 1\nthreshold:\n  value: \"0.35\"\n", "threshold.value.*number.*string|string.*threshold.value"); }
TEST_F(HostileConfig, C04_MissingConfigFile) {
  const auto r = run_pair(pre(), post(), fp(), {"--config", (in / "none.yaml").string()});
  expect_fail(r, 2, (in / "none.yaml").string(), "does not exist|cannot|not found|no such");
}
TEST_F(HostileConfig, C05_NaN) { check("schema_version: 1\nthreshold:\n  value: .nan\n", "threshold.value.*finite|NaN|nan"); }
TEST_F(HostileConfig, C06_OverflowingNumbers) {
  check("schema_version: 1\nthreshold:\n  value: 1e999\n", "threshold.value");
  check("schema_version: 1\nalign:\n  max_shift_px: 99999999999\n", "align.max_shift_px");
  check("schema_version: 1\ntiling:\n  tile_size: 99999999999\n", "tiling.tile_size");
}
TEST_F(HostileConfig, C07_DuplicateKey) { check("schema_version: 1\nthreshold:\n  value: 0.3\n  value: 0.9\n", "duplicate.*value|value.*duplicate"); }
TEST_F(HostileConfig, C08_SyntaxErrorHasLineAndColumn) {
  check("schema_version: 1\nthreshold: {value: 0.3,, }\n", "line 2.*column|line 2:\\d+|2:\\d+");
}
TEST_F(HostileConfig, C09_EmptyFile) { check("", "empty"); }
TEST_F(HostileConfig, C10_Utf8BomIsAccepted) {
  write_text(in / "c.yaml", "\xEF\xBB\xBFschema_version: 1\nthreshold:\n  value: 0.5\n");
  expect_b00(run_pair(pre(), post(), fp(), {"--config", (in / "c.yaml").string()}));
}
TEST_F(HostileConfig, C11_MissingSchemaVersion) { check("threshold:\n  value: 0.5\n", "schema_version"); }

// ------------------------------------------------------------------------------------------------
// M: batch manifest (YAML, the project's format), through `aftermath batch`
// ------------------------------------------------------------------------------------------------

class HostileManifest : public Hostile {
 protected:
  Result batch(const std::string& yaml) {
    write_text(in / "m.yaml", yaml);
    return aftermath({"--log-level", "warn", "batch", (in / "m.yaml").string(), "--threads", "2", "--report",
                      (dir / "report.json").string()});
  }
  std::string job(const std::string& name, const std::string& p, const std::string& q, const std::string& output) {
    return "  - name: " + name + "\n    pre: \"" + p + "\"\n    post: \"" + q + "\"\n    footprints: \"" + fp().string() +
           "\"\n    out: \"" + output + "\"\n";
  }
};

TEST_F(HostileManifest, M01_MissingPostIsFoundBeforeAnyWork) {
  const auto r = batch("jobs:\n" + job("p1", pre().string(), post().string(), (out / "p1.h5").string()) +
                       job("p2", pre().string(), (in / "nope.tif").string(), (out / "p2.h5").string()));
  expect_fail(r, 2, (in / "nope.tif").string(), "p2.*post|post.*p2");
}

TEST_F(HostileManifest, M02_TwoJobsOneOutput) {
  const auto r = batch("jobs:\n" + job("p1", pre().string(), post().string(), (out / "m02_same.h5").string()) +
                       job("p2", pre().string(), post().string(), (out / "sub/../m02_same.h5").string()));
  expect_fail(r, 2, "m02_same.h5", "p1.*p2|p2.*p1");
}

TEST_F(HostileManifest, M03_SpacesAndUtf8InPathsAndANewOutputDir) {
  const auto d = in / "scènes d'été";
  fs::create_directories(d);
  fs::copy_file(pre(), d / "pré 1.tif");
  fs::copy_file(post(), d / "post 1.tif");
  const auto output = out / "sorties neuves" / "résultat 1.h5";
  const auto r = batch("jobs:\n" + job("p1", (d / "pré 1.tif").string(), (d / "post 1.tif").string(), output.string()));
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_EQ(damaged(output), kB00);
  EXPECT_EQ(root_attr(output, "input_pre"), (d / "pré 1.tif").string());
  EXPECT_TRUE(contains(r.out, output.string())) << r.out;
}

TEST_F(HostileManifest, M04_CrlfAndBom) {
  std::string text = "\xEF\xBB\xBFjobs:\n" + job("p1", pre().string(), post().string(), (out / "p1.h5").string());
  std::string crlf;
  for (char c : text) crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
  const auto r = batch(crlf);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(entries(out), std::vector<std::string>{"p1.h5"});
  EXPECT_EQ(damaged(out / "p1.h5"), kB00);
}

TEST_F(HostileManifest, M05_NoJobsIsNothingToDo) {
  const auto r = batch("version: 1\njobs: []\n");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(matches(r.out + r.err, "nothing to do|0 jobs")) << r.out << r.err;
  EXPECT_TRUE(entries(out).empty());
}

TEST_F(HostileManifest, M06_CommasInQuotedPaths) {
  fs::copy_file(pre(), in / "pre, 2011.tif");
  fs::copy_file(post(), in / "post, 2011.tif");
  const auto r = batch("jobs:\n" + job("p1", (in / "pre, 2011.tif").string(), (in / "post, 2011.tif").string(),
                                       (out / "a, b.h5").string()));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(damaged(out / "a, b.h5"), kB00);
}

TEST_F(HostileManifest, M07_OutputIsThePreInput) {
  const auto before = sha256_of(pre());
  const auto r = batch("jobs:\n" + job("p1", pre().string(), post().string(), (in / "sub/../pre.tif").string()));
  expect_fail(r, 2, pre().string(), "input");
  EXPECT_EQ(sha256_of(pre()), before);
}

TEST_F(HostileManifest, M08_JobWithMissingFields) {
  const auto r = batch("jobs:\n  - name: p1\n    pre: \"" + pre().string() + "\"\n    post: \"" + post().string() + "\"\n");
  expect_fail(r, 2, (in / "m.yaml").string(), "m\\.yaml:2.*missing field out");
}

// ------------------------------------------------------------------------------------------------
// O: outputs
// ------------------------------------------------------------------------------------------------

TEST_F(Hostile, O01_ReadOnlyOutputDirectoryAsNonRoot) {
  if (!can_drop_privileges() && ::geteuid() == 0) GTEST_SKIP() << "root without setpriv: cannot test permissions";
  pre(); post(); fp();
  std::vector<std::string> prefix;
  if (::geteuid() == 0) {
    prefix = {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"};
    fs::permissions(dir, fs::perms::all);
    fs::permissions(in, fs::perms::all);
    for (const auto& e : fs::directory_iterator(in)) fs::permissions(e.path(), fs::perms::all);
  }
  fs::permissions(out, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                           fs::perms::group_exec | fs::perms::others_read | fs::perms::others_exec);
  const auto r = aftermath({"run", "--pre", pre().string(), "--post", post().string(), "--footprints", fp().string(),
                            "--out", o().string()},
                           prefix);
  expect_fail(r, 3, out.string(), "cannot write to");
  EXPECT_FALSE(contains(r.err, "estimate")) << "failed late: " << r.err;
}

TEST_F(Hostile, O02_OutputIsADirectory) {
  fs::create_directories(out / "o.h5" / "keep");
  const auto r = run_pair(pre(), post(), fp());
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_TRUE(contains(r.err, o().string()) && matches(r.err, "is a directory")) << r.err;
  EXPECT_EQ(entries(out), std::vector<std::string>{"o.h5"});
  EXPECT_EQ(entries(out / "o.h5"), std::vector<std::string>{"keep"});
}

TEST_F(Hostile, O03_ExistingOlderOutputIsKeptUnlessOverwrite) {
  hid_t f = H5Fcreate(o().c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(f, "schema_version", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
  const long long zero = 0;
  H5Awrite(a, H5T_NATIVE_LLONG, &zero);
  H5Aclose(a);
  H5Sclose(sp);
  H5Fclose(f);
  const auto before = sha256_of(o());
  const auto r = run_pair(pre(), post(), fp());
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_TRUE(contains(r.err, o().string()) && contains(r.err, "--overwrite")) << r.err;
  EXPECT_EQ(sha256_of(o()), before);
  EXPECT_EQ(entries(out), std::vector<std::string>{"o.h5"});
  expect_b00(run_pair(pre(), post(), fp(), {"--overwrite"}));
  EXPECT_EQ(number_attr(o(), "/", "schema_version"), 1.0);
}

TEST_F(Hostile, O04_TruncatedExistingOutput) {
  expect_b00(run_pair(pre(), post(), fp()));
  fs::resize_file(o(), fs::file_size(o()) / 3);
  const auto before = sha256_of(o());
  const auto r = run_pair(pre(), post(), fp());
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_EQ(sha256_of(o()), before);
  expect_b00(run_pair(pre(), post(), fp(), {"--overwrite"}));
}

TEST_F(Hostile, O06_StaleTempFileIsNeverPromoted) {
  const auto stale = out / ".o.h5.tmp-999999-deadbeef";
  write_text(stale, "stale half-written output");
  const auto r = run_pair(pre(), post(), fp());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(damaged(o()), kB00);
  const auto left = entries(out);
  EXPECT_TRUE(left == std::vector<std::string>{"o.h5"} ||
              left == (std::vector<std::string>{".o.h5.tmp-999999-deadbeef", "o.h5"}))
      << ::testing::PrintToString(left);
  if (fs::exists(stale)) {
    EXPECT_EQ(read_text(stale), "stale half-written output");
  }
}

TEST_F(Hostile, O07_MissingParentDirectoryIsCreated) {
  const auto nested = out / "a" / "b" / "o.h5";
  expect_b00(run_pair(pre(), post(), fp(), {}, nested), nested);
  // On failure no directory tree is created.
  write_text(in / "text.tif", "not a raster");
  const auto r = run_pair(in / "text.tif", post(), fp(), {}, out / "c" / "d" / "o.h5");
  EXPECT_EQ(r.code, 1);
  EXPECT_FALSE(fs::exists(out / "c")) << "half-created directory tree";
}

TEST_F(Hostile, O08_OutputIsASymlinkToThePreInput) {
  const auto before = sha256_of(pre());
  fs::create_symlink(pre(), o());
  const auto r = run_pair(pre(), post(), fp(), {"--overwrite"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_TRUE(contains(r.err, o().string()) && matches(r.err, "is the input")) << r.err;
  EXPECT_EQ(sha256_of(pre()), before);
  EXPECT_TRUE(fs::is_symlink(o()));
}

// ------------------------------------------------------------------------------------------------
// X: paths
// ------------------------------------------------------------------------------------------------

TEST_F(Hostile, X01_SpacesAndUtf8InInputNames) {
  const auto p = in / "avant l'été 東京.tif", q = in / "après l'été 東京.tif";
  fs::copy_file(pre(), p);
  fs::copy_file(post(), q);
  const auto r = run_pair(p, q, fp());
  expect_b00(r);
  EXPECT_EQ(root_attr(o(), "input_pre"), p.string());
  EXPECT_EQ(root_attr(o(), "input_post"), q.string());
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (argc > 1) binary() = argv[1];
  return RUN_ALL_TESTS();
}
