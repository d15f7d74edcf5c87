#include "thread_pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace apt_fast {
namespace {

// Tasks are claimed, not assigned: the caller and the woken workers take task indices from one atomic
// word that also holds the job's generation, and the caller waits only for tasks that someone claimed.
// On a machine shared with other processes a worker that is not scheduled in time then costs nothing:
// the caller runs its tasks instead of waiting a scheduler time slice for it; a worker that wakes after
// the job is done finds nothing to claim and never touches the (gone) job.
class ThreadPool {
 public:
  static ThreadPool& instance() {
    static ThreadPool* pool = new ThreadPool();  // never destroyed: workers may outlive static teardown
    return *pool;
  }

  // Calls task(i) once for each i in [0, num_tasks), on the calling thread and up to num_threads - 1 workers.
  void run(int num_tasks, int num_threads, const std::function<void(int)>& task) {
    std::lock_guard<std::mutex> caller_lock(caller_mutex_);
    uint64_t generation;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      while (static_cast<int>(workers_.size()) < num_threads - 1) {
        const int index = static_cast<int>(workers_.size()) + 1;
        uint64_t current = generation_;  // the new worker waits for the job announced below
        workers_.emplace_back([this, index, current] { worker_loop(index, current); });
      }
      generation = ++generation_;
      task_ = &task;
      num_tasks_ = num_tasks;
      num_threads_ = num_threads;
      done_.store(0);
      claim_.store(generation << kIndexBits);
    }
    start_.notify_all();
    work(generation, task, num_tasks);
    if (done_.load() == num_tasks) return;
    std::unique_lock<std::mutex> lock(mutex_);
    finished_.wait(lock, [&] { return done_.load() == num_tasks; });
  }

 private:
  static constexpr int kIndexBits = 24;  // task index in the low bits of claim_, generation above

  // Claims and runs tasks of job `generation` until none is left.
  void work(uint64_t generation, const std::function<void(int)>& task, int num_tasks) {
    uint64_t word = claim_.load();
    for (;;) {
      const uint64_t index = word & ((uint64_t{1} << kIndexBits) - 1);
      if ((word >> kIndexBits) != generation || index >= static_cast<uint64_t>(num_tasks)) return;
      if (!claim_.compare_exchange_weak(word, word + 1)) continue;  // word reloaded
      task(static_cast<int>(index));
      if (done_.fetch_add(1) + 1 == num_tasks) {
        std::lock_guard<std::mutex> lock(mutex_);
        finished_.notify_all();
      }
      word = claim_.load();
    }
  }

  void worker_loop(int index, uint64_t seen) {
    for (;;) {
      const std::function<void(int)>* task = nullptr;
      int num_tasks = 0;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        start_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        if (index >= num_threads_) continue;  // this job wants fewer threads
        task = task_;
        num_tasks = num_tasks_;
      }
      work(seen, *task, num_tasks);  // runs nothing if the job is already claimed or over
    }
  }

  std::mutex caller_mutex_;
  std::mutex mutex_;
  std::condition_variable start_;
  std::condition_variable finished_;
  std::vector<std::thread> workers_;
  const std::function<void(int)>* task_ = nullptr;  // valid while a task of generation_ is unclaimed or running
  int num_tasks_ = 0, num_threads_ = 0;
  uint64_t generation_ = 0;
  std::atomic<uint64_t> claim_{0};  // generation << kIndexBits | next task index
  std::atomic<int> done_{0};
};

}  // namespace

void parallel_for(int64_t n, int num_threads, const std::function<void(int64_t, int64_t)>& body) {
  if (n <= 0) return;
  const int threads = static_cast<int>(std::min<int64_t>(std::max(num_threads, 1), n));
  if (threads == 1) {
    body(0, n);
    return;
  }
  // A few ranges per thread, claimed in turn, so that a worker that wakes late still takes a share.
  constexpr int64_t kRangesPerThread = 4;
  const int64_t ranges = std::min<int64_t>(n, threads * kRangesPerThread), size = (n + ranges - 1) / ranges;
  ThreadPool::instance().run(static_cast<int>((n + size - 1) / size), threads, [&](int i) {
    body(i * size, std::min(n, (i + 1) * size));
  });
}

void parallel_for_chunks(int64_t n, int64_t grain, int num_threads,
                         const std::function<void(int64_t, int64_t)>& body) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t chunks = (n + grain - 1) / grain;
  const int threads = static_cast<int>(std::min<int64_t>(std::max(num_threads, 1), chunks));
  if (threads == 1) {
    body(0, n);
    return;
  }
  ThreadPool::instance().run(static_cast<int>(chunks), threads, [&](int chunk) {
    body(chunk * grain, std::min(n, (chunk + 1) * grain));
  });
}

}  // namespace apt_fast
