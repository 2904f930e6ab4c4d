// The collective layer writer (see hdf5_parallel_writer.hpp): the layout of hdf5_layout.hpp in
// a file opened by every rank with the MPI-IO driver, chunks written with collective H5Dwrite.
#include "aftermath/io/hdf5_parallel_writer.hpp"

#include "hdf5_layout.hpp"
#include "hdf5_util.hpp"

namespace aftermath {

std::string create_temporary_output(const std::string& final_path) {
  h5::CfLayout layout;
  layout.final_path = final_path;
  std::string dir;
  return layout.create_temp_file(dir);
}

struct Hdf5ParallelWriter::Impl : h5::CfLayout {
  std::string temp_path;
  bool removes_temp = false;
  bool released = false;
  h5::Handle file;
  h5::Handle collective;  // dataset transfer properties: collective MPI-IO
  std::vector<h5::Handle> datasets;

  ~Impl() {
    // Collective like every member: all ranks destroy their writer at the same point (a failure
    // is agreed by every rank before it unwinds past the writer).
    datasets.clear();
    file.reset();
    if (removes_temp && !released) ::unlink(temp_path.c_str());
  }
};

Hdf5ParallelWriter::~Hdf5ParallelWriter() = default;

const std::string& Hdf5ParallelWriter::temp_path() const { return impl_->temp_path; }

void Hdf5ParallelWriter::release() { impl_->released = true; }

// Opening the file and writing it need MPI-IO: only builds with MPI have them.
#if AFTERMATH_MPI

Hdf5ParallelWriter::Hdf5ParallelWriter(const std::string& final_path, const std::string& temp_path,
                                       bool removes_temp, const Grid& grid, int chunk_size,
                                       std::vector<LayerSpec> layers, int deflate_level)
    : impl_(std::make_unique<Impl>()) {
  h5::silence_errors();
  Impl& m = *impl_;
  m.final_path = final_path;
  m.temp_path = temp_path;
  m.removes_temp = removes_temp;
  m.grid = grid;
  m.chunk_size = chunk_size;
  m.layers = std::move(layers);
  m.deflate_level = deflate_level;
  m.validate();
  h5::Handle fapl = m.output_fapl();
  m.ok_or_fail(H5Pset_fapl_mpio(fapl.get(), MPI_COMM_WORLD, MPI_INFO_NULL),
               "cannot select the MPI-IO driver");
  m.file = h5::file(
      m.id_or_fail(H5Fcreate(temp_path.c_str(), H5F_ACC_TRUNC, m.output_fcpl().get(), fapl.get()),
                   "cannot create HDF5 file " + temp_path));
  m.file_id = m.file.get();
  m.collective =
      h5::plist(m.id_or_fail(H5Pcreate(H5P_DATASET_XFER), "cannot create a property list"));
  // Filtered datasets can only be written collectively in parallel; the small coordinate
  // variables are written the same way, by every rank with the same values.
  m.ok_or_fail(H5Pset_dxpl_mpio(m.collective.get(), H5FD_MPIO_COLLECTIVE),
               "cannot select collective I/O");
  m.write_dxpl = m.collective.get();
  m.datasets = m.create_layout();
}

void Hdf5ParallelWriter::write_round(int layer, const Tile* tile, const EncodedChunk* raw_chunk) {
  Impl& m = *impl_;
  h5::silence_errors();
  if (!m.file.valid())
    throw Error(ErrorKind::internal, m.final_path + ": write_round on a closed writer");
  if (layer < 0 || std::size_t(layer) >= m.layers.size()) {
    throw Error(ErrorKind::internal,
                m.final_path + ": write_round: no layer " + std::to_string(layer));
  }
  const LayerSpec& spec = m.layers[std::size_t(layer)];
  const hid_t dataset = m.datasets[std::size_t(layer)].get();
  h5::Handle file_space = h5::dataspace(
      m.id_or_fail(H5Dget_space(dataset), "cannot get the dataspace of " + spec.name));
  const hsize_t c = hsize_t(m.chunk_size);
  const hsize_t chunk_dims[2] = {c, c};
  h5::Handle memory_space = h5::dataspace(
      m.id_or_fail(H5Screate_simple(2, chunk_dims, nullptr), "cannot create a dataspace"));
  const void* data = nullptr;
  std::string where = "an empty selection";
  if (tile != nullptr) {
    const Window& w = tile->core;
    where = "chunk (" + std::to_string(w.x) + ", " + std::to_string(w.y) + ")";
    if (w.x < 0 || w.y < 0 || w.x % m.chunk_size != 0 || w.y % m.chunk_size != 0 ||
        w.width > m.chunk_size || w.height > m.chunk_size || w.x + w.width > m.grid.width ||
        w.y + w.height > m.grid.height) {
      throw Error(ErrorKind::internal, m.final_path + ": write_round: tile core at (" +
                                           std::to_string(w.x) + ", " + std::to_string(w.y) +
                                           ") is not a chunk of " + spec.name);
    }
    const std::size_t raw = std::size_t(c * c) * h5::element_size(spec.type);
    if (raw_chunk == nullptr || raw_chunk->bytes.size() != raw) {
      throw Error(ErrorKind::internal, m.final_path + ": write_round: " + spec.name +
                                           " needs a raw chunk of " + std::to_string(raw) +
                                           " bytes");
    }
    const hsize_t count[2] = {hsize_t(w.height), hsize_t(w.width)};
    const hsize_t origin[2] = {0, 0};
    const hsize_t start[2] = {hsize_t(w.y), hsize_t(w.x)};
    m.ok_or_fail(
        H5Sselect_hyperslab(memory_space.get(), H5S_SELECT_SET, origin, nullptr, count, nullptr),
        "cannot select the core of a chunk");
    m.ok_or_fail(
        H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start, nullptr, count, nullptr),
        "cannot select " + where + " of " + spec.name);
    data = raw_chunk->bytes.data();
  } else {
    // This rank has no tile in the round but takes part in the collective write.
    m.ok_or_fail(H5Sselect_none(memory_space.get()), "cannot select nothing");
    m.ok_or_fail(H5Sselect_none(file_space.get()), "cannot select nothing");
    static const std::uint8_t kNothing = 0;
    data = &kNothing;
  }
  m.ok_or_fail(H5Dwrite(dataset, h5::mem_type(spec.type), memory_space.get(), file_space.get(),
                        m.collective.get(), data),
               "cannot write " + where + " of " + spec.name);
}

void Hdf5ParallelWriter::close() {
  Impl& m = *impl_;
  h5::silence_errors();
  for (auto& d : m.datasets) m.ok_or_fail(d.close(), "cannot close a layer dataset");
  m.datasets.clear();
  m.collective.reset();
  m.ok_or_fail(m.file.close(), "cannot close " + m.temp_path);
}

#endif  // AFTERMATH_MPI

}  // namespace aftermath
