"""Helpers of the training tests: a tiny APT config and generated data."""

from __future__ import annotations

import json
import random

TINY = dict(d_model=16, num_heads=2, num_encoder_layers=2, num_decoder_layers=2, d_ff=32, max_seq_len=32,
            dropout=0.0, use_dbc_dac=False)


def reversal_records(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    words = ["".join(rng.choice("abcdef") for _ in range(rng.randint(2, 6))) for _ in range(n)]
    return [{"prompt": w, "response": w[::-1]} for w in words]


def write_jsonl(path, records) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return str(path)


def make_tiny_model(seed: int = 0, **overrides):
    import torch

    from apt_fast.models.apt import APTConfig, APTModel
    from apt_fast.models.apt.tokenization_byte import APTByteTokenizer

    tokenizer = APTByteTokenizer()
    torch.manual_seed(seed)
    config = APTConfig(vocab_size=tokenizer.vocab_size, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                       **{**TINY, **overrides})
    return APTModel(config), tokenizer
