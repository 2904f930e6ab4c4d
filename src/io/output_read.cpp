// Reading back an output for rescore / evaluate / report: footprints from WKT, attributes, raw
// chunks (decoded with libdeflate, as encode_chunk wrote them), and atomic group updates.
#include "aftermath/io/output_read.hpp"

#include <fcntl.h>
#include <hdf5_hl.h>
#include <libdeflate.h>
#include <ogr_geometry.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <random>

#include "aftermath/core/error.hpp"
#include "aftermath/io/hdf5_reader.hpp"
#include "gdal_util.hpp"
#include "hdf5_util.hpp"

namespace aftermath {

namespace fs = std::filesystem;

namespace {

void append_polygon_rings(const OGRPolygon* poly, const Grid& grid,
                          std::vector<std::vector<cv::Point2d>>& rings) {
  for (int r = -1; r < poly->getNumInteriorRings(); ++r) {
    const OGRLinearRing* ring = r < 0 ? poly->getExteriorRing() : poly->getInteriorRing(r);
    if (!ring) continue;
    std::vector<cv::Point2d> pts;
    const int n = ring->getNumPoints();
    pts.reserve(static_cast<std::size_t>(n));
    for (int k = 0; k < n; ++k) pts.push_back(grid.map_to_pixel(ring->getX(k), ring->getY(k)));
    if (pts.size() > 1 && pts.front() == pts.back()) pts.pop_back();
    if (pts.size() >= 3) rings.push_back(std::move(pts));
  }
}

/// The geometry of a WKT string, or nullptr for an empty or unreadable one (GDAL's message kept
/// out of the log).
std::unique_ptr<OGRGeometry> parse_wkt(const std::string& wkt) {
  if (wkt.empty()) return nullptr;
  io_detail::ErrorCapture cap;
  OGRGeometry* raw = nullptr;
  if (OGRGeometryFactory::createFromWkt(wkt.c_str(), nullptr, &raw) != OGRERR_NONE || !raw) {
    delete raw;
    return nullptr;
  }
  return std::unique_ptr<OGRGeometry>(raw);
}

[[noreturn]] void h5fail(ErrorKind kind, const std::string& path, const std::string& what) {
  const std::string cause = h5::last_error();
  throw Error(kind, path + ": " + what + (cause.empty() ? "" : " (" + cause + ")"));
}

}  // namespace

std::vector<std::vector<cv::Point2d>> rings_from_wkt(const std::string& wkt, const Grid& grid) {
  std::vector<std::vector<cv::Point2d>> rings;
  const auto g = parse_wkt(wkt);
  if (!g) return rings;
  const auto type = wkbFlatten(g->getGeometryType());
  if (type == wkbPolygon) {
    append_polygon_rings(g->toPolygon(), grid, rings);
  } else if (type == wkbMultiPolygon) {
    const OGRMultiPolygon* m = g->toMultiPolygon();
    for (int i = 0; i < m->getNumGeometries(); ++i)
      append_polygon_rings(m->getGeometryRef(i), grid, rings);
  }
  return rings;
}

std::vector<std::vector<cv::Point2d>> lines_from_wkt(const std::string& wkt, const Grid& grid) {
  std::vector<std::vector<cv::Point2d>> lines;
  const auto g = parse_wkt(wkt);
  if (!g) return lines;
  const auto add = [&](const OGRLineString* l) {
    std::vector<cv::Point2d> pts;
    for (int k = 0; k < l->getNumPoints(); ++k)
      pts.push_back(grid.map_to_pixel(l->getX(k), l->getY(k)));
    if (pts.size() >= 2) lines.push_back(std::move(pts));
  };
  const auto type = wkbFlatten(g->getGeometryType());
  if (type == wkbLineString) {
    add(g->toLineString());
  } else if (type == wkbMultiLineString) {
    const OGRMultiLineString* m = g->toMultiLineString();
    for (int i = 0; i < m->getNumGeometries(); ++i) add(m->getGeometryRef(i));
  }
  return lines;
}

std::vector<Footprint> read_output_footprints(const Hdf5Reader& reader, const Grid& grid) {
  std::vector<Footprint> out;
  if (!reader.has("/footprints/geometry_wkt")) return out;
  const auto ids = reader.column_int64("footprints/id");
  const auto sids = reader.column_string("footprints/source_id");
  const auto kinds = reader.column_uint8("footprints/kind");
  const auto wkts = reader.column_string("footprints/geometry_wkt");
  std::vector<std::uint8_t> truth;
  if (reader.has("/footprints/truth_class")) truth = reader.column_uint8("footprints/truth_class");
  std::vector<std::uint8_t> geometry;
  std::vector<std::int64_t> segment;
  std::vector<std::string> centerline;
  if (reader.has("/footprints/source_geometry"))
    geometry = reader.column_uint8("footprints/source_geometry");
  if (reader.has("/footprints/segment")) segment = reader.column_int64("footprints/segment");
  if (reader.has("/footprints/centerline_wkt"))
    centerline = reader.column_string("footprints/centerline_wkt");
  const std::size_t n = wkts.size();
  if (ids.size() != n || sids.size() != n || kinds.size() != n ||
      (!truth.empty() && truth.size() != n) || (!geometry.empty() && geometry.size() != n) ||
      (!segment.empty() && segment.size() != n) ||
      (!centerline.empty() && centerline.size() != n)) {
    throw Error(ErrorKind::input, "the /footprints table has columns of different lengths");
  }
  out.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    Footprint& f = out[i];
    f.id = ids[i];
    f.source_id = sids[i];
    f.kind = static_cast<FeatureKind>(kinds[i]);
    f.wkt = wkts[i];
    f.truth = truth.empty() ? DamageClass::unclassified : static_cast<DamageClass>(truth[i]);
    f.rings = rings_from_wkt(f.wkt, grid);
    if (!geometry.empty() && geometry[i] <= 2)
      f.source_geometry = static_cast<SourceGeometry>(geometry[i]);
    if (!segment.empty()) f.segment = static_cast<int>(segment[i]);
    if (!centerline.empty()) {
      f.centerline_wkt = centerline[i];
      f.centerline = lines_from_wkt(f.centerline_wkt, grid);
    }
    finalize_geometry(f);
  }
  return out;
}

