"""Ops of the N:M sparse linear layer (semantics and format: apt_fast/reference/nm_linear.py):

  nm_linear            y = x . W^T (+ bias), W kept n of every m inputs: values, indices (and scales for int8)
  nm_linear_backward   (grad_x, grad_values): grad_y . W and the masked dW on the kept values; either may be skipped
                       (an empty tensor in its place)

The argument checks look at shapes and dtypes only; that the positions ascend within each group is checked where a
weight is built (apt_fast.sparsity.formats.nm) and by the reference.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..reference import nm_linear as ref
from ..validation import check_dtype, check_same_device
from .library import define_op

ACTIVATION_DTYPES = (torch.float32, torch.bfloat16)

FORWARD_SCHEMA = ("(Tensor x, Tensor values, Tensor indices, Tensor? scales, Tensor? bias, int out_features, int n, "
                  "int m) -> Tensor")
BACKWARD_SCHEMA = ("(Tensor grad_out, Tensor x, Tensor values, Tensor indices, Tensor? scales, int n, int m, "
                   "bool need_grad_x, bool need_grad_values) -> (Tensor, Tensor)")


def check_weight(values: Tensor, indices: Tensor, scales: Optional[Tensor], out_features: int, in_features: int,
                 n: int, m: int, like_name: str, like: Tensor) -> None:
    """values [N, K n / m] fp32|bf16|int8, indices uint8 [N, bytes], scales fp32 [N] exactly for int8 values."""
    ref.check_pattern(n, m)
    ref.check_in_features(in_features, m)
    if out_features < 1:
        raise ValueError(f"out_features must be >= 1, got {out_features}")
    check_dtype("values", values, ref.VALUE_DTYPES)
    kept = (out_features, ref.kept_per_row(in_features, n, m))
    if tuple(values.shape) != kept:
        raise ValueError(f"values must have shape {kept} for {n}:{m} of [{out_features}, {in_features}], got "
                         f"{tuple(values.shape)}")
    check_dtype("indices", indices, (torch.uint8,))
    index_shape = (out_features, ref.index_bytes_per_row(in_features, n, m))
    if tuple(indices.shape) != index_shape:
        raise ValueError(f"indices must have shape {index_shape} for {n}:{m} of [{out_features}, {in_features}], "
                         f"got {tuple(indices.shape)}")
    if values.dtype == torch.int8:
        if scales is None:
            raise ValueError(f"scales must be a float32 tensor of shape ({out_features},) for int8 values, got None")
        check_dtype("scales", scales, (torch.float32,))
        if tuple(scales.shape) != (out_features,):
            raise ValueError(f"scales must have shape ({out_features},), got {tuple(scales.shape)}")
        check_same_device("scales", scales, like_name, like)
    elif scales is not None:
        raise ValueError(f"scales must be None for {str(values.dtype).replace('torch.', '')} values, got a tensor")
    check_same_device("values", values, like_name, like)
    check_same_device("indices", indices, like_name, like)


def check_activations(name: str, x: Tensor, last: int, what: str) -> None:
    check_dtype(name, x, ACTIVATION_DTYPES)
    if x.dim() < 1 or x.shape[-1] != last:
        raise ValueError(f"{name} must have shape [..., {what}] with {what} = {last}, got {tuple(x.shape)}")


def check_bias(bias: Optional[Tensor], out_features: int, x: Tensor) -> None:
    if bias is None:
        return
    check_dtype("bias", bias, ACTIVATION_DTYPES)
    if tuple(bias.shape) != (out_features,):
        raise ValueError(f"bias must have shape ({out_features},), got {tuple(bias.shape)}")
    check_same_device("bias", bias, "x", x)


def _check_forward(x, values, indices, scales, bias, out_features, n, m) -> None:
    check_dtype("x", x, ACTIVATION_DTYPES)
    if x.dim() < 1:
        raise ValueError(f"x must have shape [..., in_features], got {tuple(x.shape)}")
    check_weight(values, indices, scales, out_features, x.shape[-1], n, m, "x", x)
    check_bias(bias, out_features, x)


def _check_backward(grad_out, x, values, indices, scales, n, m, need_grad_x, need_grad_values) -> None:
    check_dtype("x", x, ACTIVATION_DTYPES)
    if x.dim() < 1:
        raise ValueError(f"x must have shape [..., in_features], got {tuple(x.shape)}")
    out_features = values.shape[0] if values.dim() == 2 else 0
    check_weight(values, indices, scales, out_features, x.shape[-1], n, m, "x", x)
    check_activations("grad_out", grad_out, out_features, "out_features")
    if tuple(grad_out.shape[:-1]) != tuple(x.shape[:-1]):
        raise ValueError(f"grad_out must have x's leading shape {tuple(x.shape[:-1])}, got {tuple(grad_out.shape)}")
    check_same_device("grad_out", grad_out, "x", x)
    if need_grad_values and values.dtype == torch.int8:
        raise ValueError("need_grad_values must be False for int8 values (they are frozen), got True")


def _forward_reference(x, values, indices, scales, bias, out_features, n, m):
    return ref.nm_linear_ref(x, values, indices, scales, bias, n, m)


def _forward_fake(x, values, indices, scales, bias, out_features, n, m):
    return x.new_empty((*x.shape[:-1], out_features))


def backward_fake(grad_out: Tensor, x: Tensor, values: Tensor, need_grad_x: bool, need_grad_values: bool):
    """The shapes of the backward's outputs: an empty tensor for a gradient not asked for."""
    grad_x = torch.empty_like(x, memory_format=torch.contiguous_format) if need_grad_x else x.new_empty(0)
    grad_values = torch.empty_like(values, memory_format=torch.contiguous_format) if need_grad_values \
        else x.new_empty(0)
    return grad_x, grad_values


def _backward_fake(grad_out, x, values, indices, scales, n, m, need_grad_x, need_grad_values):
    return backward_fake(grad_out, x, values, need_grad_x, need_grad_values)


define_op("nm_linear", FORWARD_SCHEMA, _forward_reference, _forward_fake, check=_check_forward)
define_op("nm_linear_backward", BACKWARD_SCHEMA, ref.nm_linear_backward_ref, _backward_fake, check=_check_backward)
