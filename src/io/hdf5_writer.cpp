// The HDF5 output file, laid out as netCDF-4 / CF-1.8 (see hdf5_writer.hpp). The layout code
// (coordinates, grid mapping, layer datasets, attributes) is in hdf5_layout.hpp, shared with the
// collective writer (hdf5_parallel_writer.cpp).
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
#include "aftermath/io/hdf5_writer.hpp"

#include <fcntl.h>
#include <hdf5.h>
#include <libdeflate.h>
#include <unistd.h>
#include <zlib.h>

#include <array>
#include <bit>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <set>

#include "aftermath/core/error.hpp"
#include "hdf5_layout.hpp"
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

using h5::check_level;
using h5::cv_type;
using h5::cv_type_name;
using h5::element_size;
using h5::kMaxDeflateLevel;
using h5::layer_level;
using h5::errno_text;
using h5::link_exists;
using h5::valid_name;

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

/// Encoded uniform chunks by (element bytes, chunk size, level, encoder), a few per thread.
class UniformChunkMemo {
 public:
  const ByteBuffer* find(const std::uint8_t* element, std::size_t size, int chunk_size, int level,
                         bool run_length) const {
    for (const Entry& e : entries_) {
      if (e.size == size && e.chunk_size == chunk_size && e.level == level &&
          e.run_length == run_length && std::memcmp(e.element.data(), element, size) == 0) {
        return &e.bytes;
      }
    }
    return nullptr;
  }
  void add(const std::uint8_t* element, std::size_t size, int chunk_size, int level,
           bool run_length, const ByteBuffer& bytes) {
    Entry e;
    std::memcpy(e.element.data(), element, size);
    e.size = size;
    e.chunk_size = chunk_size;
    e.level = level;
    e.run_length = run_length;
    e.bytes = bytes;
    if (entries_.size() < kEntries) {
      entries_.push_back(std::move(e));
    } else {
      entries_[next_] = std::move(e);  // oldest first
      next_ = (next_ + 1) % kEntries;
    }
  }

 private:
  static constexpr std::size_t kEntries = 16;
  struct Entry {
    std::array<std::uint8_t, 8> element{};
    std::size_t size = 0;
    int chunk_size = 0;
    int level = 0;
    bool run_length = false;
    ByteBuffer bytes;
  };
  std::vector<Entry> entries_;
  std::size_t next_ = 0;
};

/// `n` bytes deflated (zlib format) with zlib's run-length strategy (LayerSpec::run_length).
/// zlib is deterministic for a given version, level and strategy, so equal chunks give equal bytes.
ByteBuffer deflate_runs(const std::uint8_t* in, std::size_t n, int level) {
  if (n > std::numeric_limits<uInt>::max()) {
    throw Error(ErrorKind::internal, "encode_chunk: chunk too large for zlib");
  }
  z_stream z{};
  if (deflateInit2(&z, level, Z_DEFLATED, 15, 8, Z_RLE) != Z_OK) {
    throw Error(ErrorKind::internal, "encode_chunk: zlib initialisation failed");
  }
  ByteBuffer out(deflateBound(&z, static_cast<uLong>(n)));
  if (out.size() > std::numeric_limits<uInt>::max()) {
    deflateEnd(&z);
    throw Error(ErrorKind::internal, "encode_chunk: chunk too large for zlib");
  }
  z.next_in = const_cast<Bytef*>(in);  // zlib's API is not const-correct; the input is only read
  z.avail_in = static_cast<uInt>(n);
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&z, Z_FINISH);
  const uLong size = z.total_out;
  deflateEnd(&z);
  if (rc != Z_STREAM_END) throw Error(ErrorKind::internal, "encode_chunk: compression failed");
  out.resize(size);
  return out;
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
  ByteBuffer padded_bytes(nbytes);  // written whole below: not zeroed first
  cv::Mat padded(chunk_size, chunk_size, cv_type(spec.type), padded_bytes.data());
  if (core.rows < chunk_size || core.cols < chunk_size) padded.setTo(cv::Scalar::all(spec.fill_value));
  if (!core.empty()) core.copyTo(padded(cv::Rect(0, 0, core.cols, core.rows)));
  if (deflate_level == 0) {
    out.bytes = std::move(padded_bytes);
    return out;
  }
  const auto* raw = padded_bytes.data();
  // A chunk of one value repeated (a translation model's misregistration, a mask with no change,
  // nodata) deflates to the same bytes every time, and is common: such chunks are encoded once
  // per thread and copied after. libdeflate and zlib are deterministic, so the bytes are those the
  // encoding below gives. Periodic with period s = every element equals the first.
  const bool uniform = std::memcmp(raw, raw + s, nbytes - s) == 0;
  thread_local UniformChunkMemo memo;
  if (uniform) {
    if (const auto* hit = memo.find(raw, s, chunk_size, deflate_level, spec.run_length)) {
      out.bytes = *hit;
      return out;
    }
  }
  // HDF5's shuffle filter: byte j of element i goes to [j*n + i] (a no-op for 1-byte elements).
  ByteBuffer shuffled;
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
  if (spec.run_length) {
    out.bytes = deflate_runs(input, nbytes, deflate_level);
  } else {
    thread_local CompressorCache cache;
    libdeflate_compressor* c = cache.get(deflate_level);
    out.bytes.resize(libdeflate_zlib_compress_bound(c, nbytes));
    const std::size_t size =
        libdeflate_zlib_compress(c, input, nbytes, out.bytes.data(), out.bytes.size());
    if (size == 0) throw Error(ErrorKind::internal, "encode_chunk: compression failed");
    out.bytes.resize(size);
  }
  out.bytes.shrink_to_fit();
  if (uniform) memo.add(raw, s, chunk_size, deflate_level, spec.run_length, out.bytes);
  return out;
}

