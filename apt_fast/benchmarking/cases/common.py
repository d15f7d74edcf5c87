"""Helpers shared by the case modules: output comparison and forward + backward runs."""

from __future__ import annotations

import torch


def assert_close(name: str, expected: torch.Tensor, actual: torch.Tensor, rtol: float) -> None:
    """Max |actual - expected| relative to max |expected| must be <= rtol."""
    scale = expected.abs().max().clamp_min(1e-30)
    err = ((actual.double() - expected.double()).abs().max() / scale).item()
    if err > rtol:
        raise AssertionError(f"{name} disagrees with the baseline: max relative difference {err:.3e} > {rtol:.0e}")


def check_all(rtol: float, baseline, candidate) -> None:
    for i, (b, c) in enumerate(zip(baseline, candidate)):
        assert_close(f"output {i}", b, c, rtol)


def fwd_bwd(fn, args):
    """Forward, backward with a fixed upstream gradient (the last of `args`); returns the output and the
    leaves' gradients."""
    *leaves, grad_out = args
    out = fn(*leaves)
    out.backward(grad_out)
    return (out.detach(), *[x.grad for x in leaves if x.requires_grad])


def leaves(inputs):
    """Fresh leaf copies of the tensors (floating ones require grad); the upstream gradient (last) is shared."""
    *tensors, grad_out = inputs
    return (*[x.detach().clone().requires_grad_(x.is_floating_point()) for x in tensors], grad_out)
