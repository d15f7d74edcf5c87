"""The dispatcher's measurements: how long a sparse weight's ``linear`` takes against the dense F.linear of the
layer it replaces, at a few row counts M (decode M=1 up to prefill), on the layer's own shape.

Weights are cycled over copies of at least 128 MiB, as in a model whose weights do not fit the caches (a decode
step reads every layer's weights from memory). One timed sample is a round over every copy, so that each sample
reads the whole working set (a single call at M=1 on a small layer takes a fraction of a millisecond: timer and
scheduling noise would decide); the two sides' rounds alternate (so a slow spell hits both), after one warm-up
round each, and the median round divided by the copies counts. Each bucket of row counts is measured at both
ends and judged by the worse (see time_layer). A measurement is kept in a per-process table keyed
by format, options, dtype, shape, bias, sparsity (to 5%), M and thread count, so layers of the same kind are
measured once and the others predicted from it.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import dataclass, fields
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .formats import SparseWeight

M_BUCKETS = (1, 8, 64, 256)
WORKING_SET_BYTES = 128 * 2**20
MAX_COPIES = 32
REPEATS = 5
SPARSITY_STEP = 0.05

# (sparse round, dense round, x [M, K]) -> (sparse seconds, dense seconds) of one round; injectable for tests (an
# injected measure gets rounds of one call: no copies are made)
Measure = Callable[[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor], Tensor], Tuple[float, float]]


@dataclass(frozen=True)
class Timing:
    """One bucket's measurement: median seconds of the sparse and of the dense call at ``rows`` rows, the end of
    bucket ``m`` (its first or its last row count) where the sparse kernel fared worse."""

    m: int
    sparse_s: float
    dense_s: float
    rows: int = 0

    @property
    def speedup(self) -> float:
        """dense time / sparse time: above 1 the sparse kernel is faster."""
        return self.dense_s / self.sparse_s if self.sparse_s > 0 else math.inf


def interleaved_medians(sparse: Callable[[Tensor], Tensor], dense: Callable[[Tensor], Tensor], x: Tensor,
                        repeats: int = REPEATS) -> Tuple[float, float]:
    """Median seconds of ``sparse(x)`` and ``dense(x)`` over ``repeats`` alternating calls, after one warm-up each."""
    sparse(x)
    dense(x)
    times: Dict[str, list] = {"sparse": [], "dense": []}
    for _ in range(repeats):
        for name, call in (("sparse", sparse), ("dense", dense)):
            start = time.perf_counter()
            call(x)
            times[name].append(time.perf_counter() - start)
    return statistics.median(times["sparse"]), statistics.median(times["dense"])


def _copy(weight: SparseWeight) -> SparseWeight:
    return type(weight)(**{f.name: getattr(weight, f.name).clone() if isinstance(getattr(weight, f.name), Tensor)
                           else getattr(weight, f.name) for f in fields(weight)})


class _Round:
    """Calls ``fn(item, x)`` on each of ``items`` in turn: one call reads every copy once."""

    def __init__(self, items, fn):
        self.items, self.fn = items, fn

    def __call__(self, x: Tensor) -> Tensor:
        for item in self.items:
            y = self.fn(item, x)
        return y


def copies_for(dense_bytes: int) -> int:
    """How many copies of a weight of ``dense_bytes`` make the 128 MiB working set (at most 32)."""
    return max(1, min(MAX_COPIES, math.ceil(WORKING_SET_BYTES / max(dense_bytes, 1))))


def _key(weight: SparseWeight, dense: Tensor, has_bias: bool, sparsity: float, m: int) -> tuple:
    bucket = round(sparsity / SPARSITY_STEP) * SPARSITY_STEP
    return (json.dumps(weight.options(), sort_keys=True), str(dense.dtype), tuple(dense.shape), has_bias,
            round(bucket, 2), m, torch.get_num_threads())


_TABLE: Dict[tuple, Timing] = {}


def clear_table() -> None:
    """Forget every measurement of this process (the next sparsify measures again)."""
    _TABLE.clear()


def bucket_ends(buckets: Sequence[int]) -> Dict[int, Tuple[int, ...]]:
    """bucket -> the row counts it is measured at: its first (one past the previous bucket) and its last."""
    firsts = (1, *(b + 1 for b in buckets[:-1]))
    return {b: tuple(sorted({first, b})) for first, b in zip(firsts, buckets)}


@torch.no_grad()
def time_layer(weight: SparseWeight, dense: Tensor, bias: Optional[Tensor], sparsity: float,
               buckets: Sequence[int] = M_BUCKETS, measure: Optional[Measure] = None) -> Dict[int, Timing]:
    """bucket M -> Timing of ``weight.linear`` against ``F.linear(x, dense, bias)`` (dense [N, K]: the layer's weight
    as it is; x [rows, K] in its dtype) at both ends of each bucket of ``buckets`` (the calls of M=9 rows take the
    path chosen for bucket 64 as much as those of 64 rows, and a kernel that works in tiles of rows may win at one
    end only), keeping the end where sparse fares worse. With the default ``measure`` the table above serves what
    was measured before; an injected one is always called."""
    cached = measure is None
    measure = measure or interleaved_medians
    copies: list = []
    measured: Dict[int, Timing] = {}

    def at(rows: int) -> Timing:
        key = _key(weight, dense, bias is not None, sparsity, rows)
        if cached and key in _TABLE:
            return _TABLE[key]
        if not copies:
            count = copies_for(dense.numel() * dense.element_size()) if cached else 1
            copies.append([weight] + [_copy(weight) for _ in range(count - 1)])
            copies.append([dense] + [dense.clone() for _ in range(count - 1)])
        sparse_copies, dense_copies = copies
        x = torch.randn(rows, dense.shape[1], generator=torch.Generator().manual_seed(rows)).to(dense)  # [rows, K]
        sparse_call = _Round(sparse_copies, lambda w, x: w.linear(x, w.values, bias))
        dense_call = _Round(dense_copies, lambda w, x: F.linear(x, w, bias))
        sparse_s, dense_s = measure(sparse_call, dense_call, x)  # one round: every copy once
        timing = Timing(rows, float(sparse_s) / len(sparse_copies), float(dense_s) / len(dense_copies), rows)
        if cached:
            _TABLE[key] = timing
        return timing

    timings: Dict[int, Timing] = {}
    for m, ends in bucket_ends(tuple(buckets)).items():
        for rows in ends:
            if rows not in measured:
                measured[rows] = at(rows)
        worst = min((measured[rows] for rows in ends), key=lambda t: t.speedup)
        timings[m] = Timing(m, worst.sparse_s, worst.dense_s, worst.rows)
    return timings
