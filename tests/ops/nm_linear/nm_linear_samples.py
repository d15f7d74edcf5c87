"""Sample arguments of the nm_linear ops, for tests/ops/test_registered_ops.py: 2:4 and 4:8, fp32, bf16 and int8
values, fp32 and bf16 x, K not a multiple of 64, leading dims, bias, each backward flag."""

import torch
from nm_helpers import nm_weight, op_arguments

N, K = 37, 104


def _x(*shape, dtype=torch.float32, seed=1):
    return torch.randn(*shape, K, generator=torch.Generator().manual_seed(seed)).to(dtype)


def nm_linear():
    yield (_x(3), *op_arguments(nm_weight(N, K)), torch.randn(N, generator=torch.Generator().manual_seed(2)), N, 2, 4)
    yield (_x(2, 5, dtype=torch.bfloat16), *op_arguments(nm_weight(N, K, 4, 8, torch.bfloat16)), None, N, 4, 8)
    yield (_x(4), *op_arguments(nm_weight(N, K, 2, 4, torch.int8)), torch.zeros(N), N, 2, 4)


def nm_linear_backward():
    grad = torch.randn(3, N, generator=torch.Generator().manual_seed(3))
    yield (grad, _x(3), *op_arguments(nm_weight(N, K)), 2, 4, True, True)
    yield (grad.bfloat16(), _x(3, dtype=torch.bfloat16), *op_arguments(nm_weight(N, K, 4, 8, torch.bfloat16)), 4, 8,
           False, True)
    yield (grad, _x(3), *op_arguments(nm_weight(N, K, 2, 4, torch.int8)), 2, 4, True, False)


SAMPLES = {name: globals()[name] for name in ("nm_linear", "nm_linear_backward")}
