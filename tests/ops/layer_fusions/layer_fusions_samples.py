"""Sample arguments of the layer-fusion ops, for tests/ops/test_registered_ops.py."""

import torch


def _rows(rows, width, dtype, seed):
    return torch.randn(rows, width, generator=torch.Generator().manual_seed(seed)).to(dtype)  # [N, W]


def add_layer_norm_fwd():
    yield (_rows(7, 33, torch.float32, 0), _rows(7, 33, torch.float32, 1), _rows(1, 33, torch.float32, 2)[0],
           _rows(1, 33, torch.float32, 3)[0], 1e-5)
    yield (_rows(5, 40, torch.bfloat16, 0), _rows(5, 40, torch.bfloat16, 1), torch.ones(40), torch.zeros(40), 1e-6)


def add_layer_norm_bwd():
    for x, residual, weight, bias, eps in add_layer_norm_fwd():
        _, mean, rstd = torch.ops.apt_fast.add_layer_norm_fwd(x, residual, weight, bias, eps)
        yield (_rows(*x.shape, x.dtype, 4), x, residual, weight, bias, mean, rstd)


def bias_gelu_fwd():
    yield (_rows(9, 37, torch.float32, 0) * 3, _rows(1, 37, torch.float32, 1)[0])
    yield (_rows(4, 64, torch.bfloat16, 0) * 3, _rows(1, 64, torch.float32, 1)[0])


def bias_gelu_bwd():
    for x, bias in bias_gelu_fwd():
        yield (_rows(*x.shape, x.dtype, 2), x, bias)


SAMPLES = {"add_layer_norm_fwd": add_layer_norm_fwd, "add_layer_norm_bwd": add_layer_norm_bwd,
           "bias_gelu_fwd": bias_gelu_fwd, "bias_gelu_bwd": bias_gelu_bwd}
