"""Tiny APT models and tokenizers for the GGUF tests."""

from __future__ import annotations

import pytest
import torch


def tiny_model(**overrides):
    from apt_fast.models.apt import APTConfig, APTModel

    fields = dict(vocab_size=259, d_model=64, num_heads=2, num_encoder_layers=1, num_decoder_layers=2, d_ff=96,
                  max_seq_len=24, bos_token_id=1, eos_token_id=2, pad_token_id=0, epsilon=0.08)
    fields.update(overrides)
    torch.manual_seed(0)
    return APTModel(APTConfig(**fields)).eval()


@pytest.fixture
def make_model():
    """``make_model(**config_overrides)``: a fresh tiny model with seed-0 weights."""
    return tiny_model


@pytest.fixture
def model():
    return tiny_model()


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


def logits(model, batch):
    with torch.no_grad():
        return model(*batch)
