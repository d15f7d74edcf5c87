"""``labels=`` as Hugging Face seq2seq models take them: decoder inputs shifted from the labels, and the loss.

With labels [B, T] and no decoder tokens, the decoder reads ``[start, labels[:, :-1]]`` (start = the BOS
that ``generate`` starts from; -100 read as PAD); the loss is the mean cross-entropy of the logits
against the labels themselves, positions labelled -100 left out. Labels are not shifted for the loss and
their PAD positions count unless set to -100, as in transformers.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from .generation import special_token_ids

IGNORE_INDEX = -100


def shift_tokens_right(labels: Tensor, config) -> Tensor:  # [B, T] -> [B, T]
    """The decoder inputs for ``labels``: BOS, then the labels but the last, with -100 replaced by PAD."""
    bos, _, pad = special_token_ids(config)
    shifted = labels.new_empty(labels.shape)
    shifted[:, 1:] = labels[:, :-1]
    shifted[:, 0] = bos
    return shifted.masked_fill(shifted == IGNORE_INDEX, pad)


def seq2seq_loss(logits: Tensor, labels: Tensor) -> Tensor:  # [B, T, V], [B, T] -> scalar
    """Mean cross-entropy over the positions whose label is not -100, computed in float32."""
    return F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)
