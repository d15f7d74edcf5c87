"""Calibration batches for the data-driven pruning methods (Taylor, Wanda): each batch a dict the APT model takes as
``model(**batch)``, with labels, so that its output carries the token cross-entropy as ``loss``."""

from __future__ import annotations

from torch import nn

from .batching import TokenizedData, collate, sequential_batches
from .evaluation import special_ids


def calibration_batches(model: nn.Module, tokenizer, data: TokenizedData, batch_size: int) -> list[dict]:
    """``data`` in batches of ``batch_size``: input_ids [B, S], attention_mask [B, S] (1 = token),
    decoder_input_ids [B, T] (BOS + target) and labels [B, T] (target + EOS, -100 where padded), on the model's
    device."""
    pad, bos, eos = special_ids(model, tokenizer)
    device = next(model.parameters()).device
    batches = []
    for indices in sequential_batches(len(data), batch_size):
        batch = collate(data, indices, pad_id=pad, bos_id=bos, eos_id=eos).to(device)
        batches.append({"input_ids": batch.src, "attention_mask": (~batch.src_padding).long(),
                        "decoder_input_ids": batch.tgt_in, "labels": batch.labels})
    return batches
