"""Ops of the block-sparse (block-CSR) linear layer (semantics and format: apt_fast/reference/block_linear.py):

  block_linear            y = x . W^T (+ bias), W kept as whole blocks: values [blocks, bn, bk], block_row_offsets,
                          block_columns
  block_linear_backward   (grad_x, grad_values): grad_y . W and dW on the kept blocks; either may be skipped (an
                          empty tensor in its place)

The argument checks look at shapes and dtypes; the offsets and columns themselves are checked by every kernel
(the native one in C++, one pass over each) and where a weight is built (apt_fast.sparsity.formats.block).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..reference import block_linear as ref
from ..validation import check_dtype, check_same_device
from .library import define_op
from .nm_linear import ACTIVATION_DTYPES, backward_fake, check_activations, check_bias

FORWARD_SCHEMA = ("(Tensor x, Tensor values, Tensor block_row_offsets, Tensor block_columns, Tensor? bias, "
                  "int out_features) -> Tensor")
BACKWARD_SCHEMA = ("(Tensor grad_out, Tensor x, Tensor values, Tensor block_row_offsets, Tensor block_columns, "
                   "bool need_grad_x, bool need_grad_values) -> (Tensor, Tensor)")


def check_weight(values: Tensor, block_row_offsets: Tensor, block_columns: Tensor, out_features: int,
                 in_features: int, like: Tensor) -> None:
    """values [blocks, bn, bk] fp32|bf16 with (bn, bk) tiling [out_features, in_features]; offsets int64
    [N / bn + 1]; columns int32 [blocks]."""
    check_dtype("values", values, ref.VALUE_DTYPES)
    if values.dim() != 3:
        raise ValueError(f"values must be 3-D [blocks, bn, bk], got shape {tuple(values.shape)}")
    if out_features < 1:
        raise ValueError(f"out_features must be >= 1, got {out_features}")
    bn, bk = ref.check_block(values.shape[1:], out_features, in_features)
    check_dtype("block_row_offsets", block_row_offsets, (torch.int64,))
    if tuple(block_row_offsets.shape) != (out_features // bn + 1,):
        raise ValueError(f"block_row_offsets must have shape ({out_features // bn + 1},), got "
                         f"{tuple(block_row_offsets.shape)}")
    check_dtype("block_columns", block_columns, (torch.int32,))
    if tuple(block_columns.shape) != (values.shape[0],):
        raise ValueError(f"block_columns must have shape ({values.shape[0]},) like values' blocks, got "
                         f"{tuple(block_columns.shape)}")
    for name, tensor in (("values", values), ("block_row_offsets", block_row_offsets),
                         ("block_columns", block_columns)):
        check_same_device(name, tensor, "x", like)


def _check_x(x: Tensor) -> None:
    check_dtype("x", x, ACTIVATION_DTYPES)
    if x.dim() < 1 or x.shape[-1] < 1:
        raise ValueError(f"x must have shape [..., in_features], got {tuple(x.shape)}")


def _check_forward(x, values, block_row_offsets, block_columns, bias, out_features) -> None:
    _check_x(x)
    check_weight(values, block_row_offsets, block_columns, out_features, x.shape[-1], x)
    check_bias(bias, out_features, x)


def _check_backward(grad_out, x, values, block_row_offsets, block_columns, need_grad_x, need_grad_values) -> None:
    _check_x(x)
    check_dtype("grad_out", grad_out, ACTIVATION_DTYPES)
    out_features = grad_out.shape[-1] if grad_out.dim() else 0
    check_weight(values, block_row_offsets, block_columns, out_features, x.shape[-1], x)
    check_activations("grad_out", grad_out, out_features, "out_features")
    if tuple(grad_out.shape[:-1]) != tuple(x.shape[:-1]):
        raise ValueError(f"grad_out must have x's leading shape {tuple(x.shape[:-1])}, got {tuple(grad_out.shape)}")
    check_same_device("grad_out", grad_out, "x", x)


def _forward_fake(x, values, block_row_offsets, block_columns, bias, out_features):
    return x.new_empty((*x.shape[:-1], out_features))


def _backward_fake(grad_out, x, values, block_row_offsets, block_columns, need_grad_x, need_grad_values):
    return backward_fake(grad_out, x, values, need_grad_x, need_grad_values)


def _backward_reference(grad_out, x, values, block_row_offsets, block_columns, need_grad_x, need_grad_values):
    return ref.block_linear_backward_ref(grad_out, x, values, block_row_offsets, block_columns, need_grad_x,
                                         need_grad_values)


define_op("block_linear", FORWARD_SCHEMA, ref.block_linear_ref, _forward_fake, check=_check_forward)
define_op("block_linear_backward", BACKWARD_SCHEMA, _backward_reference, _backward_fake, check=_check_backward)
