"""Quantized GEMM benchmarks (torch.get_num_threads() threads, baseline and candidate in one run on the same
inputs, outputs compared first by SQNR against the baseline):

* GEMV, M=1, K=N=4096, the weights of N_SETS layers cycled so that the weights read are not cache-resident
  (32 sets: 512 MiB of int8, 2 GiB of fp32; --quick: 8): weight-only int8 >= 3.5x torch fp32 F.linear and >= 5x
  torch._weight_int8pack_mm; FP8 e4m3 weight-only >= 3.5x fp32 and >= 1.8x torch bf16 F.linear. The rate is the
  weight bytes read per second against the measured read bandwidth.
* W8A8 dynamic GEMM, K=N=4096, M in {16, 64, 256, 1024}, activation quantization included: <= 0.8x the time of
  torchao's recipe (torch's per-token quantize, torch._int_mm, dequantize) and >= 3x torch fp32 F.linear.
* FP8 e4m3 weight-only GEMM, M=256: <= 1.25x the time of torch bf16 F.linear; and, at M=16 (torch's CPU
  _scaled_mm is a scalar loop: seconds per call), >= 10x torch._scaled_mm with per-tensor FP8 activations.
"""

from __future__ import annotations

import functools
import math
from typing import List

import torch
import torch.nn.functional as F
from torch import nn

from ...modules.quantized_linear import Fp8Linear, Int8Linear
from ..harness import BenchCase
from ..peaks import Work
from ..targets import Targets

K = N = 4096
FULL_SETS, QUICK_SETS = 32, 8


def sqnr_db(reference: torch.Tensor, approximation: torch.Tensor) -> float:
    noise = (reference.double() - approximation.double()).pow(2).sum().item()
    return math.inf if noise == 0 else 10 * math.log10(reference.double().pow(2).sum().item() / noise)


def check_sqnr(minimum_db: float):
    def check(baseline: List[torch.Tensor], candidate: List[torch.Tensor]) -> dict:
        worst = min(sqnr_db(b.float(), c.float()) for b, c in zip(baseline, candidate))
        if worst < minimum_db:
            raise AssertionError(f"output SQNR {worst:.1f} dB against the baseline < {minimum_db} dB")
        return {"sqnr_db_vs_baseline": worst}

    return check


@functools.lru_cache(maxsize=2)
def _fp32_layers(sets: int) -> List[nn.Linear]:
    """`sets` bias-free Linear(4096, 4096) with N(0, 1/K) weights (shared by the GEMV cases of a run)."""
    generator = torch.Generator().manual_seed(0)
    layers = []
    for _ in range(sets):
        layer = nn.Linear(K, N, bias=False)
        with torch.no_grad():
            layer.weight.copy_(torch.randn(N, K, generator=generator) * K ** -0.5)
        layers.append(layer.requires_grad_(False))
    return layers


def _x(rows: int) -> torch.Tensor:
    return torch.randn(rows, K, generator=torch.Generator().manual_seed(1))  # [M, K]


# --- GEMV: weight bytes streamed -----------------------------------------------------------------------------

def _run_all(layers, x):
    with torch.no_grad():
        return [layer(x) for layer in layers]


def _gemv_inputs(kind: str, quick: bool):
    fp32 = _fp32_layers(QUICK_SETS if quick else FULL_SETS)
    x = _x(1)
    if kind == "w8":
        candidate = [Int8Linear.from_linear(layer, activation_bits=16) for layer in fp32]
    else:
        candidate = [Fp8Linear.from_linear(layer, fp8_format="e4m3") for layer in fp32]
    return {"x": x, "fp32": fp32, "candidate": candidate}


def _baseline_fp32(inputs):
    return _run_all(inputs["fp32"], inputs["x"])


def _baseline_bf16(inputs):
    with torch.no_grad():
        return [F.linear(inputs["x"].bfloat16(), w) for w in inputs["bf16"]]


def _baseline_int8pack(inputs):
    with torch.no_grad():
        return [torch._weight_int8pack_mm(inputs["x"], q, s) for q, s in inputs["int8pack"]]


def _candidate(inputs):
    return _run_all(inputs["candidate"], inputs["x"])


def _gemv_case(kind: str, baseline: str, target: float, quick: bool = True) -> BenchCase:
    label = {"w8": "int8 weight-only", "fp8": "fp8 e4m3 weight-only"}[kind]

    def make_inputs(quick_run: bool):
        inputs = _gemv_inputs(kind, quick_run)
        if baseline == "bf16":
            inputs["bf16"] = [layer.weight.detach().bfloat16() for layer in inputs["fp32"]]
        if baseline == "int8pack":  # torch's own int8 weight-only kernel: row-major int8 and per-channel scales
            inputs["int8pack"] = [m.quantized()[0].contiguous() for m in inputs["candidate"]]
            inputs["int8pack"] = [(q, m.quantized()[1].reshape(-1).contiguous())
                                  for q, m in zip(inputs["int8pack"], inputs["candidate"])]
        return inputs

    baselines = {"fp32": (_baseline_fp32, "torch fp32 F.linear"), "bf16": (_baseline_bf16, "torch bf16 F.linear"),
                 "int8pack": (_baseline_int8pack, "torch._weight_int8pack_mm")}
    run, name = baselines[baseline]
    weight_bytes = lambda inputs: sum(m.weight_bytes() for m in inputs["candidate"])
    return BenchCase(
        name=f"gemv_{kind}[vs {baseline}]",
        family="quantized_linear",
        shape=lambda inputs: f"M=1 K=N={K} {label}, {len(inputs['fp32'])} layers cycled "
                             f"({weight_bytes(inputs) / 2**20:.0f} MiB quantized)",
        make_inputs=make_inputs,
        prepare=lambda inputs: inputs,
        baseline=run,
        candidate=_candidate,
        check=check_sqnr(25.0 if kind == "fp8" else 35.0),
        baseline_name=name,
        targets=Targets(min_speedup=target),
        work=lambda inputs: Work(weight_bytes(inputs), "memory"),
        quick=quick,
    )


