// Sharding, output locks, stale temporary files, the hash cache and the exit-code table.
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "aftermath/batch/batch.hpp"
#include "aftermath/batch/hash_cache.hpp"
#include "aftermath/batch/lock.hpp"
#include "aftermath/batch/shard.hpp"
#include "aftermath/core/error.hpp"

namespace fs = std::filesystem;
using namespace aftermath;
using namespace aftermath::batch;

namespace {
fs::path make_temp_dir() {
  char tmpl[] = "/tmp/aftermath-batch-test.XXXXXX";
  return ::mkdtemp(tmpl);
}
struct Cleanup {
  fs::path p;
  ~Cleanup() {
    std::error_code ec;
    fs::remove_all(p, ec);
  }
};
}  // namespace

TEST(Shard, ParsesAndValidates) {
  EXPECT_EQ(parse_shard("0/1"), (Shard{0, 1}));
  EXPECT_EQ(parse_shard("2/3"), (Shard{2, 3}));
  for (const char* bad : {"3/3", "-1/3", "1/0", "1", "a/b", "1/3x", "", "/3", "1/"}) {
    EXPECT_THROW(parse_shard(bad), Error) << bad;
  }
}

TEST(Shard, ShardsPartitionTheJobsDeterministically) {
  for (int n = 1; n <= 6; ++n) {
    std::vector<int> owners(23, 0);
    for (int i = 0; i < n; ++i) {
      for (std::size_t k = 0; k < owners.size(); ++k) owners[k] += in_shard(k, {i, n});
    }
    for (std::size_t k = 0; k < owners.size(); ++k) EXPECT_EQ(owners[k], 1) << "job " << k << " N " << n;
  }
  EXPECT_TRUE(in_shard(4, {1, 3}));
  EXPECT_FALSE(in_shard(4, {0, 3}));
}

TEST(Lock, SecondLockerSeesTheHolderAndTheFileGoesAway) {
  const fs::path dir = make_temp_dir();
  Cleanup c{dir};
  const std::string out = (dir / "new dir/x.h5").string();
  {
    LockAttempt a = try_lock_output(out);
    ASSERT_TRUE(a.lock);
    EXPECT_TRUE(a.stale.empty());
    EXPECT_TRUE(fs::exists(out + ".lock"));
    LockAttempt b = try_lock_output(out);  // another open file description: refused
    EXPECT_FALSE(b.lock);
    EXPECT_NE(b.holder.find("pid " + std::to_string(::getpid())), std::string::npos) << b.holder;
    EXPECT_NE(b.holder.find("host " + host_name()), std::string::npos) << b.holder;
  }
  EXPECT_FALSE(fs::exists(out + ".lock"));
  EXPECT_TRUE(try_lock_output(out).lock);
}

TEST(Lock, StaleLockOfADeadProcessIsTakenOver) {
  const fs::path dir = make_temp_dir();
  Cleanup c{dir};
  const std::string out = (dir / "x.h5").string();
  std::ofstream(out + ".lock") << "pid 999999999 host elsewhere since 2020-01-01T00:00:00Z\n";
  LockAttempt a = try_lock_output(out);
  ASSERT_TRUE(a.lock);
  EXPECT_NE(a.stale.find("pid 999999999"), std::string::npos);
}

TEST(Lock, ConcurrentLockersNeverBothHoldIt) {
  const fs::path dir = make_temp_dir();
  Cleanup c{dir};
  const std::string out = (dir / "x.h5").string();
  std::atomic<int> holders{0}, max_holders{0}, acquired{0};
  auto worker = [&] {
    for (int i = 0; i < 300; ++i) {
      LockAttempt a = try_lock_output(out);
      if (!a.lock) continue;
      ++acquired;
      const int h = ++holders;
      int m = max_holders.load();
      while (h > m && !max_holders.compare_exchange_weak(m, h)) {}
      std::this_thread::yield();
      --holders;
    }
  };
  std::thread t1(worker), t2(worker), t3(worker);
  t1.join();
  t2.join();
  t3.join();
  EXPECT_EQ(max_holders.load(), 1);
  EXPECT_GT(acquired.load(), 0);
  EXPECT_FALSE(fs::exists(out + ".lock"));
}

TEST(Lock, StaleTemporaryFilesOfDeadProcessesAreRemoved) {
  const fs::path dir = make_temp_dir();
  Cleanup c{dir};
  const std::string out = (dir / "x.h5").string();
  const fs::path dead = dir / ".x.h5.tmp-999999999-0123456789abcdef";
  const fs::path mine = dir / (".x.h5.tmp-" + std::to_string(::getpid()) + "-0123456789abcdef");
  const fs::path other = dir / ".y.h5.tmp-999999999-0123456789abcdef";
  for (const auto& p : {dead, mine, other}) std::ofstream(p) << "partial";
  const auto removed = remove_stale_temps(out);
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(removed[0], dead.string());
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_TRUE(fs::exists(mine));
  EXPECT_TRUE(fs::exists(other));
}

