"""Exact selection of the k lowest scores, one tensor or many together, without sorting or concatenating them.

A threshold from ``torch.quantile`` fails above 2^24 elements and, taken as a value, prunes every tie of the
threshold (an inexact count). Here the scores are mapped to ordered integer keys and the k-th key is found by a
two-digit radix selection (a 16-bit histogram of the high halves, then of the low halves inside the chosen bucket),
streaming ``CHUNK`` elements at a time; ties of the k-th key go in order (earlier tensor, lower flat index first).
Three passes over the scores, memory O(CHUNK) besides the masks, no size limit, and exactly k entries selected.

Scores are float and >= 0, or negative (-1) for entries that must be selected first (already pruned).
"""

from __future__ import annotations

import math
from typing import Iterator, List, Sequence, Tuple

import torch
from torch import Tensor

CHUNK = 1 << 22  # elements per streamed slice
_DIGIT = 16
_BUCKETS = 1 << _DIGIT


def count_to_prune(ratio: float, total: int) -> int:
    """round(ratio * total), halves up: how many of ``total`` entries a ratio prunes."""
    return min(total, math.floor(ratio * total + 0.5))


def _keys(scores: Tensor) -> Tensor:  # [n] float -> [n] int32, ordered like the scores
    """Non-negative float32 scores have bit patterns ordered like their values; +1 leaves 0 for negative scores."""
    bits = scores.to(torch.float32).view(torch.int32)
    return torch.where(scores < 0, torch.zeros_like(bits), bits + 1)


def _chunks(scores: Sequence[Tensor]) -> Iterator[Tuple[int, int, Tensor]]:
    """(tensor index, flat start, keys [<= CHUNK]) for every slice of every tensor, in order."""
    for index, tensor in enumerate(scores):
        flat = tensor.reshape(-1)
        for start in range(0, flat.numel(), CHUNK):
            yield index, start, _keys(flat[start:start + CHUNK])


def _bucket_holding(histogram: Tensor, k: int) -> Tuple[int, int]:
    """(bucket b, count of entries in buckets < b) for the bucket that holds the k-th (1-based) entry."""
    cumulative = histogram.cumsum(0)
    bucket = int(torch.searchsorted(cumulative, torch.tensor([k], dtype=cumulative.dtype)).item())
    return bucket, int(cumulative[bucket - 1].item()) if bucket else 0


def lowest(scores: Sequence[Tensor], k: int) -> List[Tensor]:
    """Bool masks shaped like ``scores``, True at the k lowest entries of all of them together."""
    for index, tensor in enumerate(scores):
        if torch.isnan(tensor).any():
            raise ValueError(f"scores must not contain nan, got nan in score tensor {index} of shape "
                             f"{tuple(tensor.shape)}")
    total = sum(t.numel() for t in scores)
    if k <= 0 or k >= total:
        return [torch.full(t.shape, k > 0, dtype=torch.bool, device=t.device) for t in scores]
    high = torch.zeros(_BUCKETS, dtype=torch.int64)
    for _, _, keys in _chunks(scores):
        high += torch.bincount((keys >> _DIGIT).long(), minlength=_BUCKETS).cpu()
    high_bucket, below = _bucket_holding(high, k)
    low = torch.zeros(_BUCKETS, dtype=torch.int64)
    for _, _, keys in _chunks(scores):
        inside = keys[(keys >> _DIGIT) == high_bucket]
        low += torch.bincount((inside & (_BUCKETS - 1)).long(), minlength=_BUCKETS).cpu()
    low_bucket, below_inside = _bucket_holding(low, k - below)
    threshold = (high_bucket << _DIGIT) | low_bucket
    ties_left = k - below - below_inside  # entries equal to the threshold key still to select, in order
    masks = [torch.empty(t.shape, dtype=torch.bool, device=t.device) for t in scores]
    for index, start, keys in _chunks(scores):
        chosen = keys < threshold
        equal = keys == threshold
        if ties_left > 0:
            chosen |= equal & (equal.cumsum(0) <= ties_left)
            ties_left -= min(ties_left, int(equal.sum().item()))
        masks[index].view(-1)[start:start + keys.numel()] = chosen
    return masks


def lowest_per_row(scores: Tensor, k: int) -> Tensor:  # [N, K] -> [N, K] bool
    """True at the k lowest entries of every row (ties: lower column first)."""
    order = scores.argsort(dim=1, stable=True)[:, :k]  # [N, k]
    mask = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    return mask.scatter_(1, order, True)
