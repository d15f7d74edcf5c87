// Parallel loops for the kernels, on torch's OpenMP thread team (see parallel_for.cpp); the caller passes
// torch.get_num_threads() as num_threads.
#pragma once

#include <cstdint>
#include <functional>

namespace apt_fast {

// Runs body(begin, end) over [0, n) split into contiguous ranges (a few per thread), on up to num_threads
// threads in parallel. The ranges are claimed by whichever threads are running: a worker the OS has not
// scheduled yet is not waited for (the others take its ranges), so a busy shared machine costs no time
// slices to synchronisation.
void parallel_for(int64_t n, int num_threads, const std::function<void(int64_t, int64_t)>& body);

// Runs body(begin, end) over [0, n) in chunks of `grain` (the last one shorter) that up to num_threads
// threads take in turn: for bandwidth-bound loops on a shared machine, where a thread that is
// descheduled then holds back one chunk rather than a 1/num_threads share of the work.
void parallel_for_chunks(int64_t n, int64_t grain, int num_threads,
                         const std::function<void(int64_t, int64_t)>& body);

}  // namespace apt_fast
