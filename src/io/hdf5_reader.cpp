#include "aftermath/io/hdf5_reader.hpp"

#include <cstring>
#include <filesystem>
#include <sstream>

#include "aftermath/core/error.hpp"
#include "hdf5_util.hpp"

namespace aftermath {

struct Hdf5Reader::Impl {
  std::string path;
  h5::Handle file;
};

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  const std::string cause = h5::last_error();
  throw Error(ErrorKind::input, path + ": " + what + (cause.empty() ? "" : " (" + cause + ")"));
}

struct FileRef {
  hid_t file;
  const std::string& path;
};

h5::Handle open_dataset(const FileRef& m, const std::string& name) {
  if (H5Lexists(m.file, name.c_str(), H5P_DEFAULT) <= 0) fail(m.path, "no dataset " + name);
  h5::Handle d = h5::dataset(H5Dopen2(m.file, name.c_str(), H5P_DEFAULT));
  if (!d) fail(m.path, "cannot open dataset " + name);
  return d;
}

template <typename T>
std::vector<T> read_1d(const FileRef& m, const std::string& name, hid_t mem_type) {
  h5::Handle d = open_dataset(m, name);
  h5::Handle s = h5::dataspace(H5Dget_space(d.get()));
  const hssize_t n = H5Sget_simple_extent_npoints(s.get());
  std::vector<T> v(static_cast<std::size_t>(std::max<hssize_t>(n, 0)));
  if (n > 0 && H5Dread(d.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) < 0) {
    fail(m.path, "cannot read " + name);
  }
  return v;
}

}  // namespace

Hdf5Reader::Hdf5Reader(const std::string& path) : impl_(std::make_unique<Impl>()) {
  impl_->path = path;
  h5::silence_errors();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw Error(ErrorKind::input, path + ": no such file");
  if (H5Fis_hdf5(path.c_str()) <= 0) throw Error(ErrorKind::input, path + ": not an HDF5 file");
  impl_->file = h5::file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!impl_->file) throw Error(ErrorKind::input, path + ": cannot open (" + h5::last_error() + ")");
}

Hdf5Reader::~Hdf5Reader() = default;

bool Hdf5Reader::has(const std::string& object_path) const {
  if (object_path == "/") return true;
  // Check each link of the path so that a missing intermediate group is not an error.
  std::string acc;
  std::stringstream ss(object_path);
  std::string part;
  while (std::getline(ss, part, '/')) {
    if (part.empty()) continue;
    acc += "/" + part;
    if (H5Lexists(impl_->file.get(), acc.c_str(), H5P_DEFAULT) <= 0) return false;
  }
  return true;
}

std::optional<std::string> Hdf5Reader::string_attribute(const std::string& object_path,
                                                        const std::string& name) const {
  if (!has(object_path)) return std::nullopt;
  if (H5Aexists_by_name(impl_->file.get(), object_path.c_str(), name.c_str(), H5P_DEFAULT) <= 0) return std::nullopt;
  h5::Handle a = h5::attribute(H5Aopen_by_name(impl_->file.get(), object_path.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT));
  h5::Handle t = h5::datatype(H5Aget_type(a.get()));
  if (H5Tget_class(t.get()) != H5T_STRING) return std::nullopt;
  if (H5Tis_variable_str(t.get()) > 0) {
    char* s = nullptr;
    h5::Handle mt = h5::datatype(H5Tcopy(H5T_C_S1));
    H5Tset_size(mt.get(), H5T_VARIABLE);
    if (H5Aread(a.get(), mt.get(), &s) < 0 || s == nullptr) return std::nullopt;
    std::string out(s);
    H5free_memory(s);
    return out;
  }
  const std::size_t n = H5Tget_size(t.get());
  std::string buf(n, '\0');
  if (H5Aread(a.get(), t.get(), buf.data()) < 0) return std::nullopt;
  buf.resize(std::strlen(buf.c_str()));
  return buf;
}

std::optional<double> Hdf5Reader::number_attribute(const std::string& object_path, const std::string& name) const {
  if (!has(object_path)) return std::nullopt;
  if (H5Aexists_by_name(impl_->file.get(), object_path.c_str(), name.c_str(), H5P_DEFAULT) <= 0) return std::nullopt;
  h5::Handle a = h5::attribute(H5Aopen_by_name(impl_->file.get(), object_path.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT));
  h5::Handle t = h5::datatype(H5Aget_type(a.get()));
  const H5T_class_t c = H5Tget_class(t.get());
  if (c != H5T_FLOAT && c != H5T_INTEGER) return std::nullopt;
  h5::Handle s = h5::dataspace(H5Aget_space(a.get()));
  if (H5Sget_simple_extent_npoints(s.get()) != 1) return std::nullopt;
  double v = 0;
  if (H5Aread(a.get(), H5T_NATIVE_DOUBLE, &v) < 0) return std::nullopt;
  return v;
}

