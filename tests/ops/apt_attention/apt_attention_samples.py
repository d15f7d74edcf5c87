"""Sample arguments of the APT attention ops (head mean, statistics, final attention), for
tests/ops/test_registered_ops.py."""

import torch
from attention_helpers import randn

from apt_fast.reference.apt_attention import expand_attn_mask

EPSILON = 0.08
B, H, T, S, D, HIDDEN = 2, 2, 6, 5, 4, 16


def _inputs(dtype=torch.float32):
    q, k, v = (randn(B, H, n, D, seed=seed, dtype=dtype) for seed, n in ((1, T), (2, S), (3, S)))
    mask = expand_attn_mask(torch.triu(torch.full((T, S), float("-inf")), 1), B, dtype)  # [B, 1, T, S]
    key_padding = torch.zeros(B, S, dtype=torch.bool)  # [B, S] True = padded
    key_padding[1, 0] = True
    return q, k, v, mask, key_padding


def _sr_params():
    generator = torch.Generator().manual_seed(4)
    return [torch.randn(HIDDEN, 1, 1, 1, generator=generator) * 4, torch.rand(HIDDEN, generator=generator) * 2 - 1,
            torch.randn(1, HIDDEN, 1, 1, generator=generator), torch.full((1,), 0.05), torch.full((1,), 1.2)]


def apt_head_mean_fwd():
    q, k, _, mask, key_padding = _inputs()
    yield (q, k, mask, key_padding)
    yield (q, k, None, None)
    q, k, _, mask, key_padding = _inputs(torch.bfloat16)
    yield (q, k, mask, key_padding)


def apt_head_mean_bwd():
    for dtype in (torch.float32, torch.bfloat16):
        q, k, _, mask, key_padding = _inputs(dtype)
        yield (randn(B, T, S, seed=9), q, k, mask, key_padding)  # dM [B, T, S] fp32 whatever q's dtype


def apt_attention_fwd():
    for dtype in (torch.float32, torch.bfloat16):
        q, k, v, mask, key_padding = _inputs(dtype)
        f, m = randn(B, T, S, seed=4), torch.ops.apt_fast.apt_head_mean_fwd(q, k, mask, key_padding)  # fp32 maps
        yield (q, k, v, f, m, mask, key_padding, 0.0, 0)
        yield (q, k, v, f, m, None, None, 0.3, 11)


def apt_attention_bwd():
    for q, k, v, f, m, mask, key_padding, dropout_p, seed in apt_attention_fwd():
        out, lse = torch.ops.apt_fast.apt_attention_fwd(q, k, v, f, m, mask, key_padding, dropout_p, seed)
        yield (torch.randn_like(out), q, k, v, f, m, mask, key_padding, out, lse, dropout_p, seed)


def apt_stats_fwd():
    q, k, _, mask, key_padding = _inputs()
    m = torch.ops.apt_fast.apt_head_mean_fwd(q, k, mask, None)  # [B, T, S]
    yield (m, mask, *_sr_params(), EPSILON)


def apt_stats_bwd():
    for m, mask, *params, epsilon in apt_stats_fwd():
        f, r0, stats = torch.ops.apt_fast.apt_stats_fwd(m, mask, *params, epsilon)
        yield (torch.randn_like(f), m, mask, *params, epsilon, r0, stats)


SAMPLES = {name: globals()[name] for name in ("apt_head_mean_fwd", "apt_head_mean_bwd", "apt_attention_fwd",
                                              "apt_attention_bwd", "apt_stats_fwd", "apt_stats_bwd")}
