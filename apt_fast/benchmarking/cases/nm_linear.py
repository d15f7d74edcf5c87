"""N:M (2:4) sparse benchmarks, torch.get_num_threads() threads (2 here), outputs checked first against dense on the
masked weight. Each dtype's baseline is a dense kernel of the same dtype: bf16 values against torch bf16 F.linear
(oneDNN, AMX on this CPU; apt_fast has no dense bf16 GEMM of its own), int8 values (W8A8: activations quantized per
row in the kernel) against apt_fast's dense W8A8 Int8Linear (apt_fast::int8_linear, VNNI GEMV / AMX GEMM) on the
same masked weight, whose per-channel scales and activation quantization are the same as the kernel's:

* GEMV, M=1, K=N=4096, weights cycled (>= 128 MiB packed): >= 1.6x the dense kernel of the same dtype (2:4 reads
  0.5 of the values plus 2 bits of metadata per kept value: 0.5625 of bf16's bytes, 0.625 of int8's, so the
  bandwidth bounds are 1.78x and 1.6x).
* GEMM, M in {64, 256}, one layer: >= 1.3x.
* Backward at M=64 (fp32 values; grad_x and the masked grad of the values, one call): <= 1.2x the forward.
* Never slower: layers converted by apt_fast.sparsify <= 1.0x the dense layers (bf16 at M=1, 256; int8 at M=1).

Measured (`apt-fast bench --filter nm_linear`, Sapphire Rapids-class Xeon, 2 threads, amx tier, median of 7 with
min-max; bench-results/sparse-nm_linear.json; a first run, in which the machine's memory was slow for both sides,
was rerun):

  GEMV bf16 M=1     torch bf16 11.7 ms (11.6-12.7) / 6.51 ms (6.09-6.95) for 8 calls: 1.80x; 23.2 GB/s, 78% of the
                    read bandwidth (bound 1.78x at equal bandwidth)
  GEMV int8 M=1     apt_fast W8A8 9.79 ms (9.50-10.5) / 8.02 ms (7.71-8.73) for 13 calls: 1.22x (target 1.6x missed;
                    1.27x in the first run); 20.9 GB/s, 71%, the dense int8 kernel streaming its 16 MiB a layer at
                    about the same rate: the bound is 1.6x
  GEMM bf16         M=64 0.61x, M=256 0.57x torch bf16 (oneDNN AMX; 1.87 / 3.06 ms, 3.94 / 6.95 ms): target 1.3x
                    missed. With no sparse matrix unit, the kernel runs VBMI gathers and AVX-512 BF16 dot products
                    (5-9% of the AMX bf16 peak) on half the products, against dense AMX tiles on all of them.
  GEMM int8         M=64 0.35x, M=256 0.57x apt_fast W8A8 (AMX int8): target 1.3x missed, for the same reason.
  backward M=64     3.51x the forward (fp32 values: 12.9 ms forward, 45.1 ms backward; target 1.2x missed); M=256
                    1.34x; torch's dense backward / forward 2.47x and 1.93x in the same run
  never slower      sparsify'd layers / dense: bf16 0.37x (M=1), 0.98x (M=256, routed dense); int8 0.13x (M=1)
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from ...modules.quantized_linear import Int8Linear
from ..targets import Targets
from .sparse_layers import (
    FP32_RTOL,
    K,
    Layers,
    N,
    backward_case,
    build_layers,
    check_close,
    forward_case,
    never_slower_case,
    nm_mask,
)

FAMILY = "nm_linear"


@functools.lru_cache(maxsize=1)
def _layers(dtype: torch.dtype, cycled: bool) -> Layers:
    """The dense baseline of the same dtype: bf16 (2 bytes a weight) or int8 (1)."""
    return build_layers(nm_mask(2, 4), "nm", dtype, cycled, baseline_bytes=dtype.itemsize, n=2, m=4)


def _int8_linear_inputs(layers: Layers, x: torch.Tensor) -> dict:
    modules = []
    for weight in layers.dense:
        linear = nn.Linear(K, N, bias=False)
        with torch.no_grad():
            linear.weight.copy_(weight)
        modules.append(Int8Linear.from_linear(linear, activation_bits=8))
    return {"int8_linear": modules}


def _int8_linear(inputs):
    modules = inputs["int8_linear"]
    with torch.no_grad():
        return [modules[call % len(modules)](inputs["x"]) for call in range(inputs["layers"].calls)]


def _case(dtype: torch.dtype, rows: int, target: float, quick: bool = True):
    cycled = rows == 1
    layers_fn = lambda quick_run: _layers(dtype, cycled)
    kind = "gemv" if rows == 1 else "gemm"
    if dtype == torch.int8:
        return forward_case(f"nm_{kind}_int8[2:4, M={rows}, vs apt_fast W8A8]", FAMILY, layers_fn, rows,
                            torch.float32, Targets(min_speedup=target), baseline=_int8_linear,
                            baseline_inputs=_int8_linear_inputs, check=check_close(FP32_RTOL),
                            baseline_name="apt_fast Int8Linear W8A8 (dense int8) on the masked weight", quick=quick)
    return forward_case(f"nm_{kind}_bf16[2:4, M={rows}, vs bf16]", FAMILY, layers_fn, rows, torch.bfloat16,
                        Targets(min_speedup=target), quick=quick)


def _backward_op(grad_y, x, weight):
    return torch.ops.apt_fast.nm_linear_backward(grad_y, x, weight.values, weight.indices, weight.scales, weight.n,
                                                 weight.m, True, True)


CASES = [  # in the order that reuses the cached layers
    _case(torch.bfloat16, 1, 1.6),
    _case(torch.bfloat16, 64, 1.3),
    _case(torch.bfloat16, 256, 1.3, quick=False),
    _case(torch.int8, 1, 1.6),
    _case(torch.int8, 64, 1.3),
    _case(torch.int8, 256, 1.3, quick=False),
    backward_case(FAMILY, lambda quick: _layers(torch.float32, False), 64, _backward_op),
    backward_case(FAMILY, lambda quick: _layers(torch.float32, False), 256, _backward_op, quick=False),
    never_slower_case(FAMILY, "2:4 bf16", nm_mask(2, 4), 1, 4, torch.bfloat16, formats=("nm",)),
    never_slower_case(FAMILY, "2:4 bf16", nm_mask(2, 4), 256, 4, torch.bfloat16, quick=False, formats=("nm",)),
    never_slower_case(FAMILY, "2:4 int8", nm_mask(2, 4), 1, 4, formats=("nm",), dtype=torch.int8),
]
