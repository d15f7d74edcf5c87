"""Sample arguments of the bitmap_linear ops, for tests/ops/test_registered_ops.py: fp32, bf16 and int8 values,
fp32 and bf16 x, K not a multiple of 64, leading dims, bias, each backward flag."""

import torch
from bitmap_helpers import bitmap_weight, op_arguments

N, K = 37, 100


def _x(*shape, dtype=torch.float32, seed=1):
    return torch.randn(*shape, K, generator=torch.Generator().manual_seed(seed)).to(dtype)


def bitmap_linear():
    fp32 = bitmap_weight(N, K, 0.5)
    yield (_x(3), *op_arguments(fp32), torch.randn(N, generator=torch.Generator().manual_seed(2)), N)
    yield (_x(2, 5, dtype=torch.bfloat16), *op_arguments(bitmap_weight(N, K, 0.3, torch.bfloat16)), None, N)
    yield (_x(4), *op_arguments(bitmap_weight(N, K, 0.7, torch.int8)), torch.zeros(N), N)


def bitmap_linear_backward():
    fp32 = bitmap_weight(N, K, 0.5)
    grad = torch.randn(3, N, generator=torch.Generator().manual_seed(3))
    yield (grad, _x(3), *op_arguments(fp32), True, True)
    yield (grad.bfloat16(), _x(3, dtype=torch.bfloat16), *op_arguments(bitmap_weight(N, K, 0.2, torch.bfloat16)),
           False, True)
    yield (grad, _x(3), *op_arguments(bitmap_weight(N, K, 0.6, torch.int8)), True, False)


SAMPLES = {name: globals()[name] for name in ("bitmap_linear", "bitmap_linear_backward")}
