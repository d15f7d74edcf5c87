"""Sample arguments of the flash_attention ops, for tests/ops/test_registered_ops.py."""

import torch
from attention_helpers import randn


def _inputs(dtype=torch.float32):
    b, h, t, s, d = 2, 2, 9, 7, 8
    q, k, v = (randn(b, h, n, d, seed=i, dtype=dtype) for i, n in enumerate((t, s, s)))
    bias = randn(h, t, s, seed=5, dtype=dtype)  # [H, T, S], broadcast over the batch
    mask = torch.rand(t, s, generator=torch.Generator().manual_seed(0)) > 0.2  # [T, S] True = attend
    return q, k, v, bias, mask


def _bf16_full_bias():
    """bf16 q, k, v with a bias of the full [B, H, T, S] (its gradient is written in bf16 directly)."""
    q, k, v, _, mask = _inputs(torch.bfloat16)
    return q, k, v, randn(2, 2, 9, 7, seed=6, dtype=torch.bfloat16), mask


def flash_attention_fwd():
    q, k, v, bias, mask = _inputs()
    yield (q, k, v, bias, mask, True, 0.3, 0.0, 0)
    yield (q, k, v, None, None, False, 0.35, 0.25, 7)
    q, k, v, bias, mask = _inputs(torch.bfloat16)
    yield (q, k, v, bias, mask, True, 0.3, 0.0, 0)
    yield (*_bf16_full_bias()[:4], None, False, 0.35, 0.25, 7)


def flash_attention_bwd():
    for q, k, v, bias, mask, causal, scale, dropout_p, seed in flash_attention_fwd():
        out, lse = torch.ops.apt_fast.flash_attention_fwd(q, k, v, bias, mask, causal, scale, dropout_p, seed)
        yield (torch.randn_like(out), q, k, v, bias, mask, out, lse, causal, scale, dropout_p, seed, bias is not None)


SAMPLES = {"flash_attention_fwd": flash_attention_fwd, "flash_attention_bwd": flash_attention_bwd}
