"""Kernel views of torch tensors for apt_fast._C's attention kernels: fp32 with unit stride along the last dim
(copying only if needed), handed over as (data_ptr, strides...) tuples."""

from __future__ import annotations

from typing import Optional, Tuple

from torch import Tensor

NO_VIEW = (0, 0, 0, 0, 0)


def as_fp32_rows(x: Tensor) -> Tensor:
    """fp32 with unit stride along the last dim; other strides kept (no copy when already so)."""
    x = x.float()
    return x if x.stride(-1) == 1 else x.contiguous()


def head_view(x: Tensor) -> Tuple[int, int, int, int]:  # x [B, H, L, d] fp32, unit stride along d
    return (x.data_ptr(), x.stride(0), x.stride(1), x.stride(2))


def broadcast_view(x: Optional[Tensor], target: Tuple[int, int, int, int]) -> Tuple[int, ...]:
    """(data_ptr, strides of x broadcast to target [B, H, T, S]) with stride 0 along broadcast dims."""
    if x is None:
        return NO_VIEW
    expanded = x.reshape((1,) * (4 - x.dim()) + tuple(x.shape)).expand(target)
    return (x.data_ptr(), *expanded.stride())


def dims(q: Tensor, k: Tensor) -> Tuple[int, int, int, int, int]:
    return (q.shape[0], q.shape[1], q.shape[2], k.shape[2], q.shape[3])


def attention_target(q: Tensor, k: Tensor) -> Tuple[int, int, int, int]:
    return (q.shape[0], q.shape[1], q.shape[2], k.shape[2])