std::map<std::string, AttrValue> read_attributes(const std::string& path,
                                                 const std::string& object_path) {
  h5::silence_errors();
  h5::Handle file = h5::file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!file) h5fail(ErrorKind::input, path, "cannot open");
  h5::Handle obj = h5::object(H5Oopen(file.get(), object_path.c_str(), H5P_DEFAULT));
  if (!obj) h5fail(ErrorKind::input, path, "no object " + object_path);
  std::map<std::string, AttrValue> out;
  H5O_info_t info;
  if (H5Oget_info2(obj.get(), &info, H5O_INFO_NUM_ATTRS) < 0)
    h5fail(ErrorKind::input, path, "cannot inspect " + object_path);
  for (hsize_t i = 0; i < info.num_attrs; ++i) {
    h5::Handle a = h5::attribute(
        H5Aopen_by_idx(obj.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, H5P_DEFAULT, H5P_DEFAULT));
    if (!a) continue;
    const ssize_t name_len = H5Aget_name(a.get(), 0, nullptr);
    std::string name(static_cast<std::size_t>(std::max<ssize_t>(name_len, 0)), '\0');
    H5Aget_name(a.get(), name.size() + 1, name.data());
    h5::Handle t = h5::datatype(H5Aget_type(a.get()));
    h5::Handle s = h5::dataspace(H5Aget_space(a.get()));
    const hssize_t npts = H5Sget_simple_extent_npoints(s.get());
    const H5T_class_t c = H5Tget_class(t.get());
    if (c == H5T_STRING) {
      if (npts != 1) continue;
      if (H5Tis_variable_str(t.get()) > 0) {
        char* p = nullptr;
        h5::Handle mt = h5::datatype(H5Tcopy(H5T_C_S1));
        H5Tset_size(mt.get(), H5T_VARIABLE);
        H5Tset_cset(mt.get(), H5Tget_cset(t.get()));
        if (H5Aread(a.get(), mt.get(), &p) < 0) continue;
        out[name] = std::string(p ? p : "");
        H5free_memory(p);
      } else {
        const std::size_t size = H5Tget_size(t.get());
        std::string v(size, '\0');
        if (H5Aread(a.get(), t.get(), v.data()) < 0) continue;
        v.resize(std::strlen(v.c_str()));
        out[name] = v;
      }
    } else if (c == H5T_INTEGER && npts == 1) {
      std::int64_t v = 0;
      if (H5Aread(a.get(), H5T_NATIVE_INT64, &v) >= 0) out[name] = v;
    } else if (c == H5T_FLOAT || c == H5T_INTEGER) {
      std::vector<double> v(static_cast<std::size_t>(std::max<hssize_t>(npts, 0)));
      if (H5Aread(a.get(), H5T_NATIVE_DOUBLE, v.data()) < 0) continue;
      const bool scalar = H5Sget_simple_extent_type(s.get()) == H5S_SCALAR;
      if (scalar && v.size() == 1)
        out[name] = v[0];
      else
        out[name] = v;
    }
  }
  return out;
}

