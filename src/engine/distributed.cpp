// The job's MPI communicator, MpiSession, and the byte encoding of what ranks exchange.
#include "distributed.hpp"

#include <cstdlib>

#if AFTERMATH_MPI
#include <mpi.h>
#endif

#include <fmt/format.h>

#include "aftermath/core/error.hpp"
#include "aftermath/engine/mpi.hpp"

namespace aftermath {

namespace {
bool g_mpi_active = false;  // set once by MpiSession, before any other thread exists
int g_world_rank = 0, g_world_size = 1;
bool g_failure_agreed = false;

#if AFTERMATH_MPI
// Launchers that start MPI ranks set one of these (Open MPI's mpirun, PMIx under srun or
// mpirun, PMI-1/2 under srun or MPICH's Hydra). A process started plainly sets none, so it
// never initialises MPI.
bool started_by_mpi_launcher() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"}) {
    if (std::getenv(name) != nullptr) return true;
  }
  return false;
}
#endif
}  // namespace

MpiSession::MpiSession(int& argc, char**& argv) {
#if AFTERMATH_MPI
  if (!started_by_mpi_launcher()) return;
  int provided = 0;
  if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    throw Error(ErrorKind::internal, "MPI_Init_thread failed");
  }
  g_mpi_active = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &g_world_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_world_size);
#else
  (void)argc;
  (void)argv;
#endif
}

MpiSession::~MpiSession() {
#if AFTERMATH_MPI
  if (g_mpi_active) MPI_Finalize();
#endif
}

int MpiSession::exit_after_failure(int code) {
#if AFTERMATH_MPI
  if (g_mpi_active && g_world_size > 1 && !g_failure_agreed) {
    // This rank failed where the others may wait for it in a collective: end the whole job.
    MPI_Abort(MPI_COMM_WORLD, code);
  }
#endif
  return code;
}

bool mpi_active() noexcept { return g_mpi_active; }
int mpi_world_rank() noexcept { return g_world_rank; }
int mpi_world_size() noexcept { return g_world_size; }
bool mpi_failure_agreed() noexcept { return g_failure_agreed; }

