"""The sparse weight formats: each module registers its SparseWeight subclass with ``@sparse_format(name)``;
FORMATS maps the names to the classes and ``pack`` packs a pruned weight in one of them."""

from __future__ import annotations

import torch
from torch import Tensor

from . import (
    bitmap,  # noqa: F401  (registers "bitmap")
    block,  # noqa: F401  (registers "block")
    nm,  # noqa: F401  (registers "nm")
)
from .base import REGISTRY, SparseWeight, sparse_format

FORMATS = REGISTRY


def pack(weight: Tensor, mask: Tensor, format: str, dtype: torch.dtype = torch.float32, **options) -> SparseWeight:
    """weight [N, K], mask [N, K] bool -> the weight packed in ``format`` with values in ``dtype``."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(map(repr, sorted(FORMATS)))}, got {format!r}")
    return FORMATS[format].pack(weight, mask, dtype, **options)


__all__ = ["FORMATS", "SparseWeight", "pack", "sparse_format"]
