"""Peak resident memory of a call, from the kernel's high-water mark (Linux /proc).

torch has no CPU allocation statistics, so the peak is read as VmHWM after resetting it through
/proc/self/clear_refs. glibc is told to serve allocations above 64 KiB with mmap, so freed tensors
return to the system at once, and free heap memory is trimmed before each measurement, so that a call
cannot reuse pages that are already resident and the high-water mark measures what the call really held
(heap.py).

That malloc setting makes every large allocation page-fault, which would slow allocation-heavy code,
so the benchmark harness measures peaks in a separate process (peak_probe.py) and times in its own.
"""

from __future__ import annotations

from typing import Callable, Optional

from . import heap


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not found in /proc/self/status")


def supported() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        _status_kib("VmHWM")
        return True
    except OSError:
        return False


def peak_bytes(fn: Callable[[], object]) -> Optional[int]:
    """Bytes of resident memory the call added at its peak (None where /proc cannot tell)."""
    if not supported():
        return None
    heap.release_freed_memory_at_once()
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    before = _status_kib("VmRSS")
    result = fn()
    peak = _status_kib("VmHWM")
    del result
    return max(0, peak - before) * 1024
