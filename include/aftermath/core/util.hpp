#pragma once
/// @file util.hpp
/// Small shared helpers: robust statistics, timestamps, and the ForEach through which the
/// engine lets an algorithm run independent pieces in parallel (algorithms never see threads).
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace aftermath {

/// Exact median (mean of the two middle values for an even count). May reorder `v`. Empty -> 0.
/// Values that are all multiples of 1/2 over a span of fewer than 2^20 of them (integer imagery)
/// are counted in a histogram, in O(n); large inputs of any other values (no NaN, no negative
/// zero) are narrowed by the high bits of their representation, as kth_smallest does; the rest
/// are ordered (nth_element). Every path gives the same value.
double median_of(std::vector<double>& v);

/// The value of rank `k` (0-based, k < v.size()) of `v`: the one std::nth_element puts at k.
/// May reorder `v`. Large vectors (no NaN, no negative zero) are narrowed first by the high bits of
/// their representation (one counting pass, then only the values sharing the rank's bits are
/// ordered), several times faster than nth_element; anything else takes nth_element.
/// (Phase correlation's spectra: 65 k magnitudes, 0.42 -> 0.15 ms.)
float kth_smallest(std::vector<float>& v, std::size_t k);

/// Runs body(i) for every i in [0, n) and returns when all are done, in any order or
/// concurrently. The engine passes one over its task arena; results must not depend on it.
using ForEach = std::function<void(std::size_t n, const std::function<void(std::size_t)>& body)>;
/// Runs the bodies one after another.
void for_each_serial(std::size_t n, const std::function<void(std::size_t)>& body);

/// The current time in UTC as ISO 8601, e.g. "2026-11-27T08:40:00Z".
std::string utc_timestamp();

/// The process's resident memory now and at its peak so far, MB (Linux /proc/self/status VmRSS,
/// VmHWM); -1 each where unknown. For the engine's memory lines in the debug log.
struct ResidentMemory {
  double now_mb = -1, peak_mb = -1;
};
ResidentMemory resident_memory();

/// The process's allocator policy for the engine (glibc: mallopt; a no-op elsewhere). Tiles
/// allocate and free the same few MB-sized buffers over and over; glibc's defaults hand such
/// blocks back to the kernel (mmap, trim), so each reuse paid fresh zeroed pages (a sixth of a
/// run in page faults). They stay in the heap, and the engine hands free pages back now and then
/// (release_free_heap). Called first thing by every program that runs the engine's code, the
/// benchmarks included, so a kernel is measured as the program runs it.
void keep_freed_memory_in_heap();

/// Returns the free pages the allocator holds to the system (glibc: malloc_trim), so resident
/// memory follows the memory in use; a no-op elsewhere. Costs the page faults of reusing them.
void release_free_heap();

/// std::allocator whose value-initialisation leaves the value as it is: a vector's resize() then
/// does not zero what the caller is about to overwrite whole (chunk buffers of up to a few MB,
/// zeroed and then filled, a memset per tile and layer for nothing).
template <typename T>
struct UninitialisedAllocator : std::allocator<T> {
  template <typename U>
  struct rebind {
    using other = UninitialisedAllocator<U>;
  };
  UninitialisedAllocator() = default;
  template <typename U>
  UninitialisedAllocator(const UninitialisedAllocator<U>&) noexcept {}
  template <typename U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;  // default-initialised: no zeroing
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};
/// Bytes that resize() does not zero (UninitialisedAllocator).
using ByteBuffer = std::vector<std::uint8_t, UninitialisedAllocator<std::uint8_t>>;

}  // namespace aftermath
