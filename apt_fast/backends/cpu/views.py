"""Kernel views of torch tensors for apt_fast._C's attention kernels: unit stride along the last dim (copying only
if needed), handed over as (data_ptr, strides...) tuples. The kernels read fp32 or bf16 (dtype codes below): bf16
is passed as it is; fp16 is computed in fp32 (as_fp32_rows) and its results cast back."""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

NO_VIEW = (0, 0, 0, 0, 0)
DTYPE_CODES = {torch.float32: 0, torch.bfloat16: 1}  # the kernels' element types


def as_fp32_rows(x: Tensor) -> Tensor:
    """fp32 with unit stride along the last dim; other strides kept (no copy when already so)."""
    x = x.float()
    return x if x.stride(-1) == 1 else x.contiguous()


def kernel_rows(x: Tensor) -> Tensor:
    """x as the kernels read it: bf16 stays bf16, fp32 stays fp32, fp16 becomes fp32; unit stride along the last
    dim, other strides kept (no copy when already so)."""
    if x.dtype != torch.bfloat16:
        return as_fp32_rows(x)
    return x if x.stride(-1) == 1 else x.contiguous()


def dtype_code(x: Tensor) -> int:
    """The kernels' code of a tensor made by kernel_rows (0 float32, 1 bfloat16)."""
    return DTYPE_CODES[x.dtype]


def head_view(x: Tensor) -> Tuple[int, int, int, int]:  # x [B, H, L, d] fp32 or bf16, unit stride along d
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
