"""Models for the pruning tests: a tiny APT model (tied embedding/output projection) and plain stacks of Linears
with odd widths."""

from __future__ import annotations

import pytest
import torch
from torch import nn

TINY_APT = dict(vocab_size=40, d_model=32, num_heads=4, num_encoder_layers=1, num_decoder_layers=1, d_ff=48,
                max_seq_len=16, bos_token_id=1, eos_token_id=2, pad_token_id=0, epsilon=0.08, dropout=0.0)


def tiny_apt(**overrides):
    from apt_fast.models.apt import APTConfig, APTModel

    torch.manual_seed(0)
    return APTModel(APTConfig(**{**TINY_APT, **overrides})).eval()


def apt_batches(count: int = 3, batch: int = 2, length: int = 7):
    """Calibration batches for the APT model: dicts with labels, so the model returns a .loss."""
    generator = torch.Generator().manual_seed(1)
    return [dict(input_ids=torch.randint(3, 40, (batch, length), generator=generator),
                 labels=torch.randint(3, 40, (batch, length), generator=generator)) for _ in range(count)]


def mlp(*widths: int, bias: bool = True) -> nn.Sequential:
    """Linear(widths[0] -> widths[1]), GELU, Linear(...), ... with seed-0 weights."""
    torch.manual_seed(0)
    layers = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        layers += [nn.Linear(a, b, bias=bias)] + ([nn.GELU()] if i < len(widths) - 2 else [])
    return nn.Sequential(*layers)


@pytest.fixture
def make_apt():
    return tiny_apt


@pytest.fixture
def make_mlp():
    return mlp


@pytest.fixture
def batches():
    return apt_batches


def linears(model: nn.Module):
    return {path: m for path, m in model.named_modules() if isinstance(m, nn.Linear)}


@pytest.fixture
def linear_layers():
    """``linear_layers(model)``: {path: nn.Linear}."""
    return linears
