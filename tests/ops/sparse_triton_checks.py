"""Shared pieces of the sparse families' Triton tests: where the kernels run, the float tolerance rule, and a
build of the kernels for an H100 (which needs no GPU).

A float kernel sums in another order than torch, so it is held to the error of the same computation in fp32
(torch on the same operands) against the exact fp64 result: within 2x that error, plus, when the kernel writes
bf16, the rounding to bf16 (2^-8 relative, half an ulp of its 8-bit significand).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def on_device(*tensors):
    """The tensors moved to DEVICE (None stays None)."""
    return tuple(t.to(DEVICE) if t is not None else None for t in tensors)


def assert_near_exact(got: torch.Tensor, exact: torch.Tensor, fp32: torch.Tensor, label: str) -> None:
    """got (fp32 or bf16) against exact (fp64), allowed 2x the error of fp32, the fp32 computation of the same."""
    rounds_to_bf16 = got.dtype == torch.bfloat16
    got, exact = got.double().cpu(), exact.double().cpu()
    assert got.shape == exact.shape, f"{label}: shape {tuple(got.shape)} != {tuple(exact.shape)}"
    if not exact.numel():
        return
    fp32_err = (fp32.double().cpu() - exact).abs().max().item()
    allowed = 2 * fp32_err + 1e-6 * exact.abs().max().item()
    bound = allowed + (2.0 ** -8 * (exact.abs() + allowed) if rounds_to_bf16 else 0.0)
    err = (got - exact).abs()
    print(f"{label}: max err {err.max().item():.3e}, fp32 err {fp32_err:.3e}")
    assert bool((err <= bound).all()), f"{label}: {int((err > bound).sum())} of {err.numel()} beyond the bound"



POINTER_TYPES = {torch.float32: "*fp32", torch.bfloat16: "*bf16", torch.int8: "*i8", torch.uint8: "*u8",
                 torch.int32: "*i32", torch.int64: "*i64"}

_COMPILE = """
import importlib, json, sys
import triton
from triton.backends.compiler import GPUTarget
module = importlib.import_module(sys.argv[1])
for name, signature, constexprs in json.loads(sys.argv[2]):
    source = triton.compiler.ASTSource(fn=getattr(module, name), signature=signature, constexprs=constexprs)
    if not triton.compile(source, target=GPUTarget("cuda", 90, 32)).asm.get("cubin"):
        sys.exit(f"{name}: no cubin")
"""


def h100_build(kernel, pointers: dict, constexprs: dict):
    """One kernel variant for compile_for_h100. pointers: each *_ptr argument's torch dtype; constexprs: the
    constexpr arguments; every other argument is an int32."""
    signature = {name: "constexpr" if name in constexprs else POINTER_TYPES[pointers[name]]
                 if name.endswith("_ptr") else "i32" for name in kernel.arg_names}
    return kernel.__name__, signature, constexprs


def compile_for_h100(module: str, builds) -> None:
    """Compiles the kernels of `module` to sm_90 (H100) cubins, which needs no GPU: the checks only a GPU build
    makes (dot shapes and types, constexpr branches, layouts) run where only the interpreter runs the kernels.
    A subprocess, because a process under TRITON_INTERPRET=1 holds interpreted kernels, which do not compile."""
    pytest.importorskip("triton.backends.nvidia.compiler")
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    env["TRITON_DEFAULT_FP_FUSION"] = "1"
    done = subprocess.run([sys.executable, "-c", _COMPILE, module, json.dumps(list(builds))], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