Table read_table(const std::string& path, const std::string& group, const std::string& dimension) {
  h5::silence_errors();
  Table t;
  t.group = group;
  t.dimension = dimension;
  h5::Handle file = h5::file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!file) h5fail(ErrorKind::input, path, "cannot open");
  const std::string gpath = "/" + group;
  h5::Handle g = h5::group(H5Gopen2(file.get(), gpath.c_str(), H5P_DEFAULT));
  if (!g) h5fail(ErrorKind::input, path, "no group " + gpath);
  H5G_info_t info;
  H5Gget_info(g.get(), &info);
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t len =
        H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    std::string name(static_cast<std::size_t>(std::max<ssize_t>(len, 0)), '\0');
    H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size() + 1,
                       H5P_DEFAULT);
    if (name != dimension) names.push_back(name);
  }
  Hdf5Reader reader(path);
  for (const auto& name : names) {
    const std::string dpath = gpath + "/" + name;
    H5O_info_t oi;
    if (H5Oget_info_by_name2(file.get(), dpath.c_str(), &oi, H5O_INFO_BASIC, H5P_DEFAULT) < 0 ||
        oi.type != H5O_TYPE_DATASET)
      continue;
    h5::Handle d = h5::dataset(H5Dopen2(file.get(), dpath.c_str(), H5P_DEFAULT));
    h5::Handle ty = h5::datatype(H5Dget_type(d.get()));
    Column c;
    c.name = name;
    const H5T_class_t cls = H5Tget_class(ty.get());
    const std::string rel = group + "/" + name;
    if (cls == H5T_FLOAT)
      c.values = reader.column_double(rel);
    else if (cls == H5T_INTEGER && H5Tget_size(ty.get()) == 1)
      c.values = reader.column_uint8(rel);
    else if (cls == H5T_INTEGER)
      c.values = reader.column_int64(rel);
    else if (cls == H5T_STRING)
      c.values = reader.column_string(rel);
    else
      continue;
    for (auto& [k, v] : read_attributes(path, dpath)) {
      if (k == "long_name")
        c.long_name = std::get<std::string>(v);
      else if (k == "units")
        c.units = std::get<std::string>(v);
      else if (k != "DIMENSION_LIST" && k != "REFERENCE_LIST" && k != "CLASS" && k != "NAME")
        c.attributes[k] = v;
    }
    t.columns.push_back(std::move(c));
  }
  for (auto& [k, v] : read_attributes(path, gpath)) t.attributes[k] = v;
  return t;
}

// ------------------------------------------------------------------------------------------------

struct Hdf5ChunkReader::Impl {
  std::string path;
  h5::Handle file, dset;
  int chunk = 0;
  bool filtered = false;
  int level = 0;
  int element_size = 0;
};

