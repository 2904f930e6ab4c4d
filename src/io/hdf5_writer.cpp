// The HDF5 output file, laid out as netCDF-4 / CF-1.8 (see hdf5_writer.hpp).
//
// Layout:
//   /x, /y     1-D float64 coordinate variables (pixel centres), HDF5 dimension scales
//   /crs       scalar int32 grid-mapping variable (crs_wkt, spatial_ref, GeoTransform)
//   /<layer>   2-D [y, x] chunked datasets written chunk by chunk with H5Dwrite_chunk
//   /<group>/  tables: one dimension scale + one 1-D dataset per column
//
// Chunks are always chunk_size x chunk_size. HDF5 forbids chunk dims larger than the maximum
// dims of a fixed-size dimension, so when the grid is smaller than one chunk along an axis the
// dataset's maximum dimension along that axis is raised to chunk_size (its current dimension is
// still the grid size, and it is not unlimited, so netCDF sees a fixed dimension of the grid
// size). This keeps encode_chunk (which only knows chunk_size) and the dataset consistent.
#include <memory>

#include "aftermath/io/hdf5_writer.hpp"

#include <fcntl.h>
#include <hdf5.h>
#include <hdf5_hl.h>
#include <libdeflate.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <random>
#include <set>

#include <cpl_error.h>
#include <ogr_spatialref.h>

#include "aftermath/core/error.hpp"
#include "hdf5_util.hpp"