Grid Hdf5Reader::grid() const {
  Grid g;
  const auto x = column_double("/x"), y = column_double("/y");
  g.width = static_cast<int>(x.size());
  g.height = static_cast<int>(y.size());
  if (auto wkt = string_attribute("/crs", "crs_wkt")) {
    g.crs_wkt = *wkt;
    if (auto gt = string_attribute("/crs", "GeoTransform")) {
      std::istringstream in(*gt);
      for (auto& v : g.geotransform) in >> v;
      if (!in) fail(impl_->path, "malformed /crs GeoTransform '" + *gt + "'");
    }
  }
  return g;
}

cv::Mat Hdf5Reader::layer(const std::string& name) const {
  const Grid g = grid();
  return layer(name, Window{0, 0, g.width, g.height});
}

cv::Mat Hdf5Reader::layer(const std::string& name, const Window& w) const {
  h5::Handle d = open_dataset(FileRef{impl_->file.get(), impl_->path}, name);
  h5::Handle t = h5::datatype(H5Dget_type(d.get()));
  const bool is_float = H5Tget_class(t.get()) == H5T_FLOAT;
  const bool is_u16 = !is_float && H5Tget_size(t.get()) == 2;
  const int type = is_float ? CV_32F : is_u16 ? CV_16U : CV_8U;
  const hid_t mem = is_float ? H5T_NATIVE_FLOAT : is_u16 ? H5T_NATIVE_USHORT : H5T_NATIVE_UCHAR;
  cv::Mat out(w.height, w.width, type);
  h5::Handle fs = h5::dataspace(H5Dget_space(d.get()));
  hsize_t dims[2] = {0, 0};
  if (H5Sget_simple_extent_ndims(fs.get()) != 2) fail(impl_->path, name + " is not a 2-D layer");
  H5Sget_simple_extent_dims(fs.get(), dims, nullptr);
  if (w.x < 0 || w.y < 0 || hsize_t(w.x + w.width) > dims[1] || hsize_t(w.y + w.height) > dims[0]) {
    fail(impl_->path, "window outside layer " + name);
  }
  if (w.empty()) return out;
  const hsize_t start[2] = {hsize_t(w.y), hsize_t(w.x)}, count[2] = {hsize_t(w.height), hsize_t(w.width)};
  H5Sselect_hyperslab(fs.get(), H5S_SELECT_SET, start, nullptr, count, nullptr);
  h5::Handle ms = h5::dataspace(H5Screate_simple(2, count, nullptr));
  if (H5Dread(d.get(), mem, ms.get(), fs.get(), H5P_DEFAULT, out.data) < 0) {
    fail(impl_->path, "cannot read layer " + name + " (" + h5::last_error() + ")");
  }
  return out;
}

std::vector<double> Hdf5Reader::column_double(const std::string& p) const { return read_1d<double>(FileRef{impl_->file.get(), impl_->path}, p, H5T_NATIVE_DOUBLE); }
std::vector<std::int64_t> Hdf5Reader::column_int64(const std::string& p) const {
  return read_1d<std::int64_t>(FileRef{impl_->file.get(), impl_->path}, p, H5T_NATIVE_INT64);
}
std::vector<std::uint8_t> Hdf5Reader::column_uint8(const std::string& p) const {
  return read_1d<std::uint8_t>(FileRef{impl_->file.get(), impl_->path}, p, H5T_NATIVE_UINT8);
}

std::vector<std::string> Hdf5Reader::column_string(const std::string& p) const {
  h5::Handle d = open_dataset(FileRef{impl_->file.get(), impl_->path}, p);
  h5::Handle s = h5::dataspace(H5Dget_space(d.get()));
  const hssize_t n = H5Sget_simple_extent_npoints(s.get());
  std::vector<std::string> out;
  if (n <= 0) return out;
  h5::Handle mt = h5::datatype(H5Tcopy(H5T_C_S1));
  H5Tset_size(mt.get(), H5T_VARIABLE);
  H5Tset_cset(mt.get(), H5T_CSET_UTF8);
  std::vector<char*> raw(static_cast<std::size_t>(n), nullptr);
  if (H5Dread(d.get(), mt.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()) < 0) fail(impl_->path, "cannot read " + p);
  for (char* c : raw) out.emplace_back(c ? c : "");
  H5Dvlen_reclaim(mt.get(), s.get(), H5P_DEFAULT, raw.data());
  return out;
}

}  // namespace aftermath
