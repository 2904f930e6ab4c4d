#pragma once
/// A ForEach for unit tests of code that runs its parts side by side: every body on a thread of
/// its own, started in reverse order, so that a result depending on the order or on one thread
/// shows.
#include <cstddef>
#include <functional>
#include <thread>
#include <vector>

namespace aftermath::test {

inline void for_each_on_threads(std::size_t n, const std::function<void(std::size_t)>& body) {
  std::vector<std::thread> threads;
  threads.reserve(n);
  for (std::size_t i = n; i-- > 0;) threads.emplace_back(body, i);
  for (auto& t : threads) t.join();
}

}  // namespace aftermath::test
