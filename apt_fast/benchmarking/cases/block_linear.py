"""Block-sparse (block-CSR, 32x32 blocks at 90% sparsity) benchmarks, torch.get_num_threads() threads (2 here),
outputs checked first against torch F.linear on the masked weight, the baseline (same dtype as x and the values):

* fp32 values: >= 5x torch fp32 F.linear at M=1 (K=N=4096, weights cycled, >= 128 MiB packed) and >= 6x at M=64
  (one layer); bf16 values, as a second row, against torch bf16 F.linear (oneDNN, AMX on this CPU).
* Backward at M=64 (fp32 values; grad_x and the kept blocks' grad, one call): <= 1.2x the forward.
* Never slower: layers converted by apt_fast.sparsify <= 1.0x the dense layers at M=1, 64, 256.

Measured (`apt-fast bench --filter block_linear`, Sapphire Rapids-class Xeon, 2 threads, amx tier, median of 7
with min-max; bench-results/sparse-block_linear.json):

  GEMV fp32 M=1     41.4 ms (39.7-44.9) torch / 7.37 ms (7.17-7.78) for 20 calls: 5.62x; 18.2 GB/s, 64% of the
                    read bandwidth (bound: 0.1 of the bytes, ~10x); 6.66x in an earlier run
  GEMV bf16 M=1     vs torch bf16: 58.9 ms (57.6-60.7) / 10.0 ms (9.84-10.2) for 40 calls: 5.88x
  GEMM fp32 M=64    8.57 ms (8.20-9.11) / 1.39 ms (1.17-3.56): 6.15x (6.40x in the earlier run)
  GEMM bf16 M=64    vs torch bf16 (oneDNN AMX): 1.81 ms (1.67-2.97) / 0.50 ms (0.44-0.61): 3.60x (target 6x missed;
                    4.16x in the earlier run): 6% of the AMX bf16 peak against oneDNN's ~30%: each kept 32 x 32 block
                    is one small tile product whose x tiles are reloaded per block
  backward M=64     1.81x the forward (1.48 ms / 2.68 ms; target 1.2x missed); M=256 2.59x; torch's dense backward /
                    forward 3.76x and 2.58x in the same run; the backward does twice the forward's multiply-adds
  never slower      sparsify'd layers / dense: 0.10x (M=1), 0.14x (M=64), 0.24x (M=256)
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
