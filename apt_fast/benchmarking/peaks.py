"""This machine's measured peaks, for "% of peak" in benchmark reports: the read bandwidth of memory (a streaming
read of 1 GiB, past every cache) and the arithmetic rates of the dtypes' best units (register-only loops of
csrc/peak: AMX where the kernels use it, else AVX-512). Measured once per process and thread count."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional

import torch

from .. import _native

MEMORY_BYTES = 1 << 30
COMPUTE_UNITS = {"int8": ("amx_int8", "int8_dot"), "bf16": ("amx_bf16", "bf16_dot"), "fp32": (None, "fp32_fma")}


@dataclass(frozen=True)
class Work:
    """What one candidate call does: `amount` bytes read ("memory") or operations (a dtype of COMPUTE_UNITS; a
    multiply-add counts 2), to be set against the machine's measured peak of that kind."""

    amount: float
    kind: str  # "memory" | "int8" | "bf16" | "fp32"

    @property
    def unit(self) -> str:
        return "B/s" if self.kind == "memory" else "op/s"


def peak_kind(kind: str) -> Optional[str]:
    """The csrc/peak kind measuring `kind` on this machine's tier in use (None: memory, or no native build)."""
    if kind == "memory" or not _native.is_available():
        return None
    amx, vector = COMPUTE_UNITS[kind]
    return amx if amx is not None and _native.native().simd_level() == "amx" else vector


@functools.lru_cache(maxsize=None)
def measured_peak(kind: str, threads: int) -> Optional[float]:
    """Bytes or operations per second; None where this build cannot measure it."""
    if not _native.is_available():
        return None
    native = _native.native()
    if kind == "memory":
        return native.read_bytes_per_second(MEMORY_BYTES, threads)
    unit = peak_kind(kind)
    if unit is None or native.simd_level() not in ("avx512", "amx"):
        return None
    return native.peak_ops_per_second(unit, threads)


def describe(work: Work, seconds: float) -> dict:
    """{rate, unit, peak_kind, peak, peak_fraction} of `work` done in `seconds` on torch's thread count."""
    threads = torch.get_num_threads()
    rate = work.amount / seconds
    peak = measured_peak(work.kind, threads)
    return {"rate": rate, "unit": work.unit, "peak_kind": peak_kind(work.kind) or work.kind, "peak": peak,
            "peak_fraction": None if not peak else rate / peak}
