#pragma once
/// @file hdf5_layout.hpp
/// The CF / netCDF-4 layout of an output file (private to the io module), shared by the serial
/// writer (Hdf5Writer) and the collective one (Hdf5ParallelWriter): the coordinate variables,
/// the grid mapping, the layer datasets (chunked to the tile, same filters and fill values), the
/// attribute and 1-D dataset helpers, the temporary file beside the target. Written once so that
/// both writers make the same file.
#include <cpl_error.h>
#include <fcntl.h>
#include <hdf5.h>
#include <hdf5_hl.h>
#include <ogr_spatialref.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "aftermath/core/error.hpp"
#include "aftermath/io/hdf5_writer.hpp"
#include "hdf5_util.hpp"

namespace aftermath::h5 {

inline constexpr int kMaxDeflateLevel = 12;  // libdeflate's range is 0..12
inline constexpr hsize_t kTableChunkThreshold =
    4096;                                      // columns longer than this are chunked+deflated
inline constexpr hsize_t kTableChunk = 16384;  // elements per chunk of a table column
// Creation-order tracking (as netCDF-4 does) gives objects version-2 headers, which move
// attributes to dense storage when needed: without it an attribute over 64 KiB cannot be stored.
inline constexpr unsigned kCrtOrder = H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED;

inline const char* cv_type_name(LayerType t) {
  return t == LayerType::float32 ? "CV_32FC1" : t == LayerType::uint16 ? "CV_16UC1" : "CV_8UC1";
}
inline hid_t file_type(LayerType t) {
  return t == LayerType::float32  ? H5T_IEEE_F32LE
         : t == LayerType::uint16 ? H5T_STD_U16LE
                                  : H5T_STD_U8LE;
}
inline hid_t mem_type(LayerType t) {
  return t == LayerType::float32  ? H5T_NATIVE_FLOAT
         : t == LayerType::uint16 ? H5T_NATIVE_USHORT
                                  : H5T_NATIVE_UCHAR;
}
inline int layer_level(const LayerSpec& spec, int default_level) {
  return spec.deflate_level >= 0 ? spec.deflate_level : default_level;
}

inline std::string errno_text(int err) { return std::strerror(err); }

inline std::string fmt_double(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

inline void check_level(int level) {
  if (level < 0 || level > kMaxDeflateLevel) {
    throw Error(ErrorKind::internal, "deflate level " + std::to_string(level) +
                                         " out of range 0.." + std::to_string(kMaxDeflateLevel));
  }
}

/// Whether an object named `name` exists directly in `loc`.
inline bool link_exists(hid_t loc, const std::string& name) {
  return H5Lexists(loc, name.c_str(), H5P_DEFAULT) > 0;
}

inline std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  std::size_t i = 0;
  while (i <= path.size()) {
    const std::size_t j = std::min(path.find('/', i), path.size());
    if (j > i) parts.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  return parts;
}

inline bool valid_name(const std::string& name) {
  return !name.empty() && name.find('/') == std::string::npos && name != "." && name != "..";
}

/// CF description of the CRS of a grid.
struct CrsInfo {
  bool geographic = false;
  std::string linear_units = "m";
  // CF grid-mapping parameters (grid_mapping_name first), when known.
  std::vector<std::pair<std::string, AttrValue>> cf;
};

inline CrsInfo describe_crs(const std::string& wkt) {
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

/// The directory an output goes to ("." for a bare file name).
inline std::string output_dir(const std::string& final_path) {
  const std::string dir = std::filesystem::path(final_path).parent_path().string();
  return dir.empty() ? "." : dir;
}

/// The layout of one output on an open HDF5 file. Errors are Error(output) naming final_path.
/// In a parallel file every rank calls the same functions with the same arguments (HDF5's
/// metadata operations are collective), and write_dxpl makes the whole-dataset writes collective.
struct CfLayout {
  std::string final_path;
  Grid grid;
  int chunk_size = 0;
  std::vector<LayerSpec> layers;
  int deflate_level = 0;
  hid_t file_id = H5I_INVALID_HID;  ///< the file written to (not owned)
  hid_t write_dxpl = H5P_DEFAULT;   ///< transfer properties of write_all

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
    if (data != nullptr)
      ok_or_fail(H5Awrite(a.get(), mtype, data), "cannot write attribute " + name);
    ok_or_fail(a.close(), "cannot close attribute " + name);
  }

  void write_string_attr(hid_t loc, const std::string& name, const std::string& value) const {
    h5::Handle t = h5::datatype(id_or_fail(H5Tcopy(H5T_C_S1), "cannot create a string type"));
    const bool ascii = std::all_of(value.begin(), value.end(),
                                   [](char ch) { return static_cast<unsigned char>(ch) < 0x80; });
    ok_or_fail(H5Tset_size(t.get(), value.size() + 1), "cannot size a string type");
    ok_or_fail(H5Tset_strpad(t.get(), H5T_STR_NULLTERM), "cannot set string padding");
    ok_or_fail(H5Tset_cset(t.get(), ascii ? H5T_CSET_ASCII : H5T_CSET_UTF8),
               "cannot set string cset");
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
    h5::Handle sp =
        h5::dataspace(id_or_fail(n == 0 ? H5Screate(H5S_NULL) : H5Screate_simple(1, dims, nullptr),
                                 "cannot create a dataspace"));
    write_attr_raw(loc, name, ftype, mtype, sp.get(), n == 0 ? nullptr : data);
  }

  void write_attr(hid_t loc, const std::string& name, const AttrValue& value) const {
    if (name.empty()) throw Error(ErrorKind::internal, final_path + ": empty attribute name");
    if (name == "DIMENSION_LIST" || name == "REFERENCE_LIST" || name == "CLASS" || name == "NAME") {
      throw Error(ErrorKind::internal,
                  final_path + ": attribute name " + name + " is reserved for dimension scales");
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
    h5::Handle dcpl =
        h5::plist(id_or_fail(H5Pcreate(H5P_DATASET_CREATE), "cannot create a property list"));
    ok_or_fail(H5Pset_attr_creation_order(dcpl.get(), kCrtOrder),
               "cannot set attribute creation order");
    return dcpl;
  }
  h5::Handle group_plist() const {
    h5::Handle gcpl =
        h5::plist(id_or_fail(H5Pcreate(H5P_GROUP_CREATE), "cannot create a property list"));
    ok_or_fail(H5Pset_attr_creation_order(gcpl.get(), kCrtOrder),
               "cannot set attribute creation order");
    ok_or_fail(H5Pset_link_creation_order(gcpl.get(), kCrtOrder), "cannot set link creation order");
    return gcpl;
  }

  /// A 1-D dataset of n elements; chunked and deflated when long (and compressible).
  h5::Handle create_1d(hid_t loc, const std::string& name, hid_t ftype, hsize_t n,
                       bool compressible) const {
    const hsize_t dims[1] = {n};
    h5::Handle sp =
        h5::dataspace(id_or_fail(H5Screate_simple(1, dims, nullptr), "cannot create a dataspace"));
    h5::Handle dcpl = dataset_plist();
    if (compressible && deflate_level > 0 && n > kTableChunkThreshold) {
      const hsize_t chunk[1] = {std::min(n, kTableChunk)};
      ok_or_fail(H5Pset_chunk(dcpl.get(), 1, chunk), "cannot set chunking of " + name);
      if (H5Tget_size(ftype) > 1) ok_or_fail(H5Pset_shuffle(dcpl.get()), "cannot set shuffle");
      ok_or_fail(H5Pset_deflate(dcpl.get(), unsigned(std::min(deflate_level, 9))),
                 "cannot set deflate");
    }
    return h5::dataset(id_or_fail(
        H5Dcreate2(loc, name.c_str(), ftype, sp.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
        "cannot create dataset " + name));
  }

  void write_all(hid_t dset, hid_t mtype, const void* data, const std::string& name) const {
    ok_or_fail(H5Dwrite(dset, mtype, H5S_ALL, H5S_ALL, write_dxpl, data),
               "cannot write dataset " + name);
  }

  /// Opens the group at `path` (slash-separated, relative to the root), creating missing groups.
  h5::Handle open_or_create_group(const std::string& path) const {
    const auto parts = split_path(path);
    if (parts.empty()) throw Error(ErrorKind::internal, final_path + ": empty table group name");
    h5::Handle g = h5::group(id_or_fail(H5Gopen2(file_id, "/", H5P_DEFAULT), "cannot open /"));
    std::string sofar;
    for (const auto& p : parts) {
      if (p == "." || p == "..")
        throw Error(ErrorKind::internal, final_path + ": bad group path " + path);
      sofar += "/" + p;
      if (link_exists(g.get(), p)) {
        h5::Handle o = h5::object(
            id_or_fail(H5Oopen(g.get(), p.c_str(), H5P_DEFAULT), "cannot open " + sofar));
        if (H5Iget_type(o.get()) != H5I_GROUP) {
          throw Error(ErrorKind::internal,
                      final_path + ": " + sofar + " exists and is not a group");
        }
        g = h5::group(
            id_or_fail(H5Gopen2(g.get(), p.c_str(), H5P_DEFAULT), "cannot open group " + sofar));
      } else {
        g = h5::group(id_or_fail(
            H5Gcreate2(g.get(), p.c_str(), H5P_DEFAULT, group_plist().get(), H5P_DEFAULT),
            "cannot create group " + sofar));
      }
    }
    return g;
  }

  // --- construction ---------------------------------------------------------------------------
  void validate() const {
    auto bad = [&](const std::string& msg) {
      throw Error(ErrorKind::internal, final_path + ": " + msg);
    };
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
      if (l.type == LayerType::uint16 && !(l.fill_value >= 0 && l.fill_value <= 65535 &&
                                           l.fill_value == std::floor(l.fill_value))) {
        bad("layer " + l.name + ": fill value " + fmt_double(l.fill_value) + " is not a uint16");
      }
      if (l.type == LayerType::uint8) {
        if (!(l.fill_value >= 0 && l.fill_value <= 255 &&
              l.fill_value == std::floor(l.fill_value))) {
          bad("layer " + l.name + ": fill value " + fmt_double(l.fill_value) + " is not a uint8");
        }
        for (int v : l.flag_values) {
          if (v < 0 || v > 255)
            bad("layer " + l.name + ": flag value " + std::to_string(v) + " is not a uint8");
        }
      }
    }
  }

  /// Creates an empty temporary file beside final_path (".<name>.tmp-<pid>-<random>", O_EXCL)
  /// and returns its path; `dir` is set to the output directory.
  std::string create_temp_file(std::string& dir) const {
    namespace fs = std::filesystem;
    const fs::path target(final_path);
    const std::string base = target.filename().string();
    if (base.empty() || base == "." || base == "..") {
      throw Error(ErrorKind::output, final_path + ": cannot create output file (not a file name)");
    }
    dir = output_dir(final_path);
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) {
      throw Error(ErrorKind::output, final_path + ": cannot create output file (directory " + dir +
                                         ": " + errno_text(errno) + ")");
    }
    if (!S_ISDIR(st.st_mode)) {
      throw Error(ErrorKind::output,
                  final_path + ": cannot create output file (" + dir + " is not a directory)");
    }
    if (::stat(final_path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      throw Error(ErrorKind::output, final_path + ": cannot create output file (is a directory)");
    }
    std::random_device rd;
    std::string path;
    for (int attempt = 0;; ++attempt) {
      const std::uint64_t r = (std::uint64_t(rd()) << 32) ^ rd();
      char hex[17];
      std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(r));
      path =
          (target.parent_path() / ("." + base + ".tmp-" + std::to_string(::getpid()) + "-" + hex))
              .string();
      const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd >= 0) {
        ::close(fd);
        return path;
      }
      const int err = errno;
      if (err != EEXIST || attempt >= 8) {
        throw Error(ErrorKind::output, final_path + ": cannot create temporary file " + path +
                                           " (" + errno_text(err) + ")");
      }
    }
  }

  /// File creation properties of an output: creation order tracked (as netCDF-4 does).
  Handle output_fcpl() const {
    Handle fcpl = plist(id_or_fail(H5Pcreate(H5P_FILE_CREATE), "cannot create a property list"));
    ok_or_fail(H5Pset_attr_creation_order(fcpl.get(), kCrtOrder),
               "cannot set attribute creation order");
    ok_or_fail(H5Pset_link_creation_order(fcpl.get(), kCrtOrder), "cannot set link creation order");
    return fcpl;
  }
  /// File access properties of an output. Close every open object with the file; the file is
  /// private (a temporary name), so no locking is needed.
  Handle output_fapl() const {
    Handle fapl = plist(id_or_fail(H5Pcreate(H5P_FILE_ACCESS), "cannot create a property list"));
    ok_or_fail(H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG), "cannot set file close degree");
    ok_or_fail(H5Pset_file_locking(fapl.get(), false, true), "cannot disable file locking");
    return fapl;
  }

