"""Sample arguments of the quantized linear ops, for tests/ops/test_registered_ops.py: both weight layouts
(row-major and packed panels), 8- and 16-bit activations, groups, bias, bf16."""

import torch
from quantized_helpers import fp8_weights, int8_weights, packed_fp8, packed_int8

N, K = 40, 96


def int8_linear():
    q, scales = int8_weights(N, K, 32)
    x = torch.randn(3, K, generator=torch.Generator().manual_seed(1))
    bias = torch.randn(N, generator=torch.Generator().manual_seed(2))
    yield (x, q, torch.empty(0, dtype=torch.int32), scales, bias, N, 32, 8)
    panels, compensation, packed_scales = packed_int8(q, scales, 32)
    yield (x.bfloat16(), panels, compensation, packed_scales, None, N, 32, 16)


def fp8_linear():
    codes, scales = fp8_weights(N, K, K, 1)
    x = torch.randn(2, 5, K, generator=torch.Generator().manual_seed(3))
    yield (x, codes, scales, None, N, K, 1)
    e5m2, e5m2_scales = fp8_weights(N, K, K, 2)
    panels, packed_scales = packed_fp8(e5m2, e5m2_scales, K)
    yield (x.bfloat16(), panels, packed_scales, torch.zeros(N), N, K, 2)


def quantized_linear_grad_input():
    q, scales = int8_weights(N, K, 32)
    grad = torch.randn(4, N, generator=torch.Generator().manual_seed(4))
    yield (grad, q, scales, K, 32, 0)
    codes, fp8_scales = fp8_weights(N, K, K, 1)
    panels, packed_scales = packed_fp8(codes, fp8_scales, K)
    yield (grad, panels, packed_scales, K, K, 1)


def fp8_quantize():
    x = torch.randn(6, 64, generator=torch.Generator().manual_seed(5)) * 300
    yield (x, torch.ones(6, 2), 1, True)
    yield (x.bfloat16(), torch.full((6, 1), 0.01), 2, False)


SAMPLES = {name: globals()[name] for name in ("int8_linear", "fp8_linear", "quantized_linear_grad_input",
                                              "fp8_quantize")}
