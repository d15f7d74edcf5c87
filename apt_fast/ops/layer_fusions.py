"""Ops apt_fast::add_layer_norm_fwd/_bwd and apt_fast::bias_gelu_fwd/_bwd: the residual add + LayerNorm of a
post-LN layer and the FFN's bias + exact GELU, on [rows, width] tensors.

Semantics: apt_fast/reference/layer_fusions.py. Every kernel runs the op's argument check first (ops.library).
x (and residual, grad_out) are float32 or bfloat16; weight and bias are float32 or x's dtype; mean and rstd
are float32.
"""

from __future__ import annotations

from typing import Tuple

import torch

from ..reference.layer_fusions import (
    add_layer_norm_bwd_ref,
    add_layer_norm_fwd_ref,
    bias_gelu_bwd_ref,
    bias_gelu_fwd_ref,
)
from ..validation import check_dtype, check_in_range, check_ndim, check_same_device
from .library import define_op

ROW_DTYPES = (torch.float32, torch.bfloat16)


def _check_rows(name: str, tensor: torch.Tensor) -> None:
    check_dtype(name, tensor, ROW_DTYPES)
    check_ndim(name, tensor, 2, "[rows, width]")


def _check_like(name: str, tensor: torch.Tensor, x: torch.Tensor) -> None:
    """`tensor` has x's dtype, shape and device."""
    if tensor.dtype != x.dtype:
        raise ValueError(f"{name} must be {str(x.dtype).replace('torch.', '')} like x, "
                         f"got {str(tensor.dtype).replace('torch.', '')}")
    if tensor.shape != x.shape:
        raise ValueError(f"{name} must have x's shape {tuple(x.shape)}, got {tuple(tensor.shape)}")
    check_same_device(name, tensor, "x", x)


def _check_vector(name: str, tensor: torch.Tensor, x: torch.Tensor) -> None:
    """`tensor` is a [width] float32 or x-dtype vector on x's device."""
    check_dtype(name, tensor, tuple(dict.fromkeys((torch.float32, x.dtype))))
    if tuple(tensor.shape) != (x.shape[1],):
        raise ValueError(f"{name} must have shape ({x.shape[1]},) (x's width), got {tuple(tensor.shape)}")
    check_same_device(name, tensor, "x", x)


def _check_stats(x: torch.Tensor, mean: torch.Tensor, rstd: torch.Tensor) -> None:
    for name, stat in (("mean", mean), ("rstd", rstd)):
        check_dtype(name, stat, (torch.float32,))
        if tuple(stat.shape) != (x.shape[0],):
            raise ValueError(f"{name} must have shape ({x.shape[0]},) (x's rows), got {tuple(stat.shape)}")
        check_same_device(name, stat, "x", x)


def check_add_layer_norm_args(x, residual, weight, bias, eps=0.0) -> None:
    _check_rows("x", x)
    _check_like("residual", residual, x)
    _check_vector("weight", weight, x)
    _check_vector("bias", bias, x)
    check_in_range("eps", eps, 0.0, float("inf"))


def _check_add_layer_norm_bwd(grad_out, x, residual, weight, bias, mean, rstd) -> None:
    check_add_layer_norm_args(x, residual, weight, bias)
    _check_like("grad_out", grad_out, x)
    _check_stats(x, mean, rstd)


def check_bias_gelu_args(x, bias) -> None:
    _check_rows("x", x)
    _check_vector("bias", bias, x)


def _check_bias_gelu_bwd(grad_out, x, bias) -> None:
    check_bias_gelu_args(x, bias)
    _check_like("grad_out", grad_out, x)


def _add_layer_norm_fwd_fake(x, residual, weight, bias, eps) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rows = x.shape[0]
    return torch.empty_like(x), x.new_empty(rows, dtype=torch.float32), x.new_empty(rows, dtype=torch.float32)


def _add_layer_norm_bwd_fake(grad_out, x, residual, weight, bias, mean, rstd):
    return torch.empty_like(x), torch.empty_like(weight), torch.empty_like(bias)


def _bias_gelu_fwd_fake(x, bias) -> torch.Tensor:
    return torch.empty_like(x)


def _bias_gelu_bwd_fake(grad_out, x, bias) -> Tuple[torch.Tensor, torch.Tensor]:
    return torch.empty_like(x), torch.empty_like(bias)


define_op("add_layer_norm_fwd", "(Tensor x, Tensor residual, Tensor weight, Tensor bias, float eps) "
          "-> (Tensor, Tensor, Tensor)", add_layer_norm_fwd_ref, _add_layer_norm_fwd_fake,
          check=check_add_layer_norm_args)
define_op("add_layer_norm_bwd", "(Tensor grad_out, Tensor x, Tensor residual, Tensor weight, Tensor bias, "
          "Tensor mean, Tensor rstd) -> (Tensor, Tensor, Tensor)", add_layer_norm_bwd_ref, _add_layer_norm_bwd_fake,
          check=_check_add_layer_norm_bwd)
define_op("bias_gelu_fwd", "(Tensor x, Tensor bias) -> Tensor", bias_gelu_fwd_ref, _bias_gelu_fwd_fake,
          check=check_bias_gelu_args)
define_op("bias_gelu_bwd", "(Tensor grad_out, Tensor x, Tensor bias) -> (Tensor, Tensor)", bias_gelu_bwd_ref,
          _bias_gelu_bwd_fake, check=_check_bias_gelu_bwd)
