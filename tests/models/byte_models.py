"""Tiny APT models over the byte tokenizer's vocabulary, for the Hugging Face interop tests."""

from __future__ import annotations

import torch

BYTE_MODEL = {"vocab_size": 259, "d_model": 32, "num_heads": 2, "num_encoder_layers": 1, "num_decoder_layers": 1,
              "d_ff": 64, "max_seq_len": 64, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, "dropout": 0.0}


def byte_model(seed: int = 0, **overrides):
    """A fresh eval-mode APTModel with seed-``seed`` weights; ``overrides`` change config fields."""
    from apt_fast.models.apt import APTConfig, APTModel

    torch.manual_seed(seed)
    return APTModel(APTConfig(**{**BYTE_MODEL, **overrides})).eval()


def byte_tokenizer():
    from apt_fast.models.apt.tokenization_byte import APTByteTokenizer

    return APTByteTokenizer()
