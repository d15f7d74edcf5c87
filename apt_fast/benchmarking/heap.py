"""glibc malloc settings for the two kinds of measurement (no-ops where libc.so.6 is not glibc's).

* Peak memory (memory.py): freed memory must go back to the system at once, so that a call cannot reuse
  pages that are already resident: allocations above 64 KiB are served by mmap.
* Timing (harness.py): a long-running training or inference process reaches a steady heap in which
  freed memory is reused; a benchmark process, which runs a few calls of many different programs, does
  not. glibc's default trimming and its adaptive mmap threshold then make the page faults of re-growing
  the heap (measured: up to 260 MB of minor faults in one forward of the reference APT model) depend on
  whatever ran before, and dominate millisecond timings. Timing runs therefore ask glibc to keep freed
  memory (no trimming, mmap only above 32 MiB, glibc's largest threshold), for baseline and candidate
  alike. It is not a guarantee (in some heap layouts a freed aligned chunk is still faulted in again),
  but it took the reference forward from 92-270 ms, depending on the cases run before it, to 119-134 ms.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Optional

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit systems
_INT_MAX = 2**31 - 1


@functools.lru_cache(maxsize=None)
def libc() -> Optional[ctypes.CDLL]:
    try:
        library = ctypes.CDLL("libc.so.6")
        library.mallopt  # noqa: B018 - glibc's, not another libc's
    except (OSError, AttributeError):
        return None
    return library


def release_freed_memory_at_once() -> None:
    """For peak measurements: large allocations by mmap, and free heap memory trimmed now."""
    library = libc()
    if library is not None:
        library.mallopt(_M_MMAP_THRESHOLD, 64 * 1024)
        library.malloc_trim(0)


def keep_freed_memory() -> None:
    """For timings: freed memory stays in the heap for reuse (see the module docstring)."""
    library = libc()
    if library is not None:
        library.mallopt(_M_TRIM_THRESHOLD, _INT_MAX)
        library.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
