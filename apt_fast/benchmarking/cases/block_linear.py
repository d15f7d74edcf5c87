"""Block-sparse (block-CSR, 32x32 blocks at 90% sparsity) benchmarks, torch.get_num_threads() threads (2 here),
outputs checked first against torch F.linear on the masked weight, the baseline (same dtype as x and the values):

* fp32 values: >= 5x torch fp32 F.linear at M=1 (K=N=4096, weights cycled, >= 128 MiB packed) and >= 6x at M=64
  (one layer); bf16 values, as a second row, against torch bf16 F.linear (oneDNN, AMX on this CPU).
* Backward at M=64 (fp32 values; grad_x and the kept blocks' grad, one call): <= 1.2x the forward.
* Never slower: layers converted by apt_fast.sparsify <= 1.0x the dense layers at M=1, 64, 256.

Measured (Sapphire Rapids, 2 threads, amx tier; median of 7, spread min-max): see bench-results/sparse-full.json.
"""

from __future__ import annotations

import functools

import torch

from ..targets import Targets
from .sparse_layers import Layers, backward_case, block_mask, build_layers, forward_case, never_slower_case

FAMILY = "block_linear"
BLOCK = (32, 32)
SPARSITY = 0.9


@functools.lru_cache(maxsize=1)
def _layers(dtype: torch.dtype, cycled: bool) -> Layers:
    return build_layers(block_mask(SPARSITY, BLOCK), "block", dtype, cycled, baseline_bytes=dtype.itemsize,
                        block=BLOCK)


def _case(dtype: torch.dtype, rows: int, target: float, quick: bool = True):
    label = "fp32" if dtype == torch.float32 else "bf16"
    return forward_case(f"block_{'gemv' if rows == 1 else 'gemm'}_{label}[32x32 90%, M={rows}, vs {label}]", FAMILY,
                        lambda quick_run: _layers(dtype, rows == 1), rows, dtype, Targets(min_speedup=target),
                        quick=quick)


def _backward_op(grad_y, x, weight):
    return torch.ops.apt_fast.block_linear_backward(grad_y, x, weight.values, weight.block_row_offsets,
                                                    weight.block_columns, True, True)


CASES = [  # in the order that reuses the cached layers
    _case(torch.float32, 1, 5.0),
    _case(torch.bfloat16, 1, 5.0),
    _case(torch.float32, 64, 6.0),
    backward_case(FAMILY, lambda quick: _layers(torch.float32, False), 64, _backward_op),
    backward_case(FAMILY, lambda quick: _layers(torch.float32, False), 256, _backward_op, quick=False),
    _case(torch.bfloat16, 64, 6.0),
    *[never_slower_case(FAMILY, "block 32x32 90%", block_mask(SPARSITY, BLOCK), rows, 4, quick=rows != 256,
                        formats=("block",))
      for rows in (1, 64, 256)],
]
