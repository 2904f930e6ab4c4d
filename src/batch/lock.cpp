// Per-output locks (flock on <output>.lock, owner PID + host inside) and stale temporary files.
#include "aftermath/batch/lock.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>

#include <fmt/format.h>

#include "aftermath/core/error.hpp"
#include "aftermath/core/util.hpp"

namespace aftermath::batch {

namespace fs = std::filesystem;

namespace {

std::string read_all(int fd) {
  std::string s;
  char buf[512];
  if (::lseek(fd, 0, SEEK_SET) < 0) return s;
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    s.append(buf, static_cast<std::size_t>(n));
    if (s.size() > 4096) break;
  }
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}


}  // namespace

bool process_alive(long pid) {
  if (pid <= 0) return false;
  if (::kill(static_cast<pid_t>(pid), 0) == 0) return true;
  return errno == EPERM;  // exists, owned by someone else
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown-host";
  return buf;
}

OutputLock::~OutputLock() {
  if (fd_ >= 0) {
    // Unlink while still holding the lock: a process that opened the old file finds its inode
    // gone after locking it and retries on a fresh file (see try_lock_output).
    ::unlink(path_.c_str());
    ::close(fd_);
  }
}

LockAttempt try_lock_output(const std::string& output) {
  const std::string path = output + ".lock";
  std::error_code ec;
  const fs::path parent = fs::path(output).parent_path();
  if (!parent.empty() && !fs::exists(parent, ec)) fs::create_directories(parent, ec);
  for (int attempt = 0; attempt < 50; ++attempt) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      throw Error(ErrorKind::output, fmt::format("cannot create lock file {} ({})", path, std::strerror(errno)), "lock", {});
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      LockAttempt held;
      held.holder = read_all(fd);
      ::close(fd);
      if (err == EWOULDBLOCK || err == EINTR) {
        if (held.holder.empty()) held.holder = "another process (lock file being written)";
        return held;
      }
      throw Error(ErrorKind::output, fmt::format("cannot lock {} ({})", path, std::strerror(err)), "lock", {});
    }
    // Locked; make sure the file is still the one at `path` (the holder may have removed it).
    struct stat a{}, b{};
    if (::fstat(fd, &a) != 0 || ::stat(path.c_str(), &b) != 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
      ::close(fd);
      continue;
    }
    LockAttempt got;
    got.stale = read_all(fd);  // a previous owner died without removing it
    const std::string me = fmt::format("pid {} host {} since {}\n", ::getpid(), host_name(), utc_timestamp());
    if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, me.data(), me.size(), 0) != static_cast<ssize_t>(me.size())) {
      const int err = errno;
      ::close(fd);
      throw Error(ErrorKind::output, fmt::format("cannot write lock file {} ({})", path, std::strerror(err)), "lock", {});
    }
    got.lock.reset(new OutputLock(path, fd));
    return got;
  }
  throw Error(ErrorKind::output, fmt::format("cannot lock {}: it keeps being replaced", path), "lock", {});
}

std::vector<std::string> remove_stale_temps(const std::string& target) {
  std::vector<std::string> removed;
  const fs::path t(target);
  fs::path dir = t.parent_path();
  if (dir.empty()) dir = ".";
  std::string prefix = ".";  // built in steps: GCC 12 warns (-Wrestrict) on "." + string
  prefix += t.filename().string();
  prefix += ".tmp-";
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!name.starts_with(prefix)) continue;
    // .<name>.tmp-<pid>-<hex>
    const std::string rest = name.substr(prefix.size());
    const auto dash = rest.find('-');
    if (dash == std::string::npos || dash == 0) continue;
    long pid = 0;
    try {
      pid = std::stol(rest.substr(0, dash));
    } catch (...) {
      continue;
    }
    if (pid == static_cast<long>(::getpid()) || process_alive(pid)) continue;
    std::error_code rm;
    if (fs::remove(it->path(), rm)) removed.push_back(it->path().string());
  }
  return removed;
}

}  // namespace aftermath::batch
