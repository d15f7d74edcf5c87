"""Shared by the layer-fusion tests: the cases, and the accuracy rule.

The rule (flash-attention's): an output's error against float64 is at most 2x the error of torch's own op in the
same dtype (F.layer_norm(x + residual), F.gelu(x + bias) through autograd), plus a floor. Errors are max |diff|
relative to max |exact|. The floors, a few units of roundoff, cover a torch op that happens to be exact on a
case: float32 2e-6 (17 ulp of 1.2e-7; the kernels' measured errors here are <= 4e-7 forward, <= 2e-6 for the
row-summed weight/bias gradients), bfloat16 one ulp (2^-8: the kernels compute in float32 and round once).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FLOORS = {torch.float32: 2e-6, torch.bfloat16: 2.0 ** -8}

# (rows, width): the benchmark model's, odd widths below and above the vector size, one row, a wide row.
NORM_SHAPES = [(512, 256), (7, 33), (1, 5), (13, 97), (3, 1030)]
GELU_SHAPES = [(512, 1024), (9, 37), (1, 3), (5, 129)]


def inputs(shape, count, seed=0, scale=3.0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=generator, dtype=torch.float64) * scale for _ in range(count)]


def relative_error(actual, exact):
    return (actual.double() - exact).abs().max().item() / max(exact.abs().max().item(), 1e-30)


def torch_add_layer_norm(x, residual, weight, bias, eps=1e-5):
    return F.layer_norm(x + residual, (x.shape[-1],), weight, bias, eps)


def torch_bias_gelu(x, bias):
    return F.gelu(x + bias)


def outputs_and_grads(fn, tensors, grad_out, dtype):
    """fn(*tensors in dtype) and the gradients of every tensor, all as float64."""
    leaves = [t.detach().to(dtype).requires_grad_(True) for t in tensors]
    out = fn(*leaves)
    grads = torch.autograd.grad(out, leaves, grad_out.to(dtype))
    return [out.double(), *(g.double() for g in grads)]


def assert_as_accurate_as_torch(name, candidate, torch_fn, tensors, grad_out, dtype):
    """The candidate's forward and every gradient within 2x torch's error in `dtype` (+ the floor)."""
    exact = outputs_and_grads(torch_fn, tensors, grad_out, torch.float64)
    ours = outputs_and_grads(candidate, tensors, grad_out, dtype)
    theirs = outputs_and_grads(torch_fn, tensors, grad_out, dtype)
    labels = ["out"] + [f"grad {i}" for i in range(len(tensors))]
    for label, a, b, e in zip(labels, ours, theirs, exact):
        err, torch_err = relative_error(a, e), relative_error(b, e)
        limit = 2 * torch_err + FLOORS[dtype]
        print(f"{name} {dtype} {label}: ours {err:.2e}, torch {torch_err:.2e}")
        assert err <= limit, f"{name} {dtype} {label}: error {err:.2e} > {limit:.2e} (torch's {torch_err:.2e})"
