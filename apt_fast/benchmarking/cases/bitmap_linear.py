"""Unstructured sparse (bitmap + packed values) benchmarks, torch.get_num_threads() threads (2 here), outputs checked
first against dense F.linear on the masked weight:

* GEMV, M=1, K=N=4096, fp32 values, the weights of several layers cycled (dense and packed sets each >= 128 MiB):
  >= 1.6x / 2.5x / 5x torch fp32 F.linear at 50% / 70% / 90% sparsity; int8 values (W8A8, activations quantized
  per row in the kernel) at 50%: >= 5x; fp32 values at 50% against torch CSR (to_sparse_csr, matmul): >= 6x.
* Backward at M=64 (grad_x and the masked grad of the values, one call): <= 1.2x the forward of the same layer.
* Never slower: a layer stack converted by apt_fast.sparsify (measuring dispatcher) <= 1.0x the dense stack at
  30%, 50%, 90% sparsity and M=1, 256.

Measured (`apt-fast bench --filter bitmap_linear`, Sapphire Rapids-class Xeon, 2 threads, amx tier (the AVX-512
kernels), median of 7 with min-max; bench-results/sparse-bitmap_linear.json):

  GEMV fp32 50%     9.38 ms (9.13-10.10) torch / 5.52 ms (5.11-7.12) for 4 calls: 1.70x; 25.9 GB/s of packed bytes,
                    90% of the measured read bandwidth (bound: 0.53 of dense's bytes, 1.88x)
  GEMV fp32 50% vs CSR  65.5 ms (64.5-76.9) / 6.16 ms (5.71-6.91): 10.6x
  GEMV fp32 70%     15.1 ms (14.4-16.4) / 7.05 ms (6.89-7.96) for 7 calls: 2.14x (target 2.5x missed); 22.1 GB/s,
                    77% (bound 3.0x)
  GEMV fp32 90%     34.3 ms (32.8-36.7) / 9.63 ms (9.45-10.3) for 16 calls: 3.56x (target 5x missed); 14.7 GB/s, 51%:
                    bound by instructions, not bytes: the expansion costs the same per 16 inputs at any sparsity
                    (~0.55 ms a 4096 x 4096 layer on 2 threads), while the 8.4 MiB alone would take 0.29 ms
  GEMV int8 50%     26.0 ms (25.6-28.7) / 6.11 ms (5.68-7.14) for 13 calls: 4.25x (target 5x missed); 22.4 GB/s,
                    78% (bound 6.1x); SQNR 41 dB against fp32
  backward M=64     2.65x the forward (13.1 ms forward, 34.8 ms backward; target 1.2x missed); M=256 2.05x; torch's
                    dense backward / forward in the same run 3.78x and 2.70x. The backward does twice the forward's
                    multiply-adds (grad_x and grad_values, each as many as the forward), so 2x is its bound at the
                    forward's efficiency.
  never slower      sparsify'd layers / dense: 30% 0.93x (M=1), 0.95x (M=256, routed dense); 50% 0.71x, 0.98x
                    (routed dense); 90% 0.26x, 0.77x: all <= 1.0x
"""

from __future__ import annotations

import functools

import torch

from ..targets import Targets
from .sparse_layers import (
    INT8_MIN_SQNR_DB,
    Layers,
    backward_case,
    build_layers,
    check_sqnr,
    forward_case,
    never_slower_case,
    random_mask,
)

FAMILY = "bitmap_linear"


@functools.lru_cache(maxsize=1)
def _layers(sparsity: float, dtype: torch.dtype, cycled: bool) -> Layers:
    return build_layers(random_mask(sparsity), "bitmap", dtype, cycled)


def _gemv(sparsity: float, target: float, quick: bool = True):
    return forward_case(f"bitmap_gemv_fp32[{100 * sparsity:.0f}%, vs fp32]", FAMILY,
                        lambda quick_run: _layers(sparsity, torch.float32, True), 1, torch.float32,
                        Targets(min_speedup=target), quick=quick)


def _gemv_int8():
    return forward_case("bitmap_gemv_int8[50%, vs fp32]", FAMILY, lambda quick: _layers(0.5, torch.int8, True), 1,
                        torch.float32, Targets(min_speedup=5.0), check=check_sqnr(INT8_MIN_SQNR_DB),
                        baseline_name="torch fp32 F.linear on the masked (dequantized) weight")


def _csr_inputs(layers: Layers, x: torch.Tensor) -> dict:
    return {"csr": [w.to_sparse_csr() for w in layers.dense]}


def _csr(inputs):
    x_t, csr = inputs["x"].t(), inputs["csr"]  # x_t [K, 1]
    with torch.no_grad():
        return [torch.matmul(csr[call % len(csr)], x_t).t() for call in range(inputs["layers"].calls)]


def _gemv_vs_csr():
    return forward_case("bitmap_gemv_fp32[50%, vs torch CSR]", FAMILY, lambda quick: _layers(0.5, torch.float32, True),
                        1, torch.float32,
                        Targets(min_speedup=6.0), baseline=_csr, baseline_inputs=_csr_inputs,
                        baseline_name="torch CSR matmul (to_sparse_csr) on the masked weight", repeats=5)


def _backward_op(grad_y, x, weight):
    return torch.ops.apt_fast.bitmap_linear_backward(grad_y, x, weight.bitmap, weight.row_offsets, weight.values,
                                                     weight.scales, True, True)


CASES = [  # in the order that reuses the cached layers
    _gemv(0.5, 1.6),
    _gemv_vs_csr(),
    backward_case(FAMILY, lambda quick: _layers(0.5, torch.float32, True), 64, _backward_op),
    backward_case(FAMILY, lambda quick: _layers(0.5, torch.float32, True), 256, _backward_op, quick=False),
    _gemv(0.7, 2.5),
    _gemv(0.9, 5.0),
    _gemv_int8(),
    *[never_slower_case(FAMILY, f"bitmap {100 * s:.0f}%", random_mask(s), rows, 4, formats=("bitmap",),
                        quick=rows == 1 or s == 0.3)
      for s in (0.3, 0.5, 0.9) for rows in (1, 256)],
]
