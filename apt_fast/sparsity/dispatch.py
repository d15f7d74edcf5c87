"""The dispatcher's measurements: how long a sparse weight's ``linear`` takes against the dense F.linear of the
layer it replaces, at a few row counts M (decode M=1 up to prefill), on the layer's own shape.

Weights are cycled over copies of at least 128 MiB, as in a model whose weights do not fit the caches (a decode
step reads every layer's weights from memory). One timed sample is a round over every copy, so that each sample
reads the whole working set (a single call at M=1 on a small layer takes a fraction of a millisecond: timer and
scheduling noise would decide); the two sides' rounds alternate (so a slow spell hits both), after one warm-up
round each, and the median round divided by the copies counts. A measurement is kept in a per-process table keyed
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
    """One row count's measurement: median seconds of the sparse and of the dense call."""

    m: int
    sparse_s: float
    dense_s: float

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


@torch.no_grad()
def time_layer(weight: SparseWeight, dense: Tensor, bias: Optional[Tensor], sparsity: float,
               buckets: Sequence[int] = M_BUCKETS, measure: Optional[Measure] = None) -> Dict[int, Timing]:
    """M -> Timing of ``weight.linear`` against ``F.linear(x, dense, bias)`` (dense [N, K]: the layer's weight as
    it is; x [M, K] in its dtype) for each M of ``buckets``. With the default ``measure`` the table above serves
    what was measured before; an injected one is always called."""
    cached = measure is None
    measure = measure or interleaved_medians
    timings: Dict[int, Timing] = {}
    sparse_copies = dense_copies = None
    for m in buckets:
        key = _key(weight, dense, bias is not None, sparsity, m)
        if cached and key in _TABLE:
            timings[m] = _TABLE[key]
            continue
        if sparse_copies is None:
            count = copies_for(dense.numel() * dense.element_size()) if cached else 1
            sparse_copies = [weight] + [_copy(weight) for _ in range(count - 1)]
            dense_copies = [dense] + [dense.clone() for _ in range(count - 1)]
        x = torch.randn(m, dense.shape[1], generator=torch.Generator().manual_seed(m)).to(dense)  # [M, K]
        sparse_call = _Round(sparse_copies, lambda w, x: w.linear(x, w.values, bias))
        dense_call = _Round(dense_copies, lambda w, x: F.linear(x, w, bias))
        sparse_s, dense_s = measure(sparse_call, dense_call, x)  # one round: every copy once
        timings[m] = Timing(m, float(sparse_s) / len(sparse_copies), float(dense_s) / len(dense_copies))
        if cached:
            _TABLE[key] = timings[m]
    return timings
