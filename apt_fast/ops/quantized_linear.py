"""Ops of the quantized linear layers (semantics: apt_fast/reference/quantized_linear.py):

  int8_linear                   y = x . W^T (+ bias), int8 W, activations quantized per row to 8 or 16 bits
  fp8_linear                    y = bf16(x) . W^T (+ bias), W in FP8 (e4m3fn / e5m2)
  quantized_linear_grad_input   grad_x = grad_y . dequantize(W) (the weight is frozen)
  fp8_quantize                  FP8 codes of x / scale, rounded to nearest even as torch does

A weight comes in one of two layouts, told apart by its rank: [N, K] row-major (files, Triton, the reference) or
the CPU kernels' packed panels, 1-D [Np * Kp] (csrc/quantized_linear/quantized_linear.h), whose scales and int8
compensation are then [groups, Np]; row-major scales are [N, groups]. Modules hold the layout of their device.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..reference import quantized_linear as ref
from ..validation import check_dtype, check_same_device
from .library import define_op

ACTIVATION_DTYPES = (torch.float32, torch.bfloat16)

INT8_SCHEMA = ("(Tensor x, Tensor weight, Tensor compensation, Tensor scales, Tensor? bias, int out_features, "
               "int group_size, int activation_bits) -> Tensor")
FP8_SCHEMA = ("(Tensor x, Tensor weight, Tensor scales, Tensor? bias, int out_features, int group_size, "
              "int fp8_format) -> Tensor")
GRAD_SCHEMA = ("(Tensor grad_out, Tensor weight, Tensor scales, int in_features, int group_size, "
               "int weight_format) -> Tensor")
QUANTIZE_SCHEMA = "(Tensor x, Tensor scales, int fp8_format, bool saturate) -> Tensor"


def is_packed(weight: Tensor) -> bool:
    return weight.dim() == 1


def check_weight(weight: Tensor, dtype: torch.dtype, scales: Tensor, n: int, k: int, group_size: int) -> None:
    """weight [N, K] with scales [N, groups], or panels [Np * Kp] with scales [groups, Np]; group_size valid."""
    if n < 1:
        raise ValueError(f"out_features must be >= 1, got {n}")
    if group_size < 1 or k % group_size != 0 or (group_size != k and group_size % 32 != 0):
        raise ValueError(f"group_size must divide in_features {k} and be a multiple of 32 (or {k}), got {group_size}")
    check_dtype("weight", weight, (dtype,))
    check_dtype("scales", scales, (torch.float32,))
    groups = k // group_size
    if is_packed(weight):
        size, scale_shape = ref.padded(n, ref.PAD_N) * ref.padded(k, ref.PAD_K), (groups, ref.padded(n, ref.PAD_N))
        if weight.numel() != size:
            raise ValueError(f"packed weight must have {size} elements for [{n}, {k}], got {weight.numel()}")
    elif weight.dim() == 2:
        scale_shape = (n, groups)
        if tuple(weight.shape) != (n, k):
            raise ValueError(f"weight must have shape [{n}, {k}], got {tuple(weight.shape)}")
    else:
        raise ValueError(f"weight must be [out_features, in_features] or packed 1-D panels, got shape "
                         f"{tuple(weight.shape)}")
    if tuple(scales.shape) != scale_shape:
        raise ValueError(f"scales must have shape {list(scale_shape)}, got {tuple(scales.shape)}")
    check_same_device("scales", scales, "weight", weight)


def check_activations(x: Tensor, weight: Tensor, bias: Optional[Tensor], n: int) -> None:
    check_dtype("x", x, ACTIVATION_DTYPES)
    if x.dim() < 1 or x.shape[-1] < 1:
        raise ValueError(f"x must have shape [..., in_features], got {tuple(x.shape)}")
    check_same_device("weight", weight, "x", x)
    if bias is not None:
        check_dtype("bias", bias, (torch.float32,))
        if tuple(bias.shape) != (n,):
            raise ValueError(f"bias must have shape [{n}], got {tuple(bias.shape)}")
        check_same_device("bias", bias, "x", x)


def check_fp8_format(fp8_format: int) -> None:
    if fp8_format not in ref.FP8_CODES:
        raise ValueError(f"fp8_format must be 1 (e4m3) or 2 (e5m2), got {fp8_format}")


def _check_int8(x, weight, compensation, scales, bias, out_features, group_size, activation_bits) -> None:
    check_activations(x, weight, bias, out_features)
    check_weight(weight, torch.int8, scales, out_features, x.shape[-1], group_size)
    if activation_bits not in (8, 16):
        raise ValueError(f"activation_bits must be 8 or 16, got {activation_bits}")
    if is_packed(weight):
        check_dtype("compensation", compensation, (torch.int32,))
        if compensation.shape != scales.shape:
            raise ValueError(f"compensation must have the packed scales' shape {tuple(scales.shape)}, got "
                             f"{tuple(compensation.shape)}")


def _check_fp8(x, weight, scales, bias, out_features, group_size, fp8_format) -> None:
    check_fp8_format(fp8_format)
    check_activations(x, weight, bias, out_features)
    check_weight(weight, torch.uint8, scales, out_features, x.shape[-1], group_size)


def _check_grad(grad_out, weight, scales, in_features, group_size, weight_format) -> None:
    if weight_format != ref.INT8_CODE:
        check_fp8_format(weight_format)
    check_dtype("grad_out", grad_out, ACTIVATION_DTYPES)
    n = grad_out.shape[-1] if grad_out.dim() else 0
    check_weight(weight, torch.int8 if weight_format == ref.INT8_CODE else torch.uint8, scales, n, in_features,
                 group_size)
    check_same_device("weight", weight, "grad_out", grad_out)


def _check_quantize(x, scales, fp8_format, saturate) -> None:
    check_fp8_format(fp8_format)
    check_dtype("x", x, ACTIVATION_DTYPES)
    check_dtype("scales", scales, (torch.float32,))
    if x.dim() != 2 or scales.dim() != 2 or scales.shape[0] != x.shape[0] or scales.shape[1] < 1 \
            or x.shape[1] % scales.shape[1] != 0:
        raise ValueError(f"x must be [rows, cols] and scales [rows, groups] with groups dividing cols, got "
                         f"{tuple(x.shape)} and {tuple(scales.shape)}")
    check_same_device("scales", scales, "x", x)


def row_major(weight: Tensor, scales: Tensor, n: int, k: int, int8: bool):
    """(weight [N, K], scales [N, groups]) from either layout."""
    if not is_packed(weight):
        return weight, scales
    unpack = ref.unpack_int8_panels if int8 else ref.unpack_code_panels
    return unpack(weight, n, k), ref.unpack_scales(scales, n)


def _int8_reference(x, weight, compensation, scales, bias, out_features, group_size, activation_bits):
    q, s = row_major(weight, scales, out_features, x.shape[-1], int8=True)
    return ref.int8_linear_ref(x, q, s, bias, group_size, activation_bits)


def _fp8_reference(x, weight, scales, bias, out_features, group_size, fp8_format):
    codes, s = row_major(weight, scales, out_features, x.shape[-1], int8=False)
    return ref.fp8_linear_ref(x, codes, s, bias, group_size, fp8_format)


def _grad_reference(grad_out, weight, scales, in_features, group_size, weight_format):
    q, s = row_major(weight, scales, grad_out.shape[-1], in_features, int8=weight_format == ref.INT8_CODE)
    return ref.quantized_linear_grad_input_ref(grad_out, q, s, weight_format)


def _linear_fake(x, weight, *args):
    out_features = args[-3]
    return x.new_empty((*x.shape[:-1], out_features))


def _grad_fake(grad_out, weight, scales, in_features, group_size, weight_format):
    return grad_out.new_empty((*grad_out.shape[:-1], in_features))


def _quantize_fake(x, scales, fp8_format, saturate):
    return torch.empty(x.shape, dtype=torch.uint8, device=x.device)


define_op("int8_linear", INT8_SCHEMA, _int8_reference, _linear_fake, check=_check_int8)
define_op("fp8_linear", FP8_SCHEMA, _fp8_reference, _linear_fake, check=_check_fp8)
define_op("quantized_linear_grad_input", GRAD_SCHEMA, _grad_reference, _grad_fake, check=_check_grad)
define_op("fp8_quantize", QUANTIZE_SCHEMA, ref.fp8_quantize_ref, _quantize_fake, check=_check_quantize)
