"""Ops of the unstructured sparse linear layer on a bitmap weight (semantics and format:
apt_fast/reference/bitmap_linear.py):

  bitmap_linear            y = x . W^T (+ bias), W held as bitmap + row_offsets + packed values (fp32|bf16|int8)
  bitmap_linear_backward   (grad_x, grad_values): grad_y . W through the sparse weight, and grad_y^T . x at the
                           kept entries only; either is skipped (an empty tensor) when its flag is False

The argument checks look at shapes and dtypes only (they run on fake tensors too); that row_offsets agree with
the bitmap is checked once, when a weight is built (apt_fast.sparsity.formats.bitmap).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..reference import bitmap_linear as ref
from ..validation import check_dtype, check_same_device
from .library import define_op

ACTIVATION_DTYPES = (torch.float32, torch.bfloat16)

FORWARD_SCHEMA = ("(Tensor x, Tensor bitmap, Tensor row_offsets, Tensor values, Tensor? scales, Tensor? bias, "
                  "int out_features) -> Tensor")
BACKWARD_SCHEMA = ("(Tensor grad_y, Tensor x, Tensor bitmap, Tensor row_offsets, Tensor values, Tensor? scales, "
                   "bool need_grad_x, bool need_grad_values) -> (Tensor, Tensor)")


def _check_shape(name: str, tensor: Tensor, shape) -> None:
    if tuple(tensor.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {list(shape)}, got {list(tensor.shape)}")


def check_weight(x: Tensor, bitmap: Tensor, row_offsets: Tensor, values: Tensor, scales: Optional[Tensor],
                 out_features: int) -> None:
    """x [..., K] fp32|bf16 and a bitmap weight [out_features, K] on x's device."""
    check_dtype("x", x, ACTIVATION_DTYPES)
    if x.dim() < 1 or x.shape[-1] < 1:
        raise ValueError(f"x must have shape [..., in_features] with in_features >= 1, got {list(x.shape)}")
    if out_features < 1:
        raise ValueError(f"out_features must be >= 1, got {out_features}")
    check_dtype("bitmap", bitmap, (torch.int64,))
    _check_shape("bitmap", bitmap, (out_features, ref.words_of(x.shape[-1])))
    check_dtype("row_offsets", row_offsets, (torch.int64,))
    _check_shape("row_offsets", row_offsets, (out_features + 1,))
    check_dtype("values", values, ref.VALUE_DTYPES)
    if values.dim() != 1:
        raise ValueError(f"values must be 1-D [nnz], got shape {list(values.shape)}")
    if values.dtype == torch.int8:
        if scales is None:
            raise ValueError("scales must be given (fp32 [out_features]) with int8 values, got None")
        check_dtype("scales", scales, (torch.float32,))
        _check_shape("scales", scales, (out_features,))
        check_same_device("scales", scales, "x", x)
    elif scales is not None:
        raise ValueError(f"scales must be None with {str(values.dtype).replace('torch.', '')} values, got a tensor "
                         f"of shape {list(scales.shape)}")
    for name, tensor in (("bitmap", bitmap), ("row_offsets", row_offsets), ("values", values)):
        check_same_device(name, tensor, "x", x)


def _check_forward(x, bitmap, row_offsets, values, scales, bias, out_features) -> None:
    check_weight(x, bitmap, row_offsets, values, scales, out_features)
    if bias is not None:
        check_dtype("bias", bias, ACTIVATION_DTYPES)
        _check_shape("bias", bias, (out_features,))
        check_same_device("bias", bias, "x", x)


def _check_backward(grad_y, x, bitmap, row_offsets, values, scales, need_grad_x, need_grad_values) -> None:
    check_weight(x, bitmap, row_offsets, values, scales, bitmap.shape[0] if bitmap.dim() == 2 else -1)
    check_dtype("grad_y", grad_y, ACTIVATION_DTYPES)
    _check_shape("grad_y", grad_y, (*x.shape[:-1], bitmap.shape[0]))
    check_same_device("grad_y", grad_y, "x", x)
    if need_grad_values and values.dtype == torch.int8:
        raise ValueError("need_grad_values must be False with int8 values (they are frozen), got True")


def _forward_fake(x, bitmap, row_offsets, values, scales, bias, out_features):
    return x.new_empty((*x.shape[:-1], out_features))


def _backward_fake(grad_y, x, bitmap, row_offsets, values, scales, need_grad_x, need_grad_values):
    grad_x = grad_y.new_empty(x.shape if need_grad_x else (0,))
    return grad_x, values.new_empty(values.shape if need_grad_values else (0,))


define_op("bitmap_linear", FORWARD_SCHEMA, ref.bitmap_linear_ref, _forward_fake, check=_check_forward)
define_op("bitmap_linear_backward", BACKWARD_SCHEMA, ref.bitmap_linear_backward_ref, _backward_fake,
          check=_check_backward)
