#pragma once
// The MPI communicator of a job (private to the engine). A job runs over the ranks of
// MPI_COMM_WORLD (`run` under mpirun/srun) or alone (a plain run, or a batch job handed to one
// rank): alone, every call below is a no-op or an identity and no MPI function is called, so a
// plain run behaves and performs as in a build without MPI. Every call is made from the rank's
// main thread, outside the TBB stages (MPI is initialised funnelled).
//
// Failures: a rank that fails must not leave the others blocked in a collective. Each phase that
// can fail on one rank only ends in agree(): the ranks find the first failing rank, it sends its
// error, and every rank throws that same Error.
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <opencv2/core.hpp>
#include <string>
#include <type_traits>
#include <vector>

#include "aftermath/align/registration.hpp"

namespace aftermath::engine {

using Bytes = std::vector<std::uint8_t>;

class Communicator {
 public:
  /// Every rank of MPI_COMM_WORLD when MPI is active (even one rank), else this process alone.
  static Communicator world();
  /// This process alone.
  static Communicator self();

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_root() const { return rank_ == 0; }
  /// True when the job runs over MPI ranks: collective output, reductions, agreement.
  bool distributed() const { return distributed_; }

  /// Every rank gets `root`'s bytes (others' contents are replaced).
  void broadcast(Bytes& bytes, int root) const;
  /// `root` gets every rank's bytes, in rank order; the other ranks get an empty vector.
  std::vector<Bytes> gather(const Bytes& bytes, int root) const;
  /// Element-wise sums over the ranks; every rank must pass the same number of values.
  void sum(std::vector<std::int64_t>& values) const;
  /// True when every rank passed the same value.
  bool all_equal(std::uint64_t value) const;
  /// Waits until every rank has called it.
  void barrier() const;

  /// Ends a phase that may have failed on some ranks (`local`: this rank's failure, or null).
  /// Alone: rethrows `local`. Over ranks: when any rank failed, every rank throws the Error of
  /// the lowest failing rank (message suffixed with that rank); otherwise returns.
  void agree(std::exception_ptr local) const;
  /// Runs `phase`, then agree() on its outcome. Alone, just runs it.
  void run_agreed(const std::function<void()>& phase) const;
  /// `root` runs `produce`; every rank gets its bytes, or throws its error (agreed).
  Bytes share_from_root(const std::function<Bytes()>& produce) const;

 private:
  Communicator(int rank, int size, bool distributed)
      : rank_(rank), size_(size), distributed_(distributed) {}
  int rank_ = 0, size_ = 1;
  bool distributed_ = false;
};

/// Appends plain values, strings and matrices to a byte buffer (host byte order: the ranks of
/// one job run the same binary on the same architecture).
class ByteWriter {
 public:
  template <typename T>
  void put(const T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    const std::size_t at = bytes_.size();
    bytes_.resize(at + sizeof(T));
    std::memcpy(bytes_.data() + at, &value, sizeof(T));
  }
  void put_string(const std::string& s);
  void put_mat(const cv::Mat& m);
  void put_bytes(const Bytes& b);
  Bytes take() { return std::move(bytes_); }

 private:
  Bytes bytes_;
};

/// Reads what a ByteWriter wrote, in the same order; throws Error(internal) past the end.
class ByteReader {
 public:
  explicit ByteReader(const Bytes& bytes) : bytes_(bytes) {}
  template <typename T>
  T get() {
    static_assert(std::is_trivially_copyable_v<T>);
    T value;
    std::memcpy(&value, take(sizeof(T)), sizeof(T));
    return value;
  }
  std::string get_string();
  cv::Mat get_mat();
  Bytes get_bytes();
  bool done() const { return pos_ == bytes_.size(); }

 private:
  const std::uint8_t* take(std::size_t n);
  const Bytes& bytes_;
  std::size_t pos_ = 0;
};

/// Every field of a Registration (the model, its tie points and its lattice), so that ranks
/// that did not estimate it use bit-identical parameters.
Bytes serialize_registration(const Registration& registration);
Registration deserialize_registration(const Bytes& bytes);

/// Alone: estimate(). Over ranks: rank 0 runs `estimate` and every rank gets its result, or
/// throws its error (agreed).
Registration share_registration(const Communicator& comm,
                                const std::function<Registration()>& estimate);

}  // namespace aftermath::engine