  /// /x or /y: a coordinate variable and dimension scale.
  h5::Handle create_axis(const std::string& name, int n, double origin, double step,
                         const CrsInfo& crs) const {
    std::vector<double> v(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) v[std::size_t(i)] = origin + (i + 0.5) * step;
    h5::Handle d = create_1d(file_id, name, H5T_IEEE_F64LE, hsize_t(n), false);
    write_all(d.get(), H5T_NATIVE_DOUBLE, v.data(), name);
    ok_or_fail(H5DSset_scale(d.get(), name.c_str()), "cannot make " + name + " a dimension scale");
    const bool is_x = name == "x";
    if (!grid.georeferenced()) {
      write_string_attr(d.get(), "units", "pixel");
      write_string_attr(d.get(), "long_name",
                        is_x ? "column (pixel centre)" : "row (pixel centre)");
    } else if (crs.geographic) {
      write_string_attr(d.get(), "units", is_x ? "degrees_east" : "degrees_north");
      write_string_attr(d.get(), "standard_name", is_x ? "longitude" : "latitude");
      write_string_attr(d.get(), "long_name", is_x ? "longitude" : "latitude");
    } else {
      write_string_attr(d.get(), "units", crs.linear_units);
      write_string_attr(d.get(), "standard_name",
                        is_x ? "projection_x_coordinate" : "projection_y_coordinate");
      write_string_attr(d.get(), "long_name",
                        is_x ? "x coordinate of projection" : "y coordinate of projection");
    }
    write_string_attr(d.get(), "axis", is_x ? "X" : "Y");
    return d;
  }

