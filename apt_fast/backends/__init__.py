"""Per-device kernels for the apt_fast ops, registered at import where they are written:
backends/cpu/<family>.py (apt_fast._C) and backends/triton/<family>.py (apt_fast.kernels).
registry.py says how APT_FAST_BACKEND chooses between them and the reference."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Dict

from .. import _native
from . import cpu, triton  # noqa: F401  (register the kernels)
from .registry import BACKENDS, op_table, selected_backend, triton_available


def cpu_model() -> str:
    """The CPU's model name ('model name' of /proc/cpuinfo on Linux, else what platform reports)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def available() -> Dict[str, object]:
    """What this installation can run: the backend setting, native/Triton availability and, with the native
    build, the kernel tier in use, the best tier of this CPU and the CPU features detected at run time."""
    info: Dict[str, object] = {
        "backend": selected_backend(),
        "native": _native.is_available(),
        "triton": triton_available(),
        "cpu": cpu_model(),
    }
    if _native.is_available():
        native = _native.native()
        info["simd"] = native.simd_level()
        info["simd_detected"] = native.detected_simd_level()
        info["cpu_features"] = native.cpu_features()
    return info


__all__ = ["BACKENDS", "available", "cpu_model", "op_table", "selected_backend", "triton_available"]