// ------------------------------------------------------------------------------------------------
// Hdf5Writer
struct Hdf5Writer::Impl : h5::CfLayout {
  std::string temp_path;
  std::string dir;
  bool temp_exists = false;
  bool committed = false;

  h5::Handle file;
  std::vector<h5::Handle> datasets;
  // Early write-back: the layers' chunks are handed to the disk while the job goes on (the
  // kernel would otherwise hold them all until the commit's fsync, which then waited for the
  // whole file: ~65 ms for 150 MB here). Best effort; the fsync is what makes the file durable.
  int writeback_fd = -1;
  std::size_t unsynced_bytes = 0;
  static constexpr std::size_t kWritebackBytes = std::size_t{32} << 20;

  ~Impl() { abort(); }

  void start_writeback() noexcept {
#ifdef __linux__
    if (writeback_fd >= 0) (void)::sync_file_range(writeback_fd, 0, 0, SYNC_FILE_RANGE_WRITE);
#endif
    unsynced_bytes = 0;
  }
  void close_writeback() noexcept {
    if (writeback_fd >= 0) ::close(writeback_fd);
    writeback_fd = -1;
  }

  /// Closes everything and removes the temporary file unless committed. Never throws.
  void abort() noexcept {
    close_writeback();
    datasets.clear();
    file.reset();
    if (temp_exists && !committed) {
      ::unlink(temp_path.c_str());
      temp_exists = false;
    }
  }

  void require_open(const char* op) const {
    if (!file.valid()) {
      throw Error(ErrorKind::internal, final_path + ": " + op + " on a writer that is " +
                                           (committed ? "committed" : "closed"));
    }
  }

  void create() {
    validate();
    temp_path = create_temp_file(dir);
    temp_exists = true;
    file = h5::file(id_or_fail(H5Fcreate(temp_path.c_str(), H5F_ACC_TRUNC, output_fcpl().get(), output_fapl().get()),
                               "cannot create HDF5 file " + temp_path));
    file_id = file.get();
    datasets = create_layout();
    writeback_fd = ::open(temp_path.c_str(), O_RDONLY | O_CLOEXEC);  // -1: no early write-back
  }

  /// Takes over `path`, a temporary output whose layout and layers are written (e.g. by
  /// Hdf5ParallelWriter): opened for tables and attributes.
  void adopt(const std::string& path) {
    validate();
    temp_path = path;
    dir = h5::output_dir(final_path);
    temp_exists = true;
    file = h5::file(id_or_fail(H5Fopen(temp_path.c_str(), H5F_ACC_RDWR, output_fapl().get()),
                               "cannot open HDF5 file " + temp_path));
    file_id = file.get();
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

std::unique_ptr<Hdf5Writer> Hdf5Writer::adopt(const std::string& final_path, const std::string& temp_path,
                                              const Grid& grid, int chunk_size, std::vector<LayerSpec> layers,
                                              int deflate_level) {
  std::unique_ptr<Hdf5Writer> w(new Hdf5Writer());
  h5::silence_errors();
  auto& m = *w->impl_;
  m.final_path = final_path;
  m.grid = grid;
  m.chunk_size = chunk_size;
  m.layers = std::move(layers);
  m.deflate_level = deflate_level;
  m.adopt(temp_path);  // on failure the writer's destructor removes the temporary file
  return w;
}

Hdf5Writer::Hdf5Writer() : impl_(std::make_unique<Impl>()) {}

Hdf5Writer::~Hdf5Writer() = default;

const std::string& Hdf5Writer::temp_path() const { return impl_->temp_path; }

void Hdf5Writer::write_chunk(int layer, const Tile& tile, const EncodedChunk& chunk) {
  Impl& m = *impl_;
  h5::silence_errors();
  m.require_open("write_chunk");
  if (layer < 0 || std::size_t(layer) >= m.layers.size()) {
    throw Error(ErrorKind::internal, m.final_path + ": write_chunk: no layer " + std::to_string(layer));
  }
  if (m.datasets.size() != m.layers.size()) {
    throw Error(ErrorKind::internal, m.final_path + ": write_chunk on an adopted file (its layers are written)");
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
  m.unsynced_bytes += chunk.bytes.size();
  if (m.unsynced_bytes >= Impl::kWritebackBytes) m.start_writeback();
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
  m.close_writeback();

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