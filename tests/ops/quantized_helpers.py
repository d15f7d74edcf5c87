"""Shared pieces of the quantized-linear tests: weights in both layouts."""

from __future__ import annotations

import pytest
import torch

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
