"""Shared pieces of the nm_linear tests: random n:m masks (some groups keeping fewer than n, so the format keeps
zeros) and weights packed in the nm format."""

from __future__ import annotations

import torch

from apt_fast.sparsity.formats.nm import NMWeight


def nm_mask(rows: int, k: int, n: int = 2, m: int = 4, seed: int = 0, sparse_groups: float = 0.1) -> torch.Tensor:
    """[rows, k] bool keeping n random positions of every group of m; a `sparse_groups` share of the groups keep
    fewer (one less, or none)."""
    generator = torch.Generator().manual_seed(seed)
    scores = torch.rand(rows, k // m, m, generator=generator)
    kept = torch.zeros(rows, k // m, m, dtype=torch.bool)
    kept.scatter_(2, scores.topk(n, dim=2).indices, True)
    thin = torch.rand(rows, k // m, generator=generator) < sparse_groups
    first = kept.long().argmax(2, keepdim=True)  # drop one kept position in thin groups
    kept = torch.where(thin[..., None], kept.scatter(2, first, False), kept)
    return kept.reshape(rows, k)


def nm_weight(rows: int, k: int, n: int = 2, m: int = 4, dtype: torch.dtype = torch.float32, seed: int = 0,
              empty_row: bool = True) -> NMWeight:
    """A random weight packed n:m; empty_row: row 0 keeps nothing (all its groups keep zeros)."""
    generator = torch.Generator().manual_seed(seed + 1)
    weight = torch.randn(rows, k, generator=generator)
    mask = nm_mask(rows, k, n, m, seed)
    if empty_row:
        mask[0] = False
    return NMWeight.pack(weight, mask, dtype, n=n, m=m)


def op_arguments(w: NMWeight):
    """(values, indices, scales) as the ops take them."""
    return w.values, w.indices, w.scales