Hdf5ChunkReader::Hdf5ChunkReader(const std::string& path, const std::string& layer)
    : impl_(std::make_unique<Impl>()) {
  h5::silence_errors();
  impl_->path = path;
  impl_->file = h5::file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!impl_->file) h5fail(ErrorKind::input, path, "cannot open");
  impl_->dset = h5::dataset(H5Dopen2(impl_->file.get(), layer.c_str(), H5P_DEFAULT));
  if (!impl_->dset) h5fail(ErrorKind::input, path, "no layer " + layer);
  h5::Handle dcpl = h5::plist(H5Dget_create_plist(impl_->dset.get()));
  hsize_t dims[2] = {0, 0};
  if (H5Pget_layout(dcpl.get()) != H5D_CHUNKED || H5Pget_chunk(dcpl.get(), 2, dims) != 2 ||
      dims[0] != dims[1]) {
    throw Error(ErrorKind::input, path + ": layer " + layer + " is not stored in square chunks");
  }
  impl_->chunk = static_cast<int>(dims[0]);
  {
    h5::Handle t = h5::datatype(H5Dget_type(impl_->dset.get()));
    impl_->element_size = static_cast<int>(H5Tget_size(t.get()));
  }
  const int nf = H5Pget_nfilters(dcpl.get());
  impl_->filtered = nf > 0;
  for (int i = 0; i < nf; ++i) {
    unsigned flags = 0, cd[8] = {0};
    size_t ncd = 8;
    char name[64];
    unsigned config = 0;
    const H5Z_filter_t id = H5Pget_filter2(dcpl.get(), static_cast<unsigned>(i), &flags, &ncd, cd,
                                           sizeof name, name, &config);
    if (id == H5Z_FILTER_DEFLATE && ncd >= 1)
      impl_->level = static_cast<int>(cd[0]);
    else if (id != H5Z_FILTER_SHUFFLE && id != H5Z_FILTER_DEFLATE) {
      throw Error(ErrorKind::input,
                  path + ": layer " + layer + " uses a filter other than shuffle + deflate");
    }
  }
}

Hdf5ChunkReader::~Hdf5ChunkReader() = default;
int Hdf5ChunkReader::chunk_size() const { return impl_->chunk; }
bool Hdf5ChunkReader::filtered() const { return impl_->filtered; }
int Hdf5ChunkReader::deflate_level() const { return impl_->level; }
int Hdf5ChunkReader::element_size() const { return impl_->element_size; }

EncodedChunk Hdf5ChunkReader::read(int x, int y) const {
  const hsize_t offset[2] = {static_cast<hsize_t>(y), static_cast<hsize_t>(x)};
  hsize_t nbytes = 0;
  if (H5Dget_chunk_storage_size(impl_->dset.get(), offset, &nbytes) < 0 || nbytes == 0) {
    h5fail(ErrorKind::input, impl_->path,
           "missing chunk at (" + std::to_string(x) + ", " + std::to_string(y) + ")");
  }
  EncodedChunk c;
  c.bytes.resize(nbytes);
  std::uint32_t mask = 0;
  if (H5Dread_chunk(impl_->dset.get(), H5P_DEFAULT, offset, &mask, c.bytes.data()) < 0) {
    h5fail(ErrorKind::input, impl_->path,
           "cannot read the chunk at (" + std::to_string(x) + ", " + std::to_string(y) + ")");
  }
  if (mask != 0)
    throw Error(ErrorKind::input, impl_->path + ": a chunk was stored with filters skipped");
  return c;
}

