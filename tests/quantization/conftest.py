"""Tiny APT models for the quantization tests: widths that every scheme's groups divide (32, 64, 128 inputs)."""

from __future__ import annotations

import pytest
import torch

TINY = dict(vocab_size=259, d_model=128, num_heads=2, num_encoder_layers=1, num_decoder_layers=1, d_ff=256,
            max_seq_len=24, bos_token_id=1, eos_token_id=2, pad_token_id=0, epsilon=0.08, dropout=0.0)


def tiny_model(**overrides):
    """A fresh eval-mode model with seed-0 weights; ``overrides`` change config fields."""
    from apt_fast.models.apt import APTConfig, APTModel

    torch.manual_seed(0)
    return APTModel(APTConfig(**{**TINY, **overrides})).eval()


def logits(model, batch):
    with torch.no_grad():
        return model(*batch)


@pytest.fixture
def make_model():
    """``make_model(**config_overrides)``: a fresh tiny model with seed-0 weights."""
    return tiny_model


@pytest.fixture
def run():
    """``run(model, batch)``: eval logits without gradients."""
    return logits


@pytest.fixture
def tokenizer():
    from apt_fast.models.apt.tokenization_byte import APTByteTokenizer

    return APTByteTokenizer()


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(1)
    return torch.randint(3, 259, (2, 9), generator=generator), torch.randint(3, 259, (2, 7), generator=generator)