namespace aftermath {

namespace {
// When H5Fclose fails (e.g. ENOSPC while flushing an aborted temporary file), HDF5 1.10 keeps a
// half-closed file that its atexit handler (H5_term_library) then dereferences: a SIGSEGV after
// the clean error exit (found by the full-disk procedure, tests/hostile/procedures.sh). Every file
// is closed explicitly (or deliberately abandoned and unlinked), so the atexit handler is not
// needed: disable it before the first HDF5 call (static initialisation, before main).
[[maybe_unused]] const herr_t kNoHdf5Atexit = H5dont_atexit();
}  // namespace

static_assert(std::endian::native == std::endian::little,
              "encode_chunk writes native bytes into little-endian datasets");

namespace {

constexpr int kMaxDeflateLevel = 12;           // libdeflate's range is 0..12
constexpr hsize_t kTableChunkThreshold = 4096;  // columns longer than this are chunked+deflated
constexpr hsize_t kTableChunk = 16384;          // elements per chunk of a table column
// Creation-order tracking (as netCDF-4 does) gives objects version-2 headers, which move
// attributes to dense storage when needed: without it an attribute over 64 KiB cannot be stored.
constexpr unsigned kCrtOrder = H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED;

using h5::cv_type;
using h5::element_size;
const char* cv_type_name(LayerType t) {
  return t == LayerType::float32 ? "CV_32FC1" : t == LayerType::uint16 ? "CV_16UC1" : "CV_8UC1";
}
hid_t file_type(LayerType t) {
  return t == LayerType::float32 ? H5T_IEEE_F32LE : t == LayerType::uint16 ? H5T_STD_U16LE : H5T_STD_U8LE;
}
hid_t mem_type(LayerType t) {
  return t == LayerType::float32 ? H5T_NATIVE_FLOAT : t == LayerType::uint16 ? H5T_NATIVE_USHORT : H5T_NATIVE_UCHAR;
}
int layer_level(const LayerSpec& spec, int default_level) {
  return spec.deflate_level >= 0 ? spec.deflate_level : default_level;
}

std::string errno_text(int err) { return std::strerror(err); }

std::string fmt_double(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

void check_level(int level) {
  if (level < 0 || level > kMaxDeflateLevel) {
    throw Error(ErrorKind::internal,
                "deflate level " + std::to_string(level) + " out of range 0.." +
                    std::to_string(kMaxDeflateLevel));
  }
}

/// One libdeflate compressor per level and thread.
struct CompressorCache {
  std::array<libdeflate_compressor*, kMaxDeflateLevel + 1> c{};
  CompressorCache() = default;
  CompressorCache(const CompressorCache&) = delete;
  CompressorCache& operator=(const CompressorCache&) = delete;
  ~CompressorCache() {
    for (auto* p : c) {
      if (p != nullptr) libdeflate_free_compressor(p);
    }
  }
  libdeflate_compressor* get(int level) {
    auto& p = c[static_cast<std::size_t>(level)];
    if (p == nullptr) {
      p = libdeflate_alloc_compressor(level);
      if (p == nullptr) throw std::bad_alloc();
    }
    return p;
  }
};

/// Whether an object named `name` exists directly in `loc`.
bool link_exists(hid_t loc, const std::string& name) { return H5Lexists(loc, name.c_str(), H5P_DEFAULT) > 0; }

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  std::size_t i = 0;
  while (i <= path.size()) {
    const std::size_t j = std::min(path.find('/', i), path.size());
    if (j > i) parts.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  return parts;
}

bool valid_name(const std::string& name) {
  return !name.empty() && name.find('/') == std::string::npos && name != "." && name != "..";
}

/// CF description of the CRS of a grid.
struct CrsInfo {
  bool geographic = false;
  std::string linear_units = "m";
  // CF grid-mapping parameters (grid_mapping_name first), when known.
  std::vector<std::pair<std::string, AttrValue>> cf;
};

CrsInfo describe_crs(const std::string& wkt) {
  CrsInfo info;
  OGRSpatialReference srs;
  CPLPushErrorHandler(CPLQuietErrorHandler);
  const OGRErr err = srs.importFromWkt(wkt.c_str());
  CPLPopErrorHandler();
  if (err != OGRERR_NONE) return info;  // keep the WKT as is, assume metres
  if (srs.IsGeographic()) {
    info.geographic = true;
    info.cf.emplace_back("grid_mapping_name", std::string("latitude_longitude"));
  } else if (srs.IsProjected()) {
    const char* unit_name = nullptr;
    const double factor = srs.GetLinearUnits(&unit_name);
    if (std::abs(factor - 1.0) < 1e-12) {
      info.linear_units = "m";
    } else if (std::abs(factor - 0.3048) < 1e-12) {
      info.linear_units = "ft";
    } else if (std::abs(factor - 1200.0 / 3937.0) < 1e-12) {
      info.linear_units = "US_survey_foot";
    } else {
      info.linear_units = fmt_double(factor) + " m";  // udunits: a scaled metre
    }
    int north = 0;
    const int zone = srs.GetUTMZone(&north);
    if (zone > 0) {
      info.cf.emplace_back("grid_mapping_name", std::string("transverse_mercator"));
      info.cf.emplace_back("longitude_of_central_meridian", double(zone * 6 - 183));
      info.cf.emplace_back("latitude_of_projection_origin", 0.0);
      info.cf.emplace_back("scale_factor_at_central_meridian", 0.9996);
      info.cf.emplace_back("false_easting", 500000.0);
      info.cf.emplace_back("false_northing", north ? 0.0 : 10000000.0);
    }
  } else {
    return info;
  }
  if (!info.cf.empty()) {
    OGRErr e1 = OGRERR_NONE, e2 = OGRERR_NONE;
    const double a = srs.GetSemiMajor(&e1);
    const double inv_f = srs.GetInvFlattening(&e2);
    if (e1 == OGRERR_NONE && e2 == OGRERR_NONE) {
      info.cf.emplace_back("semi_major_axis", a);
      info.cf.emplace_back("inverse_flattening", inv_f);
      info.cf.emplace_back("longitude_of_prime_meridian", srs.GetPrimeMeridian());
    }
  }
  return info;
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// encode_chunk

EncodedChunk encode_chunk(const LayerSpec& spec, const cv::Mat& core, int chunk_size,
                          int default_level) {
  if (chunk_size <= 0) throw Error(ErrorKind::internal, "encode_chunk: chunk size must be positive");
  const int deflate_level = layer_level(spec, default_level);
  check_level(deflate_level);
  if (core.type() != cv_type(spec.type) || core.dims != 2) {
    throw Error(ErrorKind::internal, "encode_chunk: layer " + spec.name + " expects a " +
                                         cv_type_name(spec.type) + " matrix");
  }
  if (core.rows > chunk_size || core.cols > chunk_size) {
    throw Error(ErrorKind::internal, "encode_chunk: layer " + spec.name + ": a " +
                                         std::to_string(core.cols) + "x" + std::to_string(core.rows) +
                                         " core exceeds the chunk size " +
                                         std::to_string(chunk_size));
  }
  const std::size_t s = element_size(spec.type);
  const std::size_t n = std::size_t(chunk_size) * std::size_t(chunk_size);
  const std::size_t nbytes = n * s;
  EncodedChunk out;
  // Pad to the full chunk with the fill value (row-major, native = little-endian bytes). An
  // unfiltered chunk is the padded matrix itself, built straight in the output buffer.
  std::vector<std::uint8_t> padded_bytes(nbytes);
  cv::Mat padded(chunk_size, chunk_size, cv_type(spec.type), padded_bytes.data());
  if (core.rows < chunk_size || core.cols < chunk_size) padded.setTo(cv::Scalar::all(spec.fill_value));
  if (!core.empty()) core.copyTo(padded(cv::Rect(0, 0, core.cols, core.rows)));
  if (deflate_level == 0) {
    out.bytes = std::move(padded_bytes);
    return out;
  }
  const auto* raw = padded_bytes.data();
  // HDF5's shuffle filter: byte j of element i goes to [j*n + i] (a no-op for 1-byte elements).
  std::vector<std::uint8_t> shuffled;
  const std::uint8_t* input = raw;
  if (s > 1) {
    shuffled.resize(nbytes);
    for (std::size_t j = 0; j < s; ++j) {
      std::uint8_t* dst = shuffled.data() + j * n;
      const std::uint8_t* src = raw + j;
      for (std::size_t i = 0; i < n; ++i) dst[i] = src[i * s];
    }
    input = shuffled.data();
  }
  thread_local CompressorCache cache;
  libdeflate_compressor* c = cache.get(deflate_level);
  out.bytes.resize(libdeflate_zlib_compress_bound(c, nbytes));
  const std::size_t size = libdeflate_zlib_compress(c, input, nbytes, out.bytes.data(), out.bytes.size());
  if (size == 0) throw Error(ErrorKind::internal, "encode_chunk: compression failed");
  out.bytes.resize(size);
  out.bytes.shrink_to_fit();
  return out;
}

// ------------------------------------------------------------------------------------------------
// Hdf5Writer

struct Hdf5Writer::Impl {
  std::string final_path;
  std::string temp_path;
  std::string dir;
  Grid grid;
  int chunk_size = 0;
  std::vector<LayerSpec> layers;
  int deflate_level = 0;
  bool temp_exists = false;
  bool committed = false;

  h5::Handle file;
  std::vector<h5::Handle> datasets;

  ~Impl() { abort(); }

  /// Closes everything and removes the temporary file unless committed. Never throws.
  void abort() noexcept {
    datasets.clear();
    file.reset();
    if (temp_exists && !committed) {
      ::unlink(temp_path.c_str());
      temp_exists = false;
    }
  }

  // --- errors ---------------------------------------------------------------------------------
  [[noreturn]] void fail(const std::string& what) const {
    const std::string reason = h5::last_error();
    throw Error(ErrorKind::output,
                final_path + ": " + what + (reason.empty() ? "" : " (" + reason + ")"));
  }
  hid_t id_or_fail(hid_t id, const std::string& what) const {
    if (id < 0) fail(what);
    return id;
  }
  void ok_or_fail(herr_t status, const std::string& what) const {
    if (status < 0) fail(what);
  }
  void require_open(const char* op) const {
    if (!file.valid()) {
      throw Error(ErrorKind::internal, final_path + ": " + op + " on a writer that is " +
                                           (committed ? "committed" : "closed"));
    }
  }

  // --- attributes -----------------------------------------------------------------------------
  void delete_attr_if_exists(hid_t loc, const std::string& name) const {
    const htri_t exists = H5Aexists(loc, name.c_str());
    ok_or_fail(exists, "cannot look up attribute " + name);
    if (exists > 0) ok_or_fail(H5Adelete(loc, name.c_str()), "cannot replace attribute " + name);
  }

  void write_attr_raw(hid_t loc, const std::string& name, hid_t ftype, hid_t mtype, hid_t space,
                      const void* data) const {
    delete_attr_if_exists(loc, name);
    h5::Handle a = h5::attribute(
        id_or_fail(H5Acreate2(loc, name.c_str(), ftype, space, H5P_DEFAULT, H5P_DEFAULT),
                   "cannot create attribute " + name));
    if (data != nullptr) ok_or_fail(H5Awrite(a.get(), mtype, data), "cannot write attribute " + name);
    ok_or_fail(a.close(), "cannot close attribute " + name);
  }

  void write_string_attr(hid_t loc, const std::string& name, const std::string& value) const {
    h5::Handle t = h5::datatype(id_or_fail(H5Tcopy(H5T_C_S1), "cannot create a string type"));
    const bool ascii = std::all_of(value.begin(), value.end(),
                                   [](char ch) { return static_cast<unsigned char>(ch) < 0x80; });
    ok_or_fail(H5Tset_size(t.get(), value.size() + 1), "cannot size a string type");
    ok_or_fail(H5Tset_strpad(t.get(), H5T_STR_NULLTERM), "cannot set string padding");
    ok_or_fail(H5Tset_cset(t.get(), ascii ? H5T_CSET_ASCII : H5T_CSET_UTF8), "cannot set string cset");
    h5::Handle sp = h5::dataspace(id_or_fail(H5Screate(H5S_SCALAR), "cannot create a dataspace"));
    write_attr_raw(loc, name, t.get(), t.get(), sp.get(), value.c_str());
  }

  void write_scalar_attr(hid_t loc, const std::string& name, hid_t ftype, hid_t mtype,
                         const void* value) const {
    h5::Handle sp = h5::dataspace(id_or_fail(H5Screate(H5S_SCALAR), "cannot create a dataspace"));
    write_attr_raw(loc, name, ftype, mtype, sp.get(), value);
  }

  void write_array_attr(hid_t loc, const std::string& name, hid_t ftype, hid_t mtype,
                        const void* data, std::size_t n) const {
    const hsize_t dims[1] = {n};
    h5::Handle sp = h5::dataspace(
        id_or_fail(n == 0 ? H5Screate(H5S_NULL) : H5Screate_simple(1, dims, nullptr),
                   "cannot create a dataspace"));
    write_attr_raw(loc, name, ftype, mtype, sp.get(), n == 0 ? nullptr : data);
  }

  void write_attr(hid_t loc, const std::string& name, const AttrValue& value) const {
    if (name.empty()) throw Error(ErrorKind::internal, final_path + ": empty attribute name");
    if (name == "DIMENSION_LIST" || name == "REFERENCE_LIST" || name == "CLASS" || name == "NAME") {
      throw Error(ErrorKind::internal, final_path + ": attribute name " + name +
                                           " is reserved for dimension scales");
    }
    if (const auto* s = std::get_if<std::string>(&value)) {
      write_string_attr(loc, name, *s);
    } else if (const auto* d = std::get_if<double>(&value)) {
      write_scalar_attr(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, d);
    } else if (const auto* i = std::get_if<std::int64_t>(&value)) {
      write_scalar_attr(loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, i);
    } else {
      const auto& v = std::get<std::vector<double>>(value);
      write_array_attr(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, v.data(), v.size());
    }
  }

  // --- datasets -------------------------------------------------------------------------------
  h5::Handle dataset_plist() const {
    h5::Handle dcpl = h5::plist(id_or_fail(H5Pcreate(H5P_DATASET_CREATE), "cannot create a property list"));
    ok_or_fail(H5Pset_attr_creation_order(dcpl.get(), kCrtOrder), "cannot set attribute creation order");
    return dcpl;
  }
  h5::Handle group_plist() const {
    h5::Handle gcpl = h5::plist(id_or_fail(H5Pcreate(H5P_GROUP_CREATE), "cannot create a property list"));
    ok_or_fail(H5Pset_attr_creation_order(gcpl.get(), kCrtOrder), "cannot set attribute creation order");
    ok_or_fail(H5Pset_link_creation_order(gcpl.get(), kCrtOrder), "cannot set link creation order");
    return gcpl;
  }

  /// A 1-D dataset of n elements; chunked and deflated when long (and compressible).
  h5::Handle create_1d(hid_t loc, const std::string& name, hid_t ftype, hsize_t n,
                       bool compressible) const {
    const hsize_t dims[1] = {n};
    h5::Handle sp = h5::dataspace(id_or_fail(H5Screate_simple(1, dims, nullptr), "cannot create a dataspace"));
    h5::Handle dcpl = dataset_plist();
    if (compressible && deflate_level > 0 && n > kTableChunkThreshold) {
      const hsize_t chunk[1] = {std::min(n, kTableChunk)};
      ok_or_fail(H5Pset_chunk(dcpl.get(), 1, chunk), "cannot set chunking of " + name);
      if (H5Tget_size(ftype) > 1) ok_or_fail(H5Pset_shuffle(dcpl.get()), "cannot set shuffle");
      ok_or_fail(H5Pset_deflate(dcpl.get(), unsigned(std::min(deflate_level, 9))), "cannot set deflate");
    }
    return h5::dataset(id_or_fail(
        H5Dcreate2(loc, name.c_str(), ftype, sp.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
        "cannot create dataset " + name));
  }

  void write_all(hid_t dset, hid_t mtype, const void* data, const std::string& name) const {
    ok_or_fail(H5Dwrite(dset, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), "cannot write dataset " + name);
  }

  /// Opens the group at `path` (slash-separated, relative to the root), creating missing groups.
  h5::Handle open_or_create_group(const std::string& path) const {
    const auto parts = split_path(path);
    if (parts.empty()) throw Error(ErrorKind::internal, final_path + ": empty table group name");
    h5::Handle g = h5::group(id_or_fail(H5Gopen2(file.get(), "/", H5P_DEFAULT), "cannot open /"));
    std::string sofar;
    for (const auto& p : parts) {
      if (p == "." || p == "..") throw Error(ErrorKind::internal, final_path + ": bad group path " + path);
      sofar += "/" + p;
      if (link_exists(g.get(), p)) {
        h5::Handle o = h5::object(id_or_fail(H5Oopen(g.get(), p.c_str(), H5P_DEFAULT), "cannot open " + sofar));
        if (H5Iget_type(o.get()) != H5I_GROUP) {
          throw Error(ErrorKind::internal, final_path + ": " + sofar + " exists and is not a group");
        }
        g = h5::group(id_or_fail(H5Gopen2(g.get(), p.c_str(), H5P_DEFAULT), "cannot open group " + sofar));
      } else {
        g = h5::group(id_or_fail(H5Gcreate2(g.get(), p.c_str(), H5P_DEFAULT, group_plist().get(), H5P_DEFAULT),
                                 "cannot create group " + sofar));
      }
    }
    return g;
  }

  // --- construction ---------------------------------------------------------------------------
  void validate() const {
    auto bad = [&](const std::string& msg) { throw Error(ErrorKind::internal, final_path + ": " + msg); };
    if (grid.width <= 0 || grid.height <= 0) bad("empty grid");
    if (chunk_size <= 0) bad("chunk size must be positive");
    check_level(deflate_level);
    const auto& g = grid.geotransform;
    for (double v : g) {
      if (!std::isfinite(v)) bad("non-finite geotransform");
    }
    if (g[2] != 0 || g[4] != 0) bad("rotated geotransforms are not supported");
    if (g[1] == 0 || g[5] == 0) bad("zero pixel size in geotransform");
    // 2-D chunks must stay under HDF5's 4 GiB chunk limit.
    if (std::uint64_t(chunk_size) * std::uint64_t(chunk_size) * 4 >= (std::uint64_t(1) << 32)) {
      bad("chunk size " + std::to_string(chunk_size) + " too large");
    }
    std::set<std::string> names{"x", "y", "crs"};
    for (const auto& l : layers) {
      if (!valid_name(l.name)) bad("invalid layer name '" + l.name + "'");
      if (!names.insert(l.name).second) bad("duplicate or reserved layer name " + l.name);
      if (l.deflate_level >= 0) check_level(l.deflate_level);
      if (l.type == LayerType::uint16 &&
          !(l.fill_value >= 0 && l.fill_value <= 65535 && l.fill_value == std::floor(l.fill_value))) {
        bad("layer " + l.name + ": fill value " + fmt_double(l.fill_value) + " is not a uint16");
      }
      if (l.type == LayerType::uint8) {
        if (!(l.fill_value >= 0 && l.fill_value <= 255 && l.fill_value == std::floor(l.fill_value))) {
          bad("layer " + l.name + ": fill value " + fmt_double(l.fill_value) + " is not a uint8");
        }
        for (int v : l.flag_values) {
          if (v < 0 || v > 255) bad("layer " + l.name + ": flag value " + std::to_string(v) + " is not a uint8");
        }
      }
    }
  }

  void create_temp_file() {
    namespace fs = std::filesystem;
    const fs::path target(final_path);
    const std::string base = target.filename().string();
    if (base.empty() || base == "." || base == "..") {
      throw Error(ErrorKind::output, final_path + ": cannot create output file (not a file name)");
    }
    dir = target.parent_path().string();
    if (dir.empty()) dir = ".";
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) {
      throw Error(ErrorKind::output, final_path + ": cannot create output file (directory " + dir +
                                         ": " + errno_text(errno) + ")");
    }
    if (!S_ISDIR(st.st_mode)) {
      throw Error(ErrorKind::output, final_path + ": cannot create output file (" + dir +
                                         " is not a directory)");
    }
    if (::stat(final_path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      throw Error(ErrorKind::output, final_path + ": cannot create output file (is a directory)");
    }
    std::random_device rd;
    for (int attempt = 0;; ++attempt) {
      const std::uint64_t r = (std::uint64_t(rd()) << 32) ^ rd();
      char hex[17];
      std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(r));
      temp_path = (target.parent_path() / ("." + base + ".tmp-" + std::to_string(::getpid()) + "-" + hex)).string();
      const int fd = ::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd >= 0) {
        ::close(fd);
        temp_exists = true;
        break;
      }
      const int err = errno;
      if (err != EEXIST || attempt >= 8) {
        throw Error(ErrorKind::output, final_path + ": cannot create temporary file " + temp_path +
                                           " (" + errno_text(err) + ")");
      }
    }
    h5::Handle fapl = h5::plist(id_or_fail(H5Pcreate(H5P_FILE_ACCESS), "cannot create a property list"));
    // Close every open object with the file; the file is private, so no locking is needed.
    ok_or_fail(H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG), "cannot set file close degree");
    ok_or_fail(H5Pset_file_locking(fapl.get(), false, true), "cannot disable file locking");
    h5::Handle fcpl = h5::plist(id_or_fail(H5Pcreate(H5P_FILE_CREATE), "cannot create a property list"));
    ok_or_fail(H5Pset_attr_creation_order(fcpl.get(), kCrtOrder), "cannot set attribute creation order");
    ok_or_fail(H5Pset_link_creation_order(fcpl.get(), kCrtOrder), "cannot set link creation order");
    file = h5::file(id_or_fail(H5Fcreate(temp_path.c_str(), H5F_ACC_TRUNC, fcpl.get(), fapl.get()),
                               "cannot create HDF5 file " + temp_path));
  }

  /// /x or /y: a coordinate variable and dimension scale.
  h5::Handle create_axis(const std::string& name, int n, double origin, double step,
                         const CrsInfo& crs) const {
    std::vector<double> v(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) v[std::size_t(i)] = origin + (i + 0.5) * step;
    h5::Handle d = create_1d(file.get(), name, H5T_IEEE_F64LE, hsize_t(n), false);
    write_all(d.get(), H5T_NATIVE_DOUBLE, v.data(), name);
    ok_or_fail(H5DSset_scale(d.get(), name.c_str()), "cannot make " + name + " a dimension scale");
    const bool is_x = name == "x";
    if (!grid.georeferenced()) {
      write_string_attr(d.get(), "units", "pixel");
      write_string_attr(d.get(), "long_name", is_x ? "column (pixel centre)" : "row (pixel centre)");
    } else if (crs.geographic) {
      write_string_attr(d.get(), "units", is_x ? "degrees_east" : "degrees_north");
      write_string_attr(d.get(), "standard_name", is_x ? "longitude" : "latitude");
      write_string_attr(d.get(), "long_name", is_x ? "longitude" : "latitude");
    } else {
      write_string_attr(d.get(), "units", crs.linear_units);
      write_string_attr(d.get(), "standard_name", is_x ? "projection_x_coordinate" : "projection_y_coordinate");
      write_string_attr(d.get(), "long_name", is_x ? "x coordinate of projection" : "y coordinate of projection");
    }
    write_string_attr(d.get(), "axis", is_x ? "X" : "Y");
    return d;
  }

  void create_crs(const CrsInfo& crs) const {
    h5::Handle sp = h5::dataspace(id_or_fail(H5Screate(H5S_SCALAR), "cannot create a dataspace"));
    h5::Handle d = h5::dataset(id_or_fail(
        H5Dcreate2(file.get(), "crs", H5T_STD_I32LE, sp.get(), H5P_DEFAULT, dataset_plist().get(), H5P_DEFAULT),
        "cannot create dataset crs"));
    const std::int32_t zero = 0;
    write_all(d.get(), H5T_NATIVE_INT32, &zero, "crs");
    for (const auto& [k, v] : crs.cf) write_attr(d.get(), k, v);
    write_string_attr(d.get(), "crs_wkt", grid.crs_wkt);
    write_string_attr(d.get(), "spatial_ref", grid.crs_wkt);
    std::string gt;
    for (double v : grid.geotransform) {
      if (!gt.empty()) gt.push_back(' ');
      gt.append(fmt_double(v));
    }
    write_string_attr(d.get(), "GeoTransform", gt);
    ok_or_fail(d.close(), "cannot close dataset crs");
  }

  h5::Handle create_layer(const LayerSpec& l, hid_t xscale, hid_t yscale) const {
    const hsize_t c = hsize_t(chunk_size);
    const hsize_t dims[2] = {hsize_t(grid.height), hsize_t(grid.width)};
    const hsize_t maxdims[2] = {std::max(dims[0], c), std::max(dims[1], c)};
    h5::Handle sp = h5::dataspace(id_or_fail(H5Screate_simple(2, dims, maxdims), "cannot create a dataspace"));
    h5::Handle dcpl = dataset_plist();
    const hsize_t chunk[2] = {c, c};
    ok_or_fail(H5Pset_chunk(dcpl.get(), 2, chunk), "cannot set chunking of " + l.name);
    const int level = layer_level(l, deflate_level);
    if (level > 0) {
      ok_or_fail(H5Pset_shuffle(dcpl.get()), "cannot set shuffle on " + l.name);
      ok_or_fail(H5Pset_deflate(dcpl.get(), unsigned(std::min(level, 9))), "cannot set deflate on " + l.name);
    }
    const float ffill = static_cast<float>(l.fill_value);
    const auto ufill = static_cast<std::uint8_t>(l.fill_value);
    const auto u16fill = static_cast<std::uint16_t>(l.fill_value);
    const void* fill = l.type == LayerType::float32  ? static_cast<const void*>(&ffill)
                       : l.type == LayerType::uint16 ? static_cast<const void*>(&u16fill)
                                                     : &ufill;
    ok_or_fail(H5Pset_fill_value(dcpl.get(), mem_type(l.type), fill), "cannot set fill value of " + l.name);
    h5::Handle d = h5::dataset(id_or_fail(
        H5Dcreate2(file.get(), l.name.c_str(), file_type(l.type), sp.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
        "cannot create dataset " + l.name));
    write_scalar_attr(d.get(), "_FillValue", file_type(l.type), mem_type(l.type), fill);
    if (!l.long_name.empty()) write_string_attr(d.get(), "long_name", l.long_name);
    if (!l.units.empty()) write_string_attr(d.get(), "units", l.units);
    if (l.scale_factor > 0) {
      // CF packing: readers unpack to value x scale_factor + add_offset (as doubles).
      const double offset = 0.0;
      write_scalar_attr(d.get(), "scale_factor", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &l.scale_factor);
      write_scalar_attr(d.get(), "add_offset", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &offset);
    }
    if (grid.georeferenced()) write_string_attr(d.get(), "grid_mapping", "crs");
    if (!l.flag_values.empty()) {
      if (l.type != LayerType::uint8) {
        std::vector<float> fv(l.flag_values.begin(), l.flag_values.end());
        write_array_attr(d.get(), "flag_values", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, fv.data(), fv.size());
      } else {
        std::vector<std::uint8_t> fv;
        for (int v : l.flag_values) fv.push_back(static_cast<std::uint8_t>(v));
        write_array_attr(d.get(), "flag_values", H5T_STD_U8LE, H5T_NATIVE_UCHAR, fv.data(), fv.size());
      }
    }
    if (!l.flag_meanings.empty()) write_string_attr(d.get(), "flag_meanings", l.flag_meanings);
    ok_or_fail(H5DSattach_scale(d.get(), yscale, 0), "cannot attach y to " + l.name);
    ok_or_fail(H5DSattach_scale(d.get(), xscale, 1), "cannot attach x to " + l.name);
    return d;
  }

  void create() {
    validate();
    create_temp_file();
    write_string_attr(file.get(), "Conventions", "CF-1.8");
    const CrsInfo crs = grid.georeferenced() ? describe_crs(grid.crs_wkt) : CrsInfo{};
    const auto& g = grid.geotransform;
    h5::Handle x = create_axis("x", grid.width, g[0], g[1], crs);
    h5::Handle y = create_axis("y", grid.height, g[3], g[5], crs);
    if (grid.georeferenced()) create_crs(crs);
    for (const auto& l : layers) datasets.push_back(create_layer(l, x.get(), y.get()));
    ok_or_fail(x.close(), "cannot close x");
    ok_or_fail(y.close(), "cannot close y");
  }
};

Hdf5Writer::Hdf5Writer(const std::string& final_path, const Grid& grid, int chunk_size,
                       std::vector<LayerSpec> layers, int deflate_level)
    : impl_(std::make_unique<Impl>()) {
  h5::silence_errors();
  impl_->final_path = final_path;
  impl_->grid = grid;
  impl_->chunk_size = chunk_size;
  impl_->layers = std::move(layers);
  impl_->deflate_level = deflate_level;
  impl_->create();  // on failure impl_'s destructor removes the temporary file
}

Hdf5Writer::~Hdf5Writer() = default;

const std::string& Hdf5Writer::temp_path() const { return impl_->temp_path; }

void Hdf5Writer::write_chunk(int layer, const Tile& tile, const EncodedChunk& chunk) {
  Impl& m = *impl_;
  h5::silence_errors();
  m.require_open("write_chunk");
  if (layer < 0 || std::size_t(layer) >= m.layers.size()) {
    throw Error(ErrorKind::internal, m.final_path + ": write_chunk: no layer " + std::to_string(layer));
  }
  const LayerSpec& spec = m.layers[std::size_t(layer)];
  const Window& w = tile.core;
  if (w.x < 0 || w.y < 0 || w.x >= m.grid.width || w.y >= m.grid.height || w.x % m.chunk_size != 0 ||
      w.y % m.chunk_size != 0) {
    throw Error(ErrorKind::internal, m.final_path + ": write_chunk: tile core at (" + std::to_string(w.x) +
                                         ", " + std::to_string(w.y) + ") is not on a chunk boundary of " +
                                         spec.name);
  }
  const std::size_t raw = std::size_t(m.chunk_size) * std::size_t(m.chunk_size) * element_size(spec.type);
  if (chunk.bytes.empty() || (layer_level(spec, m.deflate_level) == 0 && chunk.bytes.size() != raw)) {
    throw Error(ErrorKind::internal, m.final_path + ": write_chunk: chunk of " +
                                         std::to_string(chunk.bytes.size()) + " bytes does not fit " +
                                         spec.name);
  }
  const hsize_t offset[2] = {hsize_t(w.y), hsize_t(w.x)};
  m.ok_or_fail(H5Dwrite_chunk(m.datasets[std::size_t(layer)].get(), H5P_DEFAULT, 0, offset,
                              chunk.bytes.size(), chunk.bytes.data()),
               "cannot write chunk (" + std::to_string(w.x) + ", " + std::to_string(w.y) + ") of " + spec.name);
}

void Hdf5Writer::write_table(const Table& table) {
  Impl& m = *impl_;
  h5::silence_errors();
  m.require_open("write_table");
  const std::string where = "table " + table.group;
  if (!valid_name(table.dimension)) {
    throw Error(ErrorKind::internal, m.final_path + ": " + where + ": invalid dimension name '" + table.dimension + "'");
  }
  // All columns have the same length.
  hsize_t n = 0;
  std::set<std::string> names{table.dimension};
  for (std::size_t i = 0; i < table.columns.size(); ++i) {
    const Column& c = table.columns[i];
    const hsize_t len = std::visit([](const auto& v) { return hsize_t(v.size()); }, c.values);
    if (i == 0) n = len;
    if (len != n) {
      throw Error(ErrorKind::internal, m.final_path + ": " + where + ": column " + c.name + " has " +
                                           std::to_string(len) + " rows, expected " + std::to_string(n));
    }
    if (!valid_name(c.name) || !names.insert(c.name).second) {
      throw Error(ErrorKind::internal, m.final_path + ": " + where + ": invalid or duplicate column name '" + c.name + "'");
    }
  }
  h5::Handle g = m.open_or_create_group(table.group);
  for (const auto& name : names) {
    if (link_exists(g.get(), name)) {
      throw Error(ErrorKind::internal, m.final_path + ": " + where + ": " + name + " already exists");
    }
  }
  // The shared dimension: a coordinate variable 0..n-1.
  h5::Handle dim = m.create_1d(g.get(), table.dimension, H5T_STD_I64LE, n, true);
  if (n > 0) {
    std::vector<std::int64_t> idx(n);
    std::iota(idx.begin(), idx.end(), std::int64_t{0});
    m.write_all(dim.get(), H5T_NATIVE_INT64, idx.data(), table.dimension);
  }
  m.ok_or_fail(H5DSset_scale(dim.get(), table.dimension.c_str()), "cannot make " + table.dimension + " a dimension scale");

  for (const Column& c : table.columns) {
    h5::Handle d;
    if (const auto* v = std::get_if<std::vector<double>>(&c.values)) {
      d = m.create_1d(g.get(), c.name, H5T_IEEE_F64LE, n, true);
      if (n > 0) m.write_all(d.get(), H5T_NATIVE_DOUBLE, v->data(), c.name);
    } else if (const auto* v = std::get_if<std::vector<std::int64_t>>(&c.values)) {
      d = m.create_1d(g.get(), c.name, H5T_STD_I64LE, n, true);
      if (n > 0) m.write_all(d.get(), H5T_NATIVE_INT64, v->data(), c.name);
    } else if (const auto* v = std::get_if<std::vector<std::uint8_t>>(&c.values)) {
      d = m.create_1d(g.get(), c.name, H5T_STD_U8LE, n, true);
      if (n > 0) m.write_all(d.get(), H5T_NATIVE_UCHAR, v->data(), c.name);
    } else {
      const auto& sv = std::get<std::vector<std::string>>(c.values);
      h5::Handle t = h5::datatype(m.id_or_fail(H5Tcopy(H5T_C_S1), "cannot create a string type"));
      m.ok_or_fail(H5Tset_size(t.get(), H5T_VARIABLE), "cannot create a string type");
      m.ok_or_fail(H5Tset_cset(t.get(), H5T_CSET_UTF8), "cannot create a string type");
      d = m.create_1d(g.get(), c.name, t.get(), n, false);
      if (n > 0) {
        std::vector<const char*> ptrs;
        ptrs.reserve(sv.size());
        for (const auto& s : sv) ptrs.push_back(s.c_str());
        m.write_all(d.get(), t.get(), ptrs.data(), c.name);
      }
    }
    if (!c.long_name.empty()) m.write_string_attr(d.get(), "long_name", c.long_name);
    if (!c.units.empty()) m.write_string_attr(d.get(), "units", c.units);
    for (const auto& [k, v] : c.attributes) m.write_attr(d.get(), k, v);
    m.ok_or_fail(H5DSattach_scale(d.get(), dim.get(), 0), "cannot attach " + table.dimension + " to " + c.name);
    m.ok_or_fail(d.close(), "cannot close " + c.name);
  }
  for (const auto& [k, v] : table.attributes) m.write_attr(g.get(), k, v);
  m.ok_or_fail(dim.close(), "cannot close " + table.dimension);
  m.ok_or_fail(g.close(), "cannot close group " + table.group);
}

void Hdf5Writer::set_attribute(const std::string& object_path, const std::string& name,
                               const AttrValue& value) {
  Impl& m = *impl_;
  h5::silence_errors();
  m.require_open("set_attribute");
  const std::string path = object_path.empty() ? "/" : object_path;
  if (path != "/" && H5LTpath_valid(m.file.get(), path.c_str(), true) <= 0) {
    h5::last_error();
    throw Error(ErrorKind::output, m.final_path + ": cannot set attribute " + name + " on " + path +
                                       " (no such group or dataset)");
  }
  h5::Handle obj = h5::object(
      m.id_or_fail(H5Oopen(m.file.get(), path.c_str(), H5P_DEFAULT), "cannot open " + path));
  m.write_attr(obj.get(), name, value);
  m.ok_or_fail(obj.close(), "cannot close " + path);
}

void Hdf5Writer::commit() {
  Impl& m = *impl_;
  h5::silence_errors();
  m.require_open("commit");
  for (auto& d : m.datasets) m.ok_or_fail(d.close(), "cannot close a layer dataset");
  m.datasets.clear();
  const ssize_t open_objects = H5Fget_obj_count(m.file.get(), H5F_OBJ_ALL | H5F_OBJ_LOCAL);
  if (open_objects != 1) {
    throw Error(ErrorKind::internal, m.final_path + ": " + std::to_string(open_objects - 1) +
                                         " HDF5 objects still open at commit");
  }
  m.ok_or_fail(m.file.close(), "cannot close " + m.temp_path);

  const int fd = ::open(m.temp_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    const int err = errno;
    if (fd >= 0) ::close(fd);
    throw Error(ErrorKind::output, m.final_path + ": cannot sync " + m.temp_path + " (" + errno_text(err) + ")");
  }
  ::close(fd);
  if (::rename(m.temp_path.c_str(), m.final_path.c_str()) != 0) {
    const int err = errno;
    throw Error(ErrorKind::output, m.final_path + ": cannot rename " + m.temp_path + " onto it (" +
                                       errno_text(err) + ")");
  }
  m.committed = true;
  m.temp_exists = false;
  const int dfd = ::open(m.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    const int rc = ::fsync(dfd);
    const int err = errno;
    ::close(dfd);
    if (rc != 0 && err != EINVAL && err != EROFS) {
      throw Error(ErrorKind::output, m.final_path + ": cannot sync directory " + m.dir + " (" + errno_text(err) + ")");
    }
  }
}

}  // namespace aftermath
