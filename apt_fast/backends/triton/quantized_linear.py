"""CUDA kernels of the quantized linear ops: the Triton launchers of apt_fast.kernels.quantized_linear, imported
on first use (triton is optional). They work on the row-major weight layout; a packed (CPU) weight is unpacked
first. The ops check the arguments first."""

from __future__ import annotations

from ...ops.quantized_linear import row_major
from ..registry import register_kernel


@register_kernel("int8_linear", "CUDA")
def int8_linear(x, weight, compensation, scales, bias, out_features, group_size, activation_bits):
    from ...kernels.quantized_linear import int8_linear_triton

    q, s = row_major(weight, scales, out_features, x.shape[-1], int8=True)
    return int8_linear_triton(x, q, s, bias, out_features, group_size, activation_bits)


@register_kernel("fp8_linear", "CUDA")
def fp8_linear(x, weight, scales, bias, out_features, group_size, fp8_format):
    from ...kernels.quantized_linear import fp8_linear_triton

    codes, s = row_major(weight, scales, out_features, x.shape[-1], int8=False)
    return fp8_linear_triton(x, codes, s, bias, out_features, group_size, fp8_format)


@register_kernel("quantized_linear_grad_input", "CUDA")
def quantized_linear_grad_input(grad_out, weight, scales, in_features, group_size, weight_format):
    from ...kernels.quantized_linear import quantized_linear_grad_input_triton

    q, s = row_major(weight, scales, grad_out.shape[-1], in_features, int8=weight_format == 0)
    return quantized_linear_grad_input_triton(grad_out, q, s, in_features, group_size, weight_format)


@register_kernel("fp8_quantize", "CUDA")
def fp8_quantize(x, scales, fp8_format, saturate):
    from ...kernels.quantized_linear import fp8_quantize_triton

    return fp8_quantize_triton(x, scales, fp8_format, saturate)
