// parallel_for on OpenMP. torch (imported before apt_fast._C) has already loaded its own libgomp.so.1,
// and the dynamic loader resolves our libgomp.so.1 dependency to that same library by its soname, so
// apt_fast's kernels run on the very thread team that torch's GEMMs use. A second pool of our own
// would compete for the cores with those threads while they spin-wait after each torch op (about a
// millisecond by default), which doubled the time of millisecond-sized kernels inside a model.
#include "common/parallel_for.h"

#include <omp.h>

#include <algorithm>
#include <atomic>

namespace apt_fast {
namespace {

// Calls task(i) once for each i in [0, num_tasks) on up to num_threads threads. Tasks are claimed from
// an atomic counter, so a thread that starts late (on a machine shared with other processes) takes
// fewer tasks instead of holding the others back.
template <class Task>
void run_claimed(int64_t num_tasks, int num_threads, const Task& task) {
  std::atomic<int64_t> next{0};
#pragma omp parallel num_threads(num_threads)
  for (int64_t i = next.fetch_add(1); i < num_tasks; i = next.fetch_add(1)) task(i);
}

int threads_for(int64_t tasks, int num_threads) {
  // Inside another parallel region (nested parallelism is off in torch) the call runs serially.
  if (omp_in_parallel()) return 1;
  return static_cast<int>(std::min<int64_t>(std::max(num_threads, 1), tasks));
}

}  // namespace

void parallel_for(int64_t n, int num_threads, const std::function<void(int64_t, int64_t)>& body) {
  if (n <= 0) return;
  const int threads = threads_for(n, num_threads);
  if (threads == 1) {
    body(0, n);
    return;
  }
  // A few ranges per thread, claimed in turn, so that a thread that starts late still takes a share.
  constexpr int64_t kRangesPerThread = 4;
  const int64_t ranges = std::min<int64_t>(n, threads * kRangesPerThread), size = (n + ranges - 1) / ranges;
  run_claimed((n + size - 1) / size, threads, [&](int64_t i) { body(i * size, std::min(n, (i + 1) * size)); });
}

void parallel_for_chunks(int64_t n, int64_t grain, int num_threads,
                         const std::function<void(int64_t, int64_t)>& body) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t chunks = (n + grain - 1) / grain;
  const int threads = threads_for(chunks, num_threads);
  if (threads == 1) {
    body(0, n);
    return;
  }
  run_claimed(chunks, threads, [&](int64_t chunk) { body(chunk * grain, std::min(n, (chunk + 1) * grain)); });
}

}  // namespace apt_fast
