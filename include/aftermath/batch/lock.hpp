#pragma once
/// @file lock.hpp
/// Per-output locks and stale temporary files. A lock is the file `<output>.lock`, held with
/// flock(LOCK_EX) and containing the owner's PID and host. The kernel drops the flock when its
/// owner dies (even by kill -9), so a lock file nobody holds is stale and is taken over.
#include <memory>
#include <string>
#include <vector>

namespace aftermath::batch {

struct LockAttempt;

class OutputLock {
 public:
  ~OutputLock();  ///< removes the lock file, then releases the lock
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;
  const std::string& path() const { return path_; }

 private:
  friend LockAttempt try_lock_output(const std::string& output);
  OutputLock(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  std::string path_;
  int fd_ = -1;
};

struct LockAttempt {
  std::unique_ptr<OutputLock> lock;  ///< null: held by a live process (see `holder`)
  std::string holder;                ///< content of the lock file when held: "pid <n> host <h> since <t>"
  std::string stale;                 ///< content of a stale lock that was taken over, "" if none
};

/// Tries to lock `<output>.lock` without waiting (creating the output's directory if needed).
/// Throws Error(output) if the lock file cannot be created.
LockAttempt try_lock_output(const std::string& output);

/// Removes `.<name>.tmp-<pid>-<hex>` files beside `target` whose PID is not a live process on
/// this host (left by a killed run). Returns the removed paths.
std::vector<std::string> remove_stale_temps(const std::string& target);

/// True if `pid` is a live process on this host.
bool process_alive(long pid);
/// This host's name.
std::string host_name();

}  // namespace aftermath::batch
