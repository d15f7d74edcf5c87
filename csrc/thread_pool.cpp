#include "thread_pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace apt_fast {
namespace {

class ThreadPool {
 public:
  static ThreadPool& instance() {
    static ThreadPool* pool = new ThreadPool();  // never destroyed: workers may outlive static teardown
    return *pool;
  }

  // Calls task(i) for i in [0, num_tasks); task 0 runs on the calling thread.
  void run(int num_tasks, const std::function<void(int)>& task) {
    std::lock_guard<std::mutex> caller_lock(caller_mutex_);
    {
      std::unique_lock<std::mutex> lock(mutex_);
      while (static_cast<int>(workers_.size()) < num_tasks - 1) {
        int index = static_cast<int>(workers_.size()) + 1;
        uint64_t current = generation_;  // the new worker waits for the job announced below
        workers_.emplace_back([this, index, current] { worker_loop(index, current); });
      }
      task_ = &task;
      num_tasks_ = num_tasks;
      pending_ = num_tasks - 1;
      ++generation_;
    }
    start_.notify_all();
    task(0);
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return pending_ == 0; });
    task_ = nullptr;
  }

 private:
  void worker_loop(int index, uint64_t seen) {
    for (;;) {
      const std::function<void(int)>* task = nullptr;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        start_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        if (index >= num_tasks_) continue;
        task = task_;
      }
      (*task)(index);
      std::lock_guard<std::mutex> lock(mutex_);
      if (--pending_ == 0) done_.notify_one();
    }
  }

  std::mutex caller_mutex_;
  std::mutex mutex_;
  std::condition_variable start_;
  std::condition_variable done_;
  std::vector<std::thread> workers_;
  const std::function<void(int)>* task_ = nullptr;
  int num_tasks_ = 0;
  int pending_ = 0;
  uint64_t generation_ = 0;
};

}  // namespace

void parallel_for(int64_t n, int num_threads, const std::function<void(int64_t, int64_t)>& body) {
  if (n <= 0) return;
  int tasks = static_cast<int>(std::min<int64_t>(std::max(num_threads, 1), n));
  if (tasks == 1) {
    body(0, n);
    return;
  }
  int64_t chunk = (n + tasks - 1) / tasks;
  ThreadPool::instance().run(tasks, [&](int i) {
    int64_t begin = i * chunk;
    int64_t end = std::min(n, begin + chunk);
    if (begin < end) body(begin, end);
  });
}

void parallel_for_chunks(int64_t n, int64_t grain, int num_threads,
                         const std::function<void(int64_t, int64_t)>& body) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t chunks = (n + grain - 1) / grain;
  const int tasks = static_cast<int>(std::min<int64_t>(std::max(num_threads, 1), chunks));
  if (tasks == 1) {
    body(0, n);
    return;
  }
  std::atomic<int64_t> next{0};
  ThreadPool::instance().run(tasks, [&](int) {
    for (int64_t chunk = next.fetch_add(1); chunk < chunks; chunk = next.fetch_add(1)) {
      body(chunk * grain, std::min(n, (chunk + 1) * grain));
    }
  });
}

}  // namespace apt_fast