TEST(HashCache, HitsWhileTheFileIsUnchanged) {
  const fs::path dir = make_temp_dir();
  Cleanup c{dir};
  const std::string f = (dir / "scene.tif").string();
  std::ofstream(f) << "abc";
  const std::string cache_path = (dir / "cache.json").string();
  std::string sha;
  {
    HashCache cache(cache_path);
    sha = cache.sha256(f);
    EXPECT_EQ(sha, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(cache.misses(), 1);
    EXPECT_EQ(cache.sha256(f), sha);
    EXPECT_EQ(cache.hits(), 1);
    EXPECT_TRUE(cache.save());
  }
  {
    HashCache cache(cache_path);
    EXPECT_EQ(cache.sha256(f), sha);
    EXPECT_EQ(cache.hits(), 1);
    EXPECT_EQ(cache.misses(), 0);
  }
  std::ofstream(f) << "abd";  // same size, new content and mtime
  {
    HashCache cache(cache_path);
    EXPECT_NE(cache.sha256(f), sha);
    EXPECT_EQ(cache.misses(), 1);
  }
  std::ofstream(cache_path) << "{ not json";
  HashCache corrupt(cache_path);  // ignored with a warning
  EXPECT_EQ(corrupt.sha256(f).size(), 64u);
  EXPECT_EQ(corrupt.misses(), 1);
}

TEST(Batch, ExitCodeTable) {
  auto jobs = [](std::initializer_list<JobStatus> s) {
    std::vector<JobReport> v;
    for (auto st : s) {
      JobReport r;
      r.status = st;
      v.push_back(r);
    }
    return v;
  };
  EXPECT_EQ(batch_exit_code({}), kExitAllDone);
  EXPECT_EQ(batch_outcome({}), "nothing to do");
  EXPECT_EQ(batch_exit_code(jobs({JobStatus::done, JobStatus::up_to_date, JobStatus::locked})), 0);
  EXPECT_EQ(batch_exit_code(jobs({JobStatus::done, JobStatus::failed})), 4);
  EXPECT_EQ(batch_outcome(jobs({JobStatus::done, JobStatus::failed})), "some failed");
  EXPECT_EQ(batch_exit_code(jobs({JobStatus::failed, JobStatus::failed})), 1);
  EXPECT_EQ(batch_exit_code(jobs({JobStatus::locked, JobStatus::failed})), 4);
}

TEST(Batch, MissingOrCorruptOutputIsNotUpToDate) {
  const fs::path dir = make_temp_dir();
  Cleanup c{dir};
  ResolvedJob job;
  job.job.name = "j";
  job.job.out = (dir / "j.h5").string();
  job.pre = (dir / "a.tif").string();
  job.post = job.pre;
  std::ofstream(job.pre) << "pixels";
  HashCache cache;
  Freshness f = check_output(job, cache);
  EXPECT_FALSE(f.up_to_date);
  EXPECT_EQ(f.reason, "output missing");
  std::ofstream(job.job.out) << "\x89HDF\r\n\x1a\n truncated";
  f = check_output(job, cache);
  EXPECT_FALSE(f.up_to_date);
  EXPECT_NE(f.reason.find("unreadable"), std::string::npos) << f.reason;
}

TEST(Batch, ReportIsJsonWithEveryJob) {
  BatchResult res;
  JobReport a;
  a.name = "good";
  a.status = JobStatus::done;
  a.output = "/o/good.h5";
  OutputCounts counts;
  counts.features = 6;
  counts.class_counts = {4, 0, 0, 2};
  a.counts = counts;
  JobReport b;
  b.index = 1;
  b.name = "bad";
  b.status = JobStatus::failed;
  b.error = "plan: /x/bad.tif: not a recognised raster format";
  b.error_kind = "input";
  res.jobs = {a, b};
  res.exit_code = batch_exit_code(res.jobs);
  res.outcome = batch_outcome(res.jobs);
  const std::string text = report_json(res, "m.yaml", {});
  EXPECT_NE(text.find("\"exit_code\": 4"), std::string::npos) << text;
  EXPECT_NE(text.find("\"outcome\": \"some failed\""), std::string::npos);
  EXPECT_NE(text.find("\"destroyed\": 2"), std::string::npos);
  EXPECT_NE(text.find("not a recognised raster format"), std::string::npos);
  EXPECT_NE(text.find("\"failed\": 1"), std::string::npos);
}
