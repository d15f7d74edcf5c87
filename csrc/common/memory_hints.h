// Memory hints for large output buffers the kernels are about to fill for the first time.
#pragma once

#include <cstddef>
#include <cstdint>

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace apt_fast {

// Asks the kernel to back the 2 MiB-aligned interior of [data, data + bytes) with transparent huge pages
// (Linux, THP in "madvise" mode): a freshly mmapped buffer then costs one page fault per 2 MiB instead of
// one per 4 KiB when first written. A hint only: ignored where unsupported, harmless on touched memory.
inline void advise_huge_pages(void* data, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t{1} << 21;
  if (bytes < 2 * kHuge) return;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes) & ~(kHuge - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)data;
  (void)bytes;
#endif
}

}  // namespace apt_fast