cv::Mat decode_chunk(const LayerSpec& spec, const EncodedChunk& chunk, int chunk_size,
                     bool filtered) {
  const int type = h5::cv_type(spec.type);
  const std::size_t s = h5::element_size(spec.type);
  const std::size_t n = std::size_t(chunk_size) * std::size_t(chunk_size);
  const std::size_t nbytes = n * s;
  cv::Mat out(chunk_size, chunk_size, type);
  auto* dst = out.ptr<std::uint8_t>(0);
  if (!filtered) {
    if (chunk.bytes.size() != nbytes)
      throw Error(ErrorKind::input, "decode_chunk: raw chunk of unexpected size");
    std::memcpy(dst, chunk.bytes.data(), nbytes);
    return out;
  }
  struct Free {
    void operator()(libdeflate_decompressor* d) const { libdeflate_free_decompressor(d); }
  };
  thread_local std::unique_ptr<libdeflate_decompressor, Free> dec(libdeflate_alloc_decompressor());
  std::vector<std::uint8_t> tmp(s > 1 ? nbytes : 0);
  std::uint8_t* target = s > 1 ? tmp.data() : dst;
  std::size_t got = 0;
  if (libdeflate_zlib_decompress(dec.get(), chunk.bytes.data(), chunk.bytes.size(), target, nbytes,
                                 &got) != LIBDEFLATE_SUCCESS ||
      got != nbytes) {
    throw Error(ErrorKind::input, "decode_chunk: corrupt deflate stream in layer " + spec.name);
  }
  if (s > 1) {  // unshuffle: byte j of element i is at [j*n + i]
    for (std::size_t j = 0; j < s; ++j) {
      const std::uint8_t* src = tmp.data() + j * n;
      std::uint8_t* d = dst + j;
      for (std::size_t i = 0; i < n; ++i) d[i * s] = src[i];
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------------------

namespace {

void write_string_attr(hid_t loc, const std::string& name, const std::string& value) {
  h5::Handle t = h5::datatype(H5Tcopy(H5T_C_S1));
  H5Tset_size(t.get(), std::max<std::size_t>(value.size(), 1));
  H5Tset_strpad(t.get(), H5T_STR_NULLTERM);
  H5Tset_cset(t.get(), H5T_CSET_UTF8);
  h5::Handle s = h5::dataspace(H5Screate(H5S_SCALAR));
  if (H5Aexists(loc, name.c_str()) > 0) H5Adelete(loc, name.c_str());
  h5::Handle a =
      h5::attribute(H5Acreate2(loc, name.c_str(), t.get(), s.get(), H5P_DEFAULT, H5P_DEFAULT));
  std::string buf = value;
  buf.resize(std::max<std::size_t>(value.size(), 1), '\0');
  if (!a || H5Awrite(a.get(), t.get(), buf.data()) < 0)
    throw Error(ErrorKind::output, "cannot write attribute " + name);
}

void write_attr(hid_t loc, const std::string& name, const AttrValue& v) {
  if (const auto* s = std::get_if<std::string>(&v)) return write_string_attr(loc, name, *s);
  if (H5Aexists(loc, name.c_str()) > 0) H5Adelete(loc, name.c_str());
  std::vector<double> dv;
  hid_t ftype = H5T_IEEE_F64LE, mtype = H5T_NATIVE_DOUBLE;
  const void* data = nullptr;
  std::int64_t iv = 0;
  h5::Handle space;
  if (const auto* d = std::get_if<double>(&v)) {
    dv = {*d};
    data = dv.data();
    space = h5::dataspace(H5Screate(H5S_SCALAR));
  } else if (const auto* i = std::get_if<std::int64_t>(&v)) {
    iv = *i;
    data = &iv;
    ftype = H5T_STD_I64LE;
    mtype = H5T_NATIVE_INT64;
    space = h5::dataspace(H5Screate(H5S_SCALAR));
  } else {
    dv = std::get<std::vector<double>>(v);
    const hsize_t n = dv.size();
    space = h5::dataspace(H5Screate_simple(1, &n, nullptr));
    data = dv.data();
  }
  h5::Handle a =
      h5::attribute(H5Acreate2(loc, name.c_str(), ftype, space.get(), H5P_DEFAULT, H5P_DEFAULT));
  if (!a || H5Awrite(a.get(), mtype, data) < 0)
    throw Error(ErrorKind::output, "cannot write attribute " + name);
}

hid_t create_group_path(hid_t file, const std::string& path) {
  h5::Handle lcpl = h5::plist(H5Pcreate(H5P_LINK_CREATE));
  H5Pset_create_intermediate_group(lcpl.get(), 1);
  if (H5Lexists(file, path.c_str(), H5P_DEFAULT) > 0)
    return H5Gopen2(file, path.c_str(), H5P_DEFAULT);
  return H5Gcreate2(file, path.c_str(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT);
}

void write_table(hid_t file, const Table& t) {
  h5::Handle g = h5::group(create_group_path(file, "/" + t.group));
  if (!g) throw Error(ErrorKind::output, "cannot create group " + t.group);
  for (const Column& c : t.columns) {
    const hsize_t n = std::visit([](const auto& v) { return hsize_t(v.size()); }, c.values);
    h5::Handle space = h5::dataspace(H5Screate_simple(1, &n, nullptr));
    h5::Handle d;
    herr_t st = 0;
    if (const auto* v = std::get_if<std::vector<double>>(&c.values)) {
      d = h5::dataset(H5Dcreate2(g.get(), c.name.c_str(), H5T_IEEE_F64LE, space.get(), H5P_DEFAULT,
                                 H5P_DEFAULT, H5P_DEFAULT));
      if (d && n)
        st = H5Dwrite(d.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v->data());
    } else if (const auto* v = std::get_if<std::vector<std::int64_t>>(&c.values)) {
      d = h5::dataset(H5Dcreate2(g.get(), c.name.c_str(), H5T_STD_I64LE, space.get(), H5P_DEFAULT,
                                 H5P_DEFAULT, H5P_DEFAULT));
      if (d && n)
        st = H5Dwrite(d.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v->data());
    } else if (const auto* v = std::get_if<std::vector<std::uint8_t>>(&c.values)) {
      d = h5::dataset(H5Dcreate2(g.get(), c.name.c_str(), H5T_STD_U8LE, space.get(), H5P_DEFAULT,
                                 H5P_DEFAULT, H5P_DEFAULT));
      if (d && n)
        st = H5Dwrite(d.get(), H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, v->data());
    } else {
      const auto& sv = std::get<std::vector<std::string>>(c.values);
      h5::Handle ty = h5::datatype(H5Tcopy(H5T_C_S1));
      H5Tset_size(ty.get(), H5T_VARIABLE);
      H5Tset_cset(ty.get(), H5T_CSET_UTF8);
      d = h5::dataset(H5Dcreate2(g.get(), c.name.c_str(), ty.get(), space.get(), H5P_DEFAULT,
                                 H5P_DEFAULT, H5P_DEFAULT));
      std::vector<const char*> ptrs;
      for (const auto& s : sv) ptrs.push_back(s.c_str());
      if (d && n) st = H5Dwrite(d.get(), ty.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data());
    }
    if (!d || st < 0)
      throw Error(ErrorKind::output,
                  "cannot write " + t.group + "/" + c.name + " (" + h5::last_error() + ")");
    if (!c.long_name.empty()) write_string_attr(d.get(), "long_name", c.long_name);
    if (!c.units.empty()) write_string_attr(d.get(), "units", c.units);
    for (const auto& [k, v] : c.attributes) write_attr(d.get(), k, v);
  }
  for (const auto& [k, v] : t.attributes) write_attr(g.get(), k, v);
}

}  // namespace

void store_group_atomically(const std::string& path, const std::string& group,
                            const std::vector<Table>& tables,
                            const std::map<std::string, AttrValue>& attributes) {
  h5::silence_errors();
  const fs::path target(path);
  std::random_device rd;
  std::string name = ".";
  name.append(target.filename().string()).append(".tmp-").append(std::to_string(::getpid()));
  name.append("-").append(std::to_string(rd()));
  const fs::path temp = target.parent_path() / name;
  std::error_code ec;
  fs::copy_file(target, temp, fs::copy_options::overwrite_existing, ec);
  if (ec)
    throw Error(ErrorKind::output,
                path + ": cannot copy to " + temp.string() + " (" + ec.message() + ")");
  try {
    {
      h5::Handle file = h5::file(H5Fopen(temp.c_str(), H5F_ACC_RDWR, H5P_DEFAULT));
      if (!file) h5fail(ErrorKind::output, temp.string(), "cannot open for writing");
      const std::string g = "/" + group;
      if (H5Lexists(file.get(), g.c_str(), H5P_DEFAULT) > 0)
        H5Ldelete(file.get(), g.c_str(), H5P_DEFAULT);
      {
        h5::Handle grp = h5::group(create_group_path(file.get(), g));
        if (!grp) h5fail(ErrorKind::output, temp.string(), "cannot create " + g);
        for (const auto& [k, v] : attributes) write_attr(grp.get(), k, v);
      }
      for (const auto& t : tables) write_table(file.get(), t);
      if (file.close() < 0) h5fail(ErrorKind::output, temp.string(), "cannot close");
    }
    const int fd = ::open(temp.c_str(), O_RDONLY);
    if (fd < 0 || ::fsync(fd) != 0) {
      if (fd >= 0) ::close(fd);
      throw Error(ErrorKind::output, temp.string() + ": cannot fsync");
    }
    ::close(fd);
    fs::rename(temp, target, ec);
    if (ec)
      throw Error(ErrorKind::output,
                  path + ": cannot rename the updated file into place (" + ec.message() + ")");
  } catch (...) {
    fs::remove(temp, ec);
    throw;
  }
}

}  // namespace aftermath
