"""CUDA kernels of the N:M sparse linear ops: the Triton launchers of apt_fast.kernels.nm_linear, imported on first
use (triton is optional). The ops check the arguments first."""

from __future__ import annotations

from ..registry import register_kernel


@register_kernel("nm_linear", "CUDA")
def nm_linear(x, values, indices, scales, bias, out_features, n, m):
    from ...kernels.nm_linear import nm_linear_triton

    return nm_linear_triton(x, values, indices, scales, bias, out_features, n, m)


@register_kernel("nm_linear_backward", "CUDA")
def nm_linear_backward(grad_out, x, values, indices, scales, n, m, need_grad_x, need_grad_values):
    from ...kernels.nm_linear import nm_linear_backward_triton

    return nm_linear_backward_triton(grad_out, x, values, indices, scales, n, m, need_grad_x, need_grad_values)