# --- W8A8 GEMM: compute ------------------------------------------------------------------------------------------

def _w8a8_inputs(rows: int, quick: bool):
    layer = _fp32_layers(1)[0]
    module = Int8Linear.from_linear(layer, activation_bits=8)
    q, scales = module.quantized()
    return {"x": _x(rows), "fp32": [layer], "candidate": [module], "q_t": q.t(), "w_scale": scales.reshape(1, -1)}


def torchao_w8a8(x: torch.Tensor, q_t: torch.Tensor, w_scale: torch.Tensor) -> torch.Tensor:
    """torchao's dynamic W8A8 recipe in plain torch: per-token symmetric int8, torch._int_mm, fp32 dequant."""
    x_scale = x.abs().amax(-1, keepdim=True).clamp_min(1e-12) / 127  # [M, 1]
    xq = torch.round(x / x_scale).clamp(-127, 127).to(torch.int8)  # [M, K]
    return torch._int_mm(xq, q_t).float() * x_scale * w_scale  # [M, N]


def _w8a8_case(rows: int, baseline: str) -> BenchCase:
    if baseline == "torchao":
        run = lambda inputs: [torchao_w8a8(inputs["x"], inputs["q_t"], inputs["w_scale"])]
        name, targets = "torchao recipe (quantize + _int_mm + dequant)", Targets(max_time_ratio=0.8)
    else:
        run, name, targets = _baseline_fp32, "torch fp32 F.linear", Targets(min_speedup=3.0)
    return BenchCase(
        name=f"w8a8_gemm[M={rows}, vs {baseline}]",
        family="quantized_linear",
        shape=lambda inputs: f"M={rows} K=N={K} int8 dynamic, per-token activations",
        make_inputs=functools.partial(_w8a8_inputs, rows),
        prepare=lambda inputs: inputs,
        baseline=run,
        candidate=_candidate,
        check=check_sqnr(30.0),
        baseline_name=name,
        targets=targets,
        work=lambda inputs: Work(2.0 * rows * N * K, "int8"),
        quick=rows in (16, 256),
    )


# --- FP8 GEMM ----------------------------------------------------------------------------------------------------

def _fp8_gemm_inputs(rows: int, baseline: str, quick: bool):
    layer = _fp32_layers(1)[0]
    inputs = {"x": _x(rows), "fp32": [layer], "candidate": [Fp8Linear.from_linear(layer, fp8_format="e4m3")]}
    if baseline == "bf16":
        inputs["bf16"] = [layer.weight.detach().bfloat16()]
    else:  # torch._scaled_mm: per-tensor scales, FP8 activations too, the weight column-major as it requires
        w = layer.weight.detach()
        w_scale = (w.abs().max() / 448).reshape(())
        inputs["w_fp8_t"] = (w / w_scale).to(torch.float8_e4m3fn).t()
        inputs["w_scale"] = w_scale.float()
    return inputs


def _scaled_mm(inputs):
    x = inputs["x"]
    x_scale = (x.abs().max() / 448).reshape(()).float()
    x_fp8 = (x / x_scale).to(torch.float8_e4m3fn)
    return [torch._scaled_mm(x_fp8, inputs["w_fp8_t"], x_scale, inputs["w_scale"], out_dtype=torch.bfloat16)]


def _fp8_gemm_case(rows: int, baseline: str) -> BenchCase:
    if baseline == "bf16":
        run, name, targets, repeats = _baseline_bf16, "torch bf16 F.linear", Targets(max_time_ratio=1.25), None
    else:
        run, name, targets, repeats = _scaled_mm, "torch._scaled_mm (fp8 x fp8)", Targets(min_speedup=10.0), 1
    return BenchCase(
        name=f"fp8_gemm[M={rows}, vs {baseline}]",
        family="quantized_linear",
        shape=lambda inputs: f"M={rows} K=N={K} fp8 e4m3 weight-only (bf16 arithmetic)",
        make_inputs=lambda quick: _fp8_gemm_inputs(rows, baseline, quick),
        prepare=lambda inputs: inputs,
        baseline=run,
        candidate=_candidate,
        check=check_sqnr(20.0),
        baseline_name=name,
        targets=targets,
        work=lambda inputs: Work(2.0 * rows * N * K, "bf16"),
        quick=baseline == "bf16",
        repeats=repeats,
    )


CASES = [
    _gemv_case("w8", "fp32", 3.5),
    _gemv_case("w8", "int8pack", 5.0),
    _gemv_case("fp8", "fp32", 3.5),
    _gemv_case("fp8", "bf16", 1.8),
    *[_w8a8_case(rows, "torchao") for rows in (16, 64, 256, 1024)],
    *[_w8a8_case(rows, "fp32") for rows in (16, 64, 256, 1024)],
    _fp8_gemm_case(256, "bf16"),
    _fp8_gemm_case(16, "scaled_mm"),
]
