"""CUDA kernels of the bitmap sparse linear ops: the Triton launchers of apt_fast.kernels.bitmap_linear, imported
on first use (triton is optional). The ops check the arguments first."""

from __future__ import annotations

from ..registry import register_kernel


@register_kernel("bitmap_linear", "CUDA")
def bitmap_linear(x, bitmap, row_offsets, values, scales, bias, out_features):
    from ...kernels.bitmap_linear import bitmap_linear_triton

    return bitmap_linear_triton(x, bitmap, row_offsets, values, scales, bias, out_features)


@register_kernel("bitmap_linear_backward", "CUDA")
def bitmap_linear_backward(grad_y, x, bitmap, row_offsets, values, scales, need_grad_x, need_grad_values):
    from ...kernels.bitmap_linear import bitmap_linear_backward_triton

    return bitmap_linear_backward_triton(grad_y, x, bitmap, row_offsets, values, scales, need_grad_x,
                                         need_grad_values)
