"""Sample arguments of the block_linear ops, for tests/ops/test_registered_ops.py: blocks (16, 16), (32, 32) and
(1, 16), fp32 and bf16 values and x, leading dims, bias, each backward flag."""

import torch
from block_helpers import block_weight, op_arguments

N, K = 96, 64


def _x(*shape, dtype=torch.float32, seed=1):
    return torch.randn(*shape, K, generator=torch.Generator().manual_seed(seed)).to(dtype)


def block_linear():
    bias = torch.randn(N, generator=torch.Generator().manual_seed(2))
    yield (_x(3), *op_arguments(block_weight(N, K, (16, 16))), bias, N)
    yield (_x(2, 5, dtype=torch.bfloat16), *op_arguments(block_weight(N, K, (32, 32), 0.5, torch.bfloat16)), None, N)
    yield (_x(4), *op_arguments(block_weight(N, K, (1, 16), 0.4)), torch.zeros(N), N)


def block_linear_backward():
    grad = torch.randn(3, N, generator=torch.Generator().manual_seed(3))
    yield (grad, _x(3), *op_arguments(block_weight(N, K, (16, 16))), True, True)
    yield (grad.bfloat16(), _x(3, dtype=torch.bfloat16), *op_arguments(block_weight(N, K, (32, 32), 0.5,
                                                                                    torch.bfloat16)), False, True)
    yield (grad, _x(3), *op_arguments(block_weight(N, K, (1, 16), 0.4)), True, False)


SAMPLES = {name: globals()[name] for name in ("block_linear", "block_linear_backward")}
