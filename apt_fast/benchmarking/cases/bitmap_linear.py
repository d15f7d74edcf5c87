"""Unstructured sparse (bitmap + packed values) benchmarks, torch.get_num_threads() threads (2 here), outputs checked
first against dense F.linear on the masked weight:

* GEMV, M=1, K=N=4096, fp32 values, the weights of several layers cycled (dense and packed sets each >= 128 MiB):
  >= 1.6x / 2.5x / 5x torch fp32 F.linear at 50% / 70% / 90% sparsity; int8 values (W8A8, activations quantized
  per row in the kernel) at 50%: >= 5x; fp32 values at 50% against torch CSR (to_sparse_csr, matmul): >= 6x.
* Backward at M=64 (grad_x and the masked grad of the values, one call): <= 1.2x the forward of the same layer.
* Never slower: a layer stack converted by apt_fast.sparsify (measuring dispatcher) <= 1.0x the dense stack at
  30%, 50%, 90% sparsity and M=1, 256.

Measured (Sapphire Rapids, 2 threads, amx tier; median of 7, spread min-max): see bench-results/sparse-full.json.
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