namespace engine {

Communicator Communicator::world() {
  return g_mpi_active ? Communicator(g_world_rank, g_world_size, true) : self();
}
Communicator Communicator::self() { return Communicator(0, 1, false); }

namespace {
#if AFTERMATH_MPI
void check_mpi(int rc, const char* what) {
  if (rc != MPI_SUCCESS)
    throw Error(ErrorKind::internal, fmt::format("MPI: {} failed ({})", what, rc));
}
// MPI counts are ints: larger payloads go in pieces.
constexpr std::size_t kMaxMessage = std::size_t(1) << 30;

Bytes error_to_bytes(std::exception_ptr e) {
  ErrorKind kind = ErrorKind::internal;
  std::string message, stage, scene;
  int tile = -1;
  try {
    std::rethrow_exception(e);
  } catch (const Error& err) {
    kind = err.kind();
    message = err.message();
    stage = err.stage();
    scene = err.scene();
    tile = err.tile();
  } catch (const std::exception& err) {
    message = err.what();
  } catch (...) {
    message = "unknown exception";
  }
  ByteWriter w;
  w.put(static_cast<int>(kind));
  w.put_string(message);
  w.put_string(stage);
  w.put_string(scene);
  w.put(tile);
  return w.take();
}
#endif
}  // namespace

void Communicator::broadcast(Bytes& bytes, int root) const {
  if (!distributed_ || size_ == 1) return;
#if AFTERMATH_MPI
  std::uint64_t n = bytes.size();
  check_mpi(MPI_Bcast(&n, 1, MPI_UINT64_T, root, MPI_COMM_WORLD), "MPI_Bcast");
  bytes.resize(n);
  for (std::size_t off = 0; off < n; off += kMaxMessage) {
    const int count = static_cast<int>(std::min<std::size_t>(kMaxMessage, n - off));
    check_mpi(MPI_Bcast(bytes.data() + off, count, MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
  }
#else
  (void)bytes;
  (void)root;
#endif
}

std::vector<Bytes> Communicator::gather(const Bytes& bytes, int root) const {
  if (!distributed_ || size_ == 1) return {bytes};
  std::vector<Bytes> out;
#if AFTERMATH_MPI
  // Sizes first, then each rank's bytes to the root in rank order (point to point: sizes of
  // any length, no int displacement limits).
  const std::uint64_t mine = bytes.size();
  std::vector<std::uint64_t> sizes(rank_ == root ? static_cast<std::size_t>(size_) : 0);
  check_mpi(MPI_Gather(&mine, 1, MPI_UINT64_T, sizes.data(), 1, MPI_UINT64_T, root, MPI_COMM_WORLD),
            "MPI_Gather");
  constexpr int kTag = 7;
  if (rank_ == root) {
    out.resize(static_cast<std::size_t>(size_));
    for (int r = 0; r < size_; ++r) {
      auto& b = out[static_cast<std::size_t>(r)];
      if (r == root) {
        b = bytes;
        continue;
      }
      b.resize(sizes[static_cast<std::size_t>(r)]);
      for (std::size_t off = 0; off < b.size(); off += kMaxMessage) {
        const int count = static_cast<int>(std::min<std::size_t>(kMaxMessage, b.size() - off));
        check_mpi(
            MPI_Recv(b.data() + off, count, MPI_BYTE, r, kTag, MPI_COMM_WORLD, MPI_STATUS_IGNORE),
            "MPI_Recv");
      }
    }
  } else {
    for (std::size_t off = 0; off < bytes.size(); off += kMaxMessage) {
      const int count = static_cast<int>(std::min<std::size_t>(kMaxMessage, bytes.size() - off));
      check_mpi(MPI_Send(bytes.data() + off, count, MPI_BYTE, root, kTag, MPI_COMM_WORLD),
                "MPI_Send");
    }
  }
#else
  (void)root;
#endif
  return out;
}

void Communicator::sum(std::vector<std::int64_t>& values) const {
  if (!distributed_ || size_ == 1 || values.empty()) return;
#if AFTERMATH_MPI
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_INT64_T,
                          MPI_SUM, MPI_COMM_WORLD),
            "MPI_Allreduce");
#endif
}

bool Communicator::all_equal(std::uint64_t value) const {
  if (!distributed_ || size_ == 1) return true;
#if AFTERMATH_MPI
  std::uint64_t lo = 0, hi = 0;
  check_mpi(MPI_Allreduce(&value, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD), "MPI_Allreduce");
  check_mpi(MPI_Allreduce(&value, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
  return lo == hi;
#else
  (void)value;
  return true;
#endif
}

void Communicator::barrier() const {
  if (!distributed_ || size_ == 1) return;
#if AFTERMATH_MPI
  check_mpi(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
#endif
}

void Communicator::agree(std::exception_ptr local) const {
  if (!distributed_) {
    if (local) std::rethrow_exception(local);
    return;
  }
#if AFTERMATH_MPI
  int mine = local ? rank_ : size_, first = size_;
  check_mpi(MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD), "MPI_Allreduce");
  if (first == size_) return;
  Bytes bytes = rank_ == first ? error_to_bytes(local) : Bytes{};
  broadcast(bytes, first);
  ByteReader r(bytes);
  const auto kind = static_cast<ErrorKind>(r.get<int>());
  std::string message = r.get_string();
  std::string stage = r.get_string();
  std::string scene = r.get_string();
  const int tile = r.get<int>();
  if (size_ > 1) message += fmt::format(" (rank {} of {})", first, size_);
  g_failure_agreed = true;
  throw Error(kind, std::move(message), std::move(stage), std::move(scene), tile);
#endif
}

void Communicator::run_agreed(const std::function<void()>& phase) const {
  if (!distributed_) {
    phase();
    return;
  }
  std::exception_ptr error;
  try {
    phase();
  } catch (...) {
    error = std::current_exception();
  }
  agree(error);
}

Bytes Communicator::share_from_root(const std::function<Bytes()>& produce) const {
  if (!distributed_) return produce();
  Bytes bytes;
  std::exception_ptr error;
  if (is_root()) {
    try {
      bytes = produce();
    } catch (...) {
      error = std::current_exception();
    }
  }
  agree(error);
  broadcast(bytes, 0);
  return bytes;
}

// ---- bytes ---------------------------------------------------------------------------------

void ByteWriter::put_string(const std::string& s) {
  put<std::uint64_t>(s.size());
  bytes_.insert(bytes_.end(), s.begin(), s.end());
}

void ByteWriter::put_bytes(const Bytes& b) {
  put<std::uint64_t>(b.size());
  bytes_.insert(bytes_.end(), b.begin(), b.end());
}

void ByteWriter::put_mat(const cv::Mat& m) {
  if (m.dims > 2) throw Error(ErrorKind::internal, "ByteWriter: only 2-D matrices");
  put<std::int32_t>(m.rows);
  put<std::int32_t>(m.cols);
  put<std::int32_t>(m.type());
  const cv::Mat c = m.isContinuous() ? m : m.clone();
  const std::size_t n = c.total() * c.elemSize();
  put<std::uint64_t>(n);
  if (n > 0) bytes_.insert(bytes_.end(), c.data, c.data + n);
}

const std::uint8_t* ByteReader::take(std::size_t n) {
  if (n > bytes_.size() - pos_)
    throw Error(ErrorKind::internal, "ByteReader: message shorter than expected");
  const std::uint8_t* p = bytes_.data() + pos_;
  pos_ += n;
  return p;
}

std::string ByteReader::get_string() {
  const auto n = get<std::uint64_t>();
  const auto* p = take(n);
  return std::string(reinterpret_cast<const char*>(p), n);
}

Bytes ByteReader::get_bytes() {
  const auto n = get<std::uint64_t>();
  const auto* p = take(n);
  return Bytes(p, p + n);
}

cv::Mat ByteReader::get_mat() {
  const int rows = get<std::int32_t>(), cols = get<std::int32_t>(), type = get<std::int32_t>();
  const auto n = get<std::uint64_t>();
  const auto* p = take(n);
  if (rows == 0 || cols == 0) return cv::Mat();
  cv::Mat m(rows, cols, type);
  if (m.total() * m.elemSize() != n)
    throw Error(ErrorKind::internal, "ByteReader: matrix size mismatch");
  std::memcpy(m.data, p, n);
  return m;
}

// ---- Registration ----------------------------------------------------------------------------

namespace {
void put_point(ByteWriter& w, const cv::Point2d& p) {
  w.put(p.x);
  w.put(p.y);
}
cv::Point2d get_point(ByteReader& r) {
  const double x = r.get<double>();
  const double y = r.get<double>();
  return {x, y};
}
}  // namespace

Bytes serialize_registration(const Registration& reg) {
  ByteWriter w;
  w.put_string(reg.model);
  w.put_string(reg.method);
  put_point(w, reg.shift);
  for (int i = 0; i < 6; ++i) w.put(reg.affine.val[i]);
  put_point(w, reg.field.origin);
  w.put(reg.field.spacing);
  w.put_mat(reg.field.dx);
  w.put_mat(reg.field.dy);
  w.put_mat(reg.field.sigma);
  w.put<std::int32_t>(reg.grid.width);
  w.put<std::int32_t>(reg.grid.height);
  w.put(reg.max_displacement);
  w.put(reg.uncertainty);
  w.put<std::uint64_t>(reg.ties.size());
  for (const TiePoint& t : reg.ties) {
    w.put<std::int32_t>(t.window.x);
    w.put<std::int32_t>(t.window.y);
    w.put<std::int32_t>(t.window.width);
    w.put<std::int32_t>(t.window.height);
    put_point(w, t.shift);
    w.put(t.peak);
    w.put(t.psr);
    w.put(t.ssim_before);
    w.put(t.ssim_after);
    w.put(t.residual);
    w.put(t.cv_residual);
    w.put<std::uint8_t>(t.kept ? 1 : 0);
    w.put_string(t.reason);
  }
  w.put<std::int32_t>(reg.kept);
  w.put<std::int32_t>(reg.dropped);
  w.put(reg.rmse_before);
  w.put(reg.rmse_after);
  w.put(reg.cv_rmse);
  w.put(reg.cv_translation);
  w.put(reg.cv_affine);
  w.put(reg.cv_field);
  w.put_string(reg.warning);
  return w.take();
}

Registration deserialize_registration(const Bytes& bytes) {
  ByteReader r(bytes);
  Registration reg;
  reg.model = r.get_string();
  reg.method = r.get_string();
  reg.shift = get_point(r);
  for (int i = 0; i < 6; ++i) reg.affine.val[i] = r.get<double>();
  reg.field.origin = get_point(r);
  reg.field.spacing = r.get<double>();
  reg.field.dx = r.get_mat();
  reg.field.dy = r.get_mat();
  reg.field.sigma = r.get_mat();
  reg.grid.width = r.get<std::int32_t>();
  reg.grid.height = r.get<std::int32_t>();
  reg.max_displacement = r.get<double>();
  reg.uncertainty = r.get<double>();
  reg.ties.resize(r.get<std::uint64_t>());
  for (TiePoint& t : reg.ties) {
    t.window.x = r.get<std::int32_t>();
    t.window.y = r.get<std::int32_t>();
    t.window.width = r.get<std::int32_t>();
    t.window.height = r.get<std::int32_t>();
    t.shift = get_point(r);
    t.peak = r.get<double>();
    t.psr = r.get<double>();
    t.ssim_before = r.get<double>();
    t.ssim_after = r.get<double>();
    t.residual = r.get<double>();
    t.cv_residual = r.get<double>();
    t.kept = r.get<std::uint8_t>() != 0;
    t.reason = r.get_string();
  }
  reg.kept = r.get<std::int32_t>();
  reg.dropped = r.get<std::int32_t>();
  reg.rmse_before = r.get<double>();
  reg.rmse_after = r.get<double>();
  reg.cv_rmse = r.get<double>();
  reg.cv_translation = r.get<double>();
  reg.cv_affine = r.get<double>();
  reg.cv_field = r.get<double>();
  reg.warning = r.get_string();
  if (!r.done()) throw Error(ErrorKind::internal, "registration message: trailing bytes");
  return reg;
}

Registration share_registration(const Communicator& comm,
                                const std::function<Registration()>& estimate) {
  if (!comm.distributed()) return estimate();
  return deserialize_registration(
      comm.share_from_root([&] { return serialize_registration(estimate()); }));
}

}  // namespace engine
}  // namespace aftermath
