"""CPU kernels of apt_fast::int8_linear, fp8_linear, quantized_linear_grad_input and fp8_quantize (apt_fast._C).
The ops check the arguments first. Weights arrive packed (modules pack once); a row-major weight is packed here
on every call, which is correct but slow."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..._native import native
from ...ops.quantized_linear import is_packed
from ...reference import quantized_linear as ref
from ..registry import register_kernel
from .panels import dequantize_rows, pack_fp8, pack_int8

DTYPE_CODES = {torch.float32: 0, torch.bfloat16: 1}
GRAD_ROWS_PER_CHUNK = 1024  # weight rows dequantized at a time in the backward (4 MiB per 1024 inputs)


def _rows(x: Tensor) -> Tensor:
    """x [..., K] as [M, K] with unit stride along K (copying only if needed)."""
    rows = x.reshape(-1, x.shape[-1])
    return rows if rows.stride(-1) == 1 else rows.contiguous()


def _bias_pointer(bias: Optional[Tensor]) -> int:
    return bias.contiguous().data_ptr() if bias is not None else 0


@register_kernel("int8_linear", "CPU")
def int8_linear(x: Tensor, weight: Tensor, compensation: Tensor, scales: Tensor, bias: Optional[Tensor],
                out_features: int, group_size: int, activation_bits: int) -> Tensor:
    if not is_packed(weight):
        weight, compensation, scales = pack_int8(weight, scales, group_size)
    rows, k = _rows(x), x.shape[-1]
    bias = bias.contiguous() if bias is not None else None
    y = torch.empty((rows.shape[0], out_features), dtype=x.dtype)  # [M, N]
    native().int8_linear(activation_bits, rows.shape[0], rows.data_ptr(), rows.stride(0), DTYPE_CODES[x.dtype],
                         out_features, k, group_size, weight.data_ptr(), compensation.contiguous().data_ptr(),
                         scales.contiguous().data_ptr(), _bias_pointer(bias), y.data_ptr(), out_features,
                         torch.get_num_threads())
    return y.reshape(*x.shape[:-1], out_features)


@register_kernel("fp8_linear", "CPU")
def fp8_linear(x: Tensor, weight: Tensor, scales: Tensor, bias: Optional[Tensor], out_features: int,
               group_size: int, fp8_format: int) -> Tensor:
    if not is_packed(weight):
        weight, scales = pack_fp8(weight, scales, group_size)
    rows, k = _rows(x), x.shape[-1]
    bias = bias.contiguous() if bias is not None else None
    y = torch.empty((rows.shape[0], out_features), dtype=x.dtype)  # [M, N]
    native().code_linear(fp8_format, rows.shape[0], rows.data_ptr(), rows.stride(0), DTYPE_CODES[x.dtype],
                         out_features, k, group_size, weight.data_ptr(), scales.contiguous().data_ptr(),
                         _bias_pointer(bias), y.data_ptr(), out_features, torch.get_num_threads())
    return y.reshape(*x.shape[:-1], out_features)


@register_kernel("quantized_linear_grad_input", "CPU")
def quantized_linear_grad_input(grad_out: Tensor, weight: Tensor, scales: Tensor, in_features: int,
                                group_size: int, weight_format: int) -> Tensor:
    """grad_x = grad_out . W, W dequantized GRAD_ROWS_PER_CHUNK rows at a time by the C++ kernel and multiplied
    by torch's GEMM: never more than one chunk of fp32 weights in memory."""
    if not is_packed(weight):
        return ref.quantized_linear_grad_input_ref(grad_out, weight, scales, weight_format)
    n = grad_out.shape[-1]
    g = grad_out.reshape(-1, n).float()  # [M, N]
    grad_x = torch.zeros((g.shape[0], in_features), dtype=torch.float32)  # [M, K]
    for n0 in range(0, n, GRAD_ROWS_PER_CHUNK):
        n1 = min(n, n0 + GRAD_ROWS_PER_CHUNK)
        w = dequantize_rows(weight, scales, torch.arange(n0, n1), n, in_features, group_size, weight_format)
        grad_x.addmm_(g[:, n0:n1], w)
    return grad_x.to(grad_out.dtype).reshape(*grad_out.shape[:-1], in_features)


@register_kernel("fp8_quantize", "CPU")
def fp8_quantize(x: Tensor, scales: Tensor, fp8_format: int, saturate: bool) -> Tensor:
    x = x if x.stride(-1) == 1 else x.contiguous()
    scales = scales.contiguous()
    codes = torch.empty(x.shape, dtype=torch.uint8)
    if x.shape[0]:
        native().fp8_quantize(fp8_format, x.shape[0], x.shape[1], x.shape[1] // scales.shape[1], x.data_ptr(),
                              x.stride(0), DTYPE_CODES[x.dtype], scales.data_ptr(), saturate, codes.data_ptr(),
                              torch.get_num_threads())
    return codes
