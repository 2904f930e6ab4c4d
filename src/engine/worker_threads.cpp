// Joins oneTBB's worker threads before the process exits (WorkerThreadsJoinedAtExit, job.hpp).
#include <spdlog/spdlog.h>
#include <tbb/global_control.h>

#include <memory>
#include <new>
#include <opencv2/core/utility.hpp>

#include "aftermath/engine/job.hpp"

namespace aftermath {

struct WorkerThreadsJoinedAtExit::Handle {
  tbb::task_scheduler_handle tbb{tbb::attach{}};
};

WorkerThreadsJoinedAtExit::WorkerThreadsJoinedAtExit() : handle_(std::make_unique<Handle>()) {}

WorkerThreadsJoinedAtExit::~WorkerThreadsJoinedAtExit() {
  // Without this, the workers end on their own from oneTBB's static destructors, concurrently
  // with the exit handlers registered before them. OpenCV's parallel_for_ keeps a task arena of
  // its own that holds the workers; setNumThreads(0) ends it (nothing runs OpenCV after this).
  // finalize() fails (false) rather than block when it cannot wait safely (another arena still
  // alive, or called inside a parallel region); the workers are then left as they were.
  cv::setNumThreads(0);
  if (!tbb::finalize(handle_->tbb, std::nothrow))
    spdlog::debug("worker threads left running at exit");
}

}  // namespace aftermath