  void create_crs(const CrsInfo& crs) const {
    h5::Handle sp = h5::dataspace(id_or_fail(H5Screate(H5S_SCALAR), "cannot create a dataspace"));
    h5::Handle d =
        h5::dataset(id_or_fail(H5Dcreate2(file_id, "crs", H5T_STD_I32LE, sp.get(), H5P_DEFAULT,
                                          dataset_plist().get(), H5P_DEFAULT),
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
    h5::Handle sp =
        h5::dataspace(id_or_fail(H5Screate_simple(2, dims, maxdims), "cannot create a dataspace"));
    h5::Handle dcpl = dataset_plist();
    const hsize_t chunk[2] = {c, c};
    ok_or_fail(H5Pset_chunk(dcpl.get(), 2, chunk), "cannot set chunking of " + l.name);
    const int level = layer_level(l, deflate_level);
    if (level > 0) {
      ok_or_fail(H5Pset_shuffle(dcpl.get()), "cannot set shuffle on " + l.name);
      ok_or_fail(H5Pset_deflate(dcpl.get(), unsigned(std::min(level, 9))),
                 "cannot set deflate on " + l.name);
    }
    const float ffill = static_cast<float>(l.fill_value);
    const auto ufill = static_cast<std::uint8_t>(l.fill_value);
    const auto u16fill = static_cast<std::uint16_t>(l.fill_value);
    const void* fill = l.type == LayerType::float32  ? static_cast<const void*>(&ffill)
                       : l.type == LayerType::uint16 ? static_cast<const void*>(&u16fill)
                                                     : &ufill;
    ok_or_fail(H5Pset_fill_value(dcpl.get(), mem_type(l.type), fill),
               "cannot set fill value of " + l.name);
    h5::Handle d =
        h5::dataset(id_or_fail(H5Dcreate2(file_id, l.name.c_str(), file_type(l.type), sp.get(),
                                          H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                               "cannot create dataset " + l.name));
    write_scalar_attr(d.get(), "_FillValue", file_type(l.type), mem_type(l.type), fill);
    if (!l.long_name.empty()) write_string_attr(d.get(), "long_name", l.long_name);
    if (!l.units.empty()) write_string_attr(d.get(), "units", l.units);
    if (l.scale_factor > 0) {
      // CF packing: readers unpack to value x scale_factor + add_offset (as doubles).
      const double offset = 0.0;
      write_scalar_attr(d.get(), "scale_factor", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                        &l.scale_factor);
      write_scalar_attr(d.get(), "add_offset", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &offset);
    }
    if (grid.georeferenced()) write_string_attr(d.get(), "grid_mapping", "crs");
    if (!l.flag_values.empty()) {
      if (l.type != LayerType::uint8) {
        std::vector<float> fv(l.flag_values.begin(), l.flag_values.end());
        write_array_attr(d.get(), "flag_values", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, fv.data(),
                         fv.size());
      } else {
        std::vector<std::uint8_t> fv;
        for (int v : l.flag_values) fv.push_back(static_cast<std::uint8_t>(v));
        write_array_attr(d.get(), "flag_values", H5T_STD_U8LE, H5T_NATIVE_UCHAR, fv.data(),
                         fv.size());
      }
    }
    if (!l.flag_meanings.empty()) write_string_attr(d.get(), "flag_meanings", l.flag_meanings);
    ok_or_fail(H5DSattach_scale(d.get(), yscale, 0), "cannot attach y to " + l.name);
    ok_or_fail(H5DSattach_scale(d.get(), xscale, 1), "cannot attach x to " + l.name);
    return d;
  }

  /// Conventions, /x, /y, /crs (when georeferenced) and one dataset per layer, in file_id;
  /// returns the layer datasets in the order of `layers`.
  std::vector<Handle> create_layout() const {
    write_string_attr(file_id, "Conventions", "CF-1.8");
    const CrsInfo crs = grid.georeferenced() ? describe_crs(grid.crs_wkt) : CrsInfo{};
    const auto& g = grid.geotransform;
    Handle x = create_axis("x", grid.width, g[0], g[1], crs);
    Handle y = create_axis("y", grid.height, g[3], g[5], crs);
    if (grid.georeferenced()) create_crs(crs);
    std::vector<Handle> datasets;
    for (const auto& l : layers) datasets.push_back(create_layer(l, x.get(), y.get()));
    ok_or_fail(x.close(), "cannot close x");
    ok_or_fail(y.close(), "cannot close y");
    return datasets;
  }
};

}  // namespace aftermath::h5
