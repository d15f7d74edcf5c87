"""Physically smaller nn.Linear layers: keep some rows (outputs) or some columns (inputs), as new Parameters."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _parameter(tensor: Tensor, like: nn.Parameter) -> nn.Parameter:
    return nn.Parameter(tensor.contiguous(), requires_grad=like.requires_grad)


@torch.no_grad()
def keep_rows(linear: nn.Linear, index: Tensor) -> None:  # index [n_kept] int64, ascending
    """Keep output features ``index`` of ``linear`` (weight rows and bias entries)."""
    linear.weight = _parameter(linear.weight.index_select(0, index), linear.weight)
    if linear.bias is not None:
        linear.bias = _parameter(linear.bias.index_select(0, index), linear.bias)
    linear.out_features = index.numel()


@torch.no_grad()
def keep_columns(linear: nn.Linear, index: Tensor) -> None:  # index [n_kept] int64, ascending
    """Keep input features ``index`` of ``linear`` (weight columns)."""
    linear.weight = _parameter(linear.weight.index_select(1, index), linear.weight)
    linear.in_features = index.numel()
