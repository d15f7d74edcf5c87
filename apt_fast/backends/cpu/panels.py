"""The CPU kernels' packed weight layouts (csrc/quantized_linear/quantized_linear.h): packing once per layer,
and back to the row-major layout that files hold. Packing needs apt_fast._C; unpacking falls back to the
reference's pure-PyTorch index arithmetic."""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

from ..._native import native
from ...reference import quantized_linear as ref


def _packed_sizes(n: int, k: int) -> Tuple[int, int]:
    return ref.padded(n, ref.PAD_N), ref.padded(k, ref.PAD_K)


def pack_scales(scales: Tensor, n: int, k: int, group_size: int) -> Tensor:  # [N, groups] -> [groups, Np]
    np_, _ = _packed_sizes(n, k)
    scales = scales.float().contiguous()
    packed = torch.empty((k // group_size, np_), dtype=torch.float32)
    native().pack_scales(scales.data_ptr(), n, k, group_size, packed.data_ptr())
    return packed


def pack_int8(q: Tensor, scales: Tensor, group_size: int) -> Tuple[Tensor, Tensor, Tensor]:
    """q [N, K] int8, scales [N, groups] -> (panels [Np * Kp] int8, compensation [groups, Np] int32, scales
    [groups, Np])."""
    n, k = q.shape
    np_, kp = _packed_sizes(n, k)
    q = q.contiguous()
    panels = torch.empty(np_ * kp, dtype=torch.int8)
    compensation = torch.empty((k // group_size, np_), dtype=torch.int32)
    native().pack_int8_panels(q.data_ptr(), n, k, group_size, panels.data_ptr(), compensation.data_ptr(),
                              torch.get_num_threads())
    return panels, compensation, pack_scales(scales, n, k, group_size)


def pack_fp8(codes: Tensor, scales: Tensor, group_size: int) -> Tuple[Tensor, Tensor]:
    """codes [N, K] FP8 bytes, scales [N, groups] -> (panels [Np * Kp] uint8, scales [groups, Np])."""
    n, k = codes.shape
    np_, kp = _packed_sizes(n, k)
    codes = codes.view(torch.uint8).contiguous()
    panels = torch.empty(np_ * kp, dtype=torch.uint8)
    native().pack_code_panels(codes.data_ptr(), n, k, panels.data_ptr(), torch.get_num_threads())
    return panels, pack_scales(scales, n, k, group_size)


def dequantize_rows(panels: Tensor, scales: Tensor, rows: Tensor, n: int, k: int, group_size: int,
                    weight_format: int) -> Tensor:
    """fp32 [len(rows), K]: the listed layer rows (int64 indices) of packed weights, dequantized."""
    rows = rows.to(torch.int64).contiguous()
    out = torch.empty((rows.numel(), k), dtype=torch.float32)
    if rows.numel():
        args = (panels.data_ptr(), n, k, group_size, scales.data_ptr(), rows.data_ptr(), rows.numel(),
                out.data_ptr(), torch.get_num_threads())
        if weight_format == ref.INT8_CODE:
            native().dequantize_int8_panels(*args)
        else:
            native().dequantize_code_panels(weight_format, *args)
    return out
