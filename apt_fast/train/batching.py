"""Tokenized examples, the per-epoch batch order, and padded batches for the encoder-decoder.

A sample becomes ``source_ids`` (encoder input) and ``target_ids``; the decoder input is
``[BOS] + target_ids`` and the labels are ``target_ids + [EOS]``. BOS and EOS are the model config's
ids, the ones ``generate`` starts from and stops on. Padding positions get the label ``IGNORE_INDEX``
and are masked in the encoder by length, never by comparing ids with the pad id (GPT-2 style
tokenizers use the same id for pad and EOS).

``--batch-size`` is the **global** batch: with N data-parallel processes, each takes every N-th sample
of the global batch, and every process pads to the widths of the whole global batch, so a
multi-process step computes exactly what a one-process step with the same global batch computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from .records import Example

IGNORE_INDEX = -100


@dataclass(frozen=True)
class TokenizedExample:
    source_ids: tuple[int, ...]
    target_ids: tuple[int, ...]


@dataclass(frozen=True)
class TokenizedData:
    """Tokenized examples, how many were truncated to ``max_length`` and how many encoded to nothing
    (dropped: a tokenizer may drop unknown characters)."""

    examples: tuple[TokenizedExample, ...]
    truncated: int
    dropped: int
    max_length: int

    def __len__(self) -> int:
        return len(self.examples)


@dataclass
class Batch:
    """One (local) batch; widths are those of the global batch it belongs to."""

    src: Tensor  # [B, S] int64, pad_id where padded
    src_padding: Tensor  # [B, S] bool, True = padding
    tgt_in: Tensor  # [B, T] int64, BOS + target, pad_id where padded
    labels: Tensor  # [B, T] int64, target + EOS, IGNORE_INDEX where padded

    def to(self, device: torch.device) -> "Batch":
        return Batch(*(t.to(device, non_blocking=True) for t in (self.src, self.src_padding, self.tgt_in, self.labels)))

    @property
    def num_tokens(self) -> int:
        """Source plus target tokens (no padding): what tokens/s counts."""
        return int((~self.src_padding).sum()) + int((self.labels != IGNORE_INDEX).sum())


def tokenize_examples(examples: Sequence[Example], tokenizer, max_length: int) -> TokenizedData:
    """Encode every example; sources keep ``max_length`` tokens, targets ``max_length - 1`` (room for BOS/EOS)."""
    if max_length < 2:
        raise ValueError(f"max_length must be >= 2 (BOS/EOS plus one token), got {max_length}")
    tokenized, truncated, dropped = [], 0, 0
    for example in examples:
        source, target = list(tokenizer.encode(example.source)), list(tokenizer.encode(example.target))
        if not source or not target:
            dropped += 1
            continue
        if len(source) > max_length or len(target) > max_length - 1:
            truncated += 1
        tokenized.append(TokenizedExample(tuple(source[:max_length]), tuple(target[: max_length - 1])))
    if not tokenized:
        raise ValueError("no sample has any token after tokenization (the tokenizer dropped every character)")
    return TokenizedData(tuple(tokenized), truncated, dropped, max_length)


def epoch_batches(num_samples: int, batch_size: int, seed: int, epoch: int, min_batch: int = 1) -> list[list[int]]:
    """The global batches of one epoch: a seeded permutation cut into ``batch_size`` chunks.

    Depends only on (seed, epoch), so a resumed run sees the same order. A last chunk smaller than
    ``min_batch`` (the number of processes) is dropped.
    """
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(num_samples, generator=generator).tolist()
    batches = [order[i: i + batch_size] for i in range(0, num_samples, batch_size)]
    return [b for b in batches if len(b) >= min_batch]


def sequential_batches(num_samples: int, batch_size: int) -> list[list[int]]:
    """Evaluation order: the samples in file order."""
    return [list(range(i, min(i + batch_size, num_samples))) for i in range(0, num_samples, batch_size)]


def collate(
    data: TokenizedData,
    global_indices: Sequence[int],
    *,
    pad_id: int,
    bos_id: int,
    eos_id: int,
    rank: int = 0,
    world_size: int = 1,
) -> Batch:
    """Pad this process's share (``global_indices[rank::world_size]``) to the global batch's widths."""
    chosen = [data.examples[i] for i in global_indices]
    src_width = max(len(ex.source_ids) for ex in chosen)
    tgt_width = max(len(ex.target_ids) for ex in chosen) + 1
    local = chosen[rank::world_size]
    src = torch.full((len(local), src_width), pad_id, dtype=torch.long)
    tgt_in = torch.full((len(local), tgt_width), pad_id, dtype=torch.long)
    labels = torch.full((len(local), tgt_width), IGNORE_INDEX, dtype=torch.long)
    src_padding = torch.ones((len(local), src_width), dtype=torch.bool)
    for row, ex in enumerate(local):
        n, m = len(ex.source_ids), len(ex.target_ids)
        src[row, :n] = torch.tensor(ex.source_ids, dtype=torch.long)
        src_padding[row, :n] = False
        tgt_in[row, : m + 1] = torch.tensor((bos_id, *ex.target_ids), dtype=torch.long)
        labels[row, : m + 1] = torch.tensor((*ex.target_ids, eos_id), dtype=torch.long)
    return Batch(src, src_padding, tgt_in, labels)
