"""Shared pieces of the bitmap_linear tests: pruned weights with chosen densities and odd rows, packed in the
bitmap format."""

from __future__ import annotations

import torch

from apt_fast.sparsity.formats.bitmap import BitmapWeight


def random_mask(n: int, k: int, density: float, seed: int = 0, odd_rows: bool = True) -> torch.Tensor:
    """[n, k] bool keeping about `density` of the entries; odd_rows: row 0 empty and row 1 fully kept (n >= 3)."""
    generator = torch.Generator().manual_seed(seed)
    mask = torch.rand(n, k, generator=generator) < density
    if odd_rows and n >= 3:
        mask[0] = False
        mask[1] = True
    return mask


def bitmap_weight(n: int, k: int, density: float, dtype: torch.dtype = torch.float32, seed: int = 0,
                  odd_rows: bool = True) -> BitmapWeight:
    generator = torch.Generator().manual_seed(seed + 1)
    weight = torch.randn(n, k, generator=generator)
    return BitmapWeight.pack(weight, random_mask(n, k, density, seed, odd_rows), dtype)


def op_arguments(w: BitmapWeight):
    """(bitmap, row_offsets, values, scales) as the ops take them."""
    return w.bitmap, w.row_offsets, w.values, w.scales
