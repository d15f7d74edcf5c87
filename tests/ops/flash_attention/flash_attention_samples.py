"""Sample arguments of the flash_attention ops, for tests/ops/test_registered_ops.py."""

import torch
from attention_helpers import randn


def _inputs():
    b, h, t, s, d = 2, 2, 9, 7, 8
    q, k, v = randn(b, h, t, d, seed=0), randn(b, h, s, d, seed=1), randn(b, h, s, d, seed=2)
    bias = randn(h, t, s, seed=5)  # [H, T, S], broadcast over the batch
    mask = torch.rand(t, s, generator=torch.Generator().manual_seed(0)) > 0.2  # [T, S] True = attend
    return q, k, v, bias, mask


def flash_attention_fwd():
    q, k, v, bias, mask = _inputs()
    yield (q, k, v, bias, mask, True, 0.3, 0.0, 0)
    yield (q, k, v, None, None, False, 0.35, 0.25, 7)


def flash_attention_bwd():
    q, k, v, bias, mask = _inputs()
    for bias_, mask_, causal, dropout_p in ((bias, mask, True, 0.0), (None, None, False, 0.25)):
        out, lse = torch.ops.apt_fast.flash_attention_fwd(q, k, v, bias_, mask_, causal, 0.3, dropout_p, 7)
        yield (torch.randn_like(out), q, k, v, bias_, mask_, out, lse, causal, 0.3, dropout_p, 7, bias_ is not None)


SAMPLES = {"flash_attention_fwd": flash_attention_fwd, "flash_attention_bwd": flash_attention_bwd}
