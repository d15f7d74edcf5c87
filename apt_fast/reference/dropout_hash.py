"""The dropout draw of apt_fast's attention kernels, in plain PyTorch.

Element (b, h, t, s) of a [B, H, T, S] probability tensor is kept when u >= p, where u is the top 24 bits
of splitmix64(seed + (index + 1) · 0x9E3779B97F4A7C15) scaled to [0, 1) and index = ((b·H + h)·T + t)·S + s.
Kept entries are scaled by 1 / (1 - p). A kernel never stores the mask: its backward regenerates it
from the seed, which the caller draws from torch's generator (so torch.manual_seed governs it).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB


def _int64(value: int) -> int:
    """The two's-complement int64 with the same 64 bits as an unsigned value."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _shr(z: Tensor, bits: int) -> Tensor:
    """Logical right shift of int64 bit patterns."""
    return (z >> bits) & ((1 << (64 - bits)) - 1)


def draw_seed() -> int:
    """A dropout seed from torch's default generator."""
    return int(torch.randint(0, 2**62, (), dtype=torch.int64))


def dropout_keep_factors(seed: int, shape: Sequence[int], p: float, device=None) -> Tensor:  # float32 [*shape]
    """0 where dropped, 1 / (1 - p) where kept (int64 arithmetic wraps modulo 2^64, as in the kernels)."""
    index = torch.arange(int(torch.tensor(shape).prod()), dtype=torch.int64, device=device).reshape(tuple(shape))
    z = _int64(seed) + (index + 1) * _int64(_GOLDEN)
    z = (z ^ _shr(z, 30)) * _int64(_MIX1)
    z = (z ^ _shr(z, 27)) * _int64(_MIX2)
    z = z ^ _shr(z, 31)
    u = _shr(z, 40).to(torch.float32) * (1.0 / 16777216.0)
    p32 = torch.tensor(p, dtype=torch.float32, device=device)  # the kernels take p as float32
    return torch.where(u >= p32, 1.0 / (1.0 - p32), torch.zeros((), device=device))
