"""Block-sparse (block-CSR, 32x32 blocks at 90% sparsity) benchmarks, torch.get_num_threads() threads (2 here),
outputs checked first against torch F.linear on the masked weight, the baseline (same dtype as x and the values):

* fp32 values: >= 5x torch fp32 F.linear at M=1 (K=N=4096, weights cycled, >= 128 MiB packed) and >= 6x at M=64
  (one layer); bf16 values, as a second row, against torch bf16 F.linear (oneDNN, AMX on this CPU).
* Backward at M=64 (fp32 values; grad_x and the kept blocks' grad, one call): <= 1.2x the forward.
* Never slower: layers converted by apt_fast.sparsify <= 1.0x the dense layers at M=1, 64, 256.

Measured (`apt-fast bench --filter block_linear`, Sapphire Rapids-class Xeon, 2 threads, amx tier, median of 7
with min-max; bench-results/sparse-block_linear.json):

  GEMV fp32 M=1     41.8 ms (41.1-46.0) torch / 7.79 ms (7.40-8.21) for 21 calls (134 MiB packed): 5.36x; 18.1 GB/s,
                    60% of the read bandwidth (bound: 0.1 of the bytes, ~10x); 5.32x-6.66x in earlier runs
  GEMV bf16 M=1     vs torch bf16: 56.7 ms (56.3-60.6) / 9.56 ms (9.29-10.9) for 41 calls (130 MiB): 5.93x
  GEMM fp32 M=64    7.99 ms (7.81-9.09) / 1.19 ms (1.12-1.68): 6.73x (6.15x-6.40x in earlier runs)
  GEMM bf16 M=64    vs torch bf16 (oneDNN AMX): 1.74 ms (1.61-2.29) / 0.39 ms (0.33-0.48): 4.41x (target 6x missed;
                    3.6x before the C tiles were transposed in registers): 7% of the AMX bf16 peak against oneDNN's
                    ~30%. Per 32 activation rows a kept block is four 16 x 16 x 32 tile products with four tile loads
                    (the x tiles reloaded per block), and x is re-laid into VNNI tiles on every call
  backward M=64     2.13x the forward (1.24 ms / 2.64 ms; target 1.2x missed); M=256 2.55x; torch's dense backward /
                    forward 3.69x and 2.59x in the same run; the backward does twice the forward's multiply-adds
  never slower      sparsify'd layers / dense: 0.10x (M=1), 0.13x (M=64), 0.24x (M=256)
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
