"""CUDA kernels of the layer-fusion ops: the Triton launchers of apt_fast.kernels, imported on first use (triton
is optional). The ops check the arguments first."""

from __future__ import annotations

from ..registry import register_kernel


@register_kernel("add_layer_norm_fwd", "CUDA")
def add_layer_norm_fwd(x, residual, weight, bias, eps):
    from ...kernels.layer_fusions import add_layer_norm_fwd_triton

    return add_layer_norm_fwd_triton(x, residual, weight, bias, eps)


@register_kernel("add_layer_norm_bwd", "CUDA")
def add_layer_norm_bwd(grad_out, x, residual, weight, bias, mean, rstd):
    from ...kernels.layer_fusions import add_layer_norm_bwd_triton

    return add_layer_norm_bwd_triton(grad_out, x, residual, weight, bias, mean, rstd)


@register_kernel("bias_gelu_fwd", "CUDA")
def bias_gelu_fwd(x, bias):
    from ...kernels.layer_fusions import bias_gelu_fwd_triton

    return bias_gelu_fwd_triton(x, bias)


@register_kernel("bias_gelu_bwd", "CUDA")
def bias_gelu_bwd(grad_out, x, bias):
    from ...kernels.layer_fusions import bias_gelu_bwd_triton

    return bias_gelu_bwd_triton(grad_out, x, bias)
