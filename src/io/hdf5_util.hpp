#pragma once
/// @file hdf5_util.hpp
/// Small RAII wrappers for HDF5 identifiers (private to the io module).
/// An `H5Handle` owns one hid_t and closes it with the matching H5?close function.
#include <hdf5.h>
#include <opencv2/core.hpp>

#include <string>
#include <utility>

#include "aftermath/io/hdf5_writer.hpp"

namespace aftermath::h5 {

/// Bytes per element and the OpenCV matrix type of a layer type (shared by chunk encoding,
/// decoding and the writer).
inline std::size_t element_size(LayerType t) { return t == LayerType::float32 ? 4 : t == LayerType::uint16 ? 2 : 1; }
inline int cv_type(LayerType t) {
  return t == LayerType::float32 ? CV_32FC1 : t == LayerType::uint16 ? CV_16UC1 : CV_8UC1;
}

class Handle {
 public:
  using Closer = herr_t (*)(hid_t);

  Handle() = default;
  Handle(hid_t id, Closer closer) noexcept : id_(id), closer_(closer) {}
  ~Handle() { reset(); }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& o) noexcept : id_(std::exchange(o.id_, H5I_INVALID_HID)), closer_(o.closer_) {}
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = std::exchange(o.id_, H5I_INVALID_HID);
      closer_ = o.closer_;
    }
    return *this;
  }

  hid_t get() const noexcept { return id_; }
  bool valid() const noexcept { return id_ >= 0; }
  explicit operator bool() const noexcept { return valid(); }

  /// Closes the identifier; returns the close status (0 when there was nothing to close).
  herr_t close() noexcept {
    herr_t status = 0;
    if (id_ >= 0 && closer_ != nullptr) status = closer_(id_);
    id_ = H5I_INVALID_HID;
    return status;
  }
  void reset() noexcept { (void)close(); }

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer closer_ = nullptr;
};

inline Handle file(hid_t id) { return Handle(id, H5Fclose); }
inline Handle group(hid_t id) { return Handle(id, H5Gclose); }
inline Handle dataset(hid_t id) { return Handle(id, H5Dclose); }
inline Handle dataspace(hid_t id) { return Handle(id, H5Sclose); }
inline Handle datatype(hid_t id) { return Handle(id, H5Tclose); }
inline Handle plist(hid_t id) { return Handle(id, H5Pclose); }
inline Handle attribute(hid_t id) { return Handle(id, H5Aclose); }
inline Handle object(hid_t id) { return Handle(id, H5Oclose); }

/// The messages of the current thread's HDF5 error stack, outermost (the API call) and innermost
/// (the cause), "" if the stack is empty; clears the stack.
inline std::string last_error() {
  struct Acc {
    std::string outer, inner;
  } acc;
  auto walk = [](unsigned n, const H5E_error2_t* err, void* data) -> herr_t {
    auto* a = static_cast<Acc*>(data);
    if (err == nullptr || err->desc == nullptr) return 0;
    if (n == 0) a->outer = err->desc;
    a->inner = err->desc;
    return 0;
  };
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, walk, &acc);
  H5Eclear2(H5E_DEFAULT);
  std::string out = (acc.inner.empty() || acc.inner == acc.outer) ? acc.outer
                    : acc.outer.empty()                            ? acc.inner
                                                                   : acc.outer + ": " + acc.inner;
  // HDF5's write errors carry a ctime() with a newline: keep the error on one line.
  for (auto& c : out) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return out;
}

/// Turns off HDF5's automatic error printing on the calling thread.
inline void silence_errors() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

}  // namespace aftermath::h5
