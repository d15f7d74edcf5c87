"""CUDA kernels of the block-sparse linear ops: the Triton launchers of apt_fast.kernels.block_linear, imported on
first use (triton is optional). The ops check the arguments first."""

from __future__ import annotations

from ..registry import register_kernel


@register_kernel("block_linear", "CUDA")
def block_linear(x, values, block_row_offsets, block_columns, bias, out_features):
    from ...kernels.block_linear import block_linear_triton

    return block_linear_triton(x, values, block_row_offsets, block_columns, bias, out_features)


@register_kernel("block_linear_backward", "CUDA")
def block_linear_backward(grad_out, x, values, block_row_offsets, block_columns, need_grad_x, need_grad_values):
    from ...kernels.block_linear import block_linear_backward_triton

    return block_linear_backward_triton(grad_out, x, values, block_row_offsets, block_columns, need_grad_x,
                                        need_grad_values)
