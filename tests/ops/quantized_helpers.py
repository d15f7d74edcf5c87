"""Shared pieces of the quantized-linear tests: weights in both layouts, and running at a tier with AMX forced
down to small row counts (the AMX kernels only take over from amx_min_rows() rows on)."""

from __future__ import annotations

import contextlib

import pytest
import torch
from simd_tiers import ALL_TIERS, at_tier

from apt_fast import _native
from apt_fast.backends.cpu.panels import pack_fp8, pack_int8
from apt_fast.reference import quantized_linear as ref


def int8_weights(n: int, k: int, group_size: int, seed: int = 0):
    """(q [n, k] int8 in [-127, 127], scales [n, groups]) from a random fp32 weight."""
    w = torch.randn(n, k, generator=torch.Generator().manual_seed(seed))
    return ref.quantize_int8_weight(w, group_size)


def fp8_weights(n: int, k: int, group_size: int, fp8_format: int, seed: int = 0):
    w = torch.randn(n, k, generator=torch.Generator().manual_seed(seed)) * 0.5
    return ref.quantize_fp8_weight(w, fp8_format, group_size, per_tensor=False)


def _skip_without_native(layout: str) -> None:
    """Packing runs in apt_fast._C: without it, the test skips here (after the samples before this one ran)."""
    if not _native.is_available():
        pytest.skip(f"packing {layout} weight panels needs apt_fast._C, which is not built or disabled by "
                    f"APT_FAST_SKIP_NATIVE=1")


def packed_int8(q, scales, group_size):
    _skip_without_native("int8")
    panels, compensation, packed_scales = pack_int8(q, scales, group_size)
    return panels, compensation, packed_scales


def packed_fp8(codes, scales, group_size):
    _skip_without_native("FP8")
    return pack_fp8(codes, scales, group_size)


@contextlib.contextmanager
def every_row_on_amx():
    native = _native.native()
    previous = native.amx_min_rows()
    native.set_amx_min_rows(1)
    try:
        yield
    finally:
        native.set_amx_min_rows(previous)


@contextlib.contextmanager
def at_kernel_tier(tier: str):
    """The native kernels at `tier` ('amx': the AMX kernels for every row count); skips where the CPU lacks it."""
    with at_tier(tier):
        if tier == "amx":
            with every_row_on_amx():
                yield tier
        else:
            yield tier


KERNEL_TIERS = ALL_TIERS
