"""Calibration batches for the data-driven pruning methods (Taylor, Wanda) from a data file: each batch a dict the
APT model takes as ``model(**batch)``, with labels, so that its output carries the token cross-entropy as ``loss``."""

from __future__ import annotations

import os

from torch import nn

from .batching import collate, sequential_batches
from .evaluation import special_ids
from .inputs import load_tokenized


def calibration_batches(model: nn.Module, tokenizer, path: str | os.PathLike, *, max_samples: int, max_length: int,
                        batch_size: int, argument: str = "--calibration-data") -> list[dict]:
    """The first ``max_samples`` samples of ``path`` in batches of ``batch_size``: input_ids [B, S],
    attention_mask [B, S] (1 = token), decoder_input_ids [B, T] (BOS + target) and labels [B, T] (target + EOS,
    -100 where padded), on the model's device."""
    data = load_tokenized(path, tokenizer, max_length=max_length, max_samples=max_samples, argument=argument)
    pad, bos, eos = special_ids(model, tokenizer)
    device = next(model.parameters()).device
    batches = []
    for indices in sequential_batches(len(data), batch_size):
        batch = collate(data, indices, pad_id=pad, bos_id=bos, eos_id=eos).to(device)
        batches.append({"input_ids": batch.src, "attention_mask": (~batch.src_padding).long(),
                        "decoder_input_ids": batch.tgt_in, "labels": batch.labels})
    return batches
