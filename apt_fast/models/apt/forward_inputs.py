"""APTModel.forward's arguments: upstream's names, upstream's aliases and Hugging Face's, resolved to one set.

=====================  ==========================  ======================================================
upstream name          upstream alias              Hugging Face name
=====================  ==========================  ======================================================
src_tokens             query                       input_ids
tgt_tokens             key                         decoder_input_ids (or shifted from ``labels``)
src_mask               attn_mask
src_key_padding_mask   key_padding_mask            attention_mask (1 = keep, 0 = pad, so kpm = mask == 0)
tgt_key_padding_mask                               decoder_attention_mask (likewise; the causal mask stays)
=====================  ==========================  ======================================================

Two names for the same input are a TypeError. Upstream's ``value`` alias is unused by upstream; it is
accepted only as a repeat of the decoder tokens. Defaults are upstream's: the decoder tokens are the
encoder's (unless ``labels`` give them), ``memory_key_padding_mask`` is the encoder's padding mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .labels import shift_tokens_right


@dataclass
class ForwardInputs:
    src_tokens: Tensor  # [B, S]
    tgt_tokens: Tensor  # [B, T]
    src_mask: Tensor | None
    tgt_mask: Tensor | None
    memory_mask: Tensor | None
    src_key_padding_mask: Tensor | None  # [B, S], True (or nonzero) = pad
    tgt_key_padding_mask: Tensor | None  # [B, T]
    memory_key_padding_mask: Tensor | None  # [B, S]


def _one(what: str, **candidates: Tensor | None) -> Tensor | None:
    given = [name for name, value in candidates.items() if value is not None]
    if len(given) > 1:
        raise TypeError(f"APTModel.forward() got {what} twice, as {' and as '.join(g + '=' for g in given)}; "
                        f"pass only one of them")
    return candidates[given[0]] if given else None


def _padding(mask: Tensor | None, name: str, tokens: Tensor | None, tokens_name: str) -> Tensor | None:
    """An HF attention mask (1 = keep, 0 = pad) as a key padding mask (True = pad)."""
    if mask is None:
        return None
    if tokens is not None and tuple(mask.shape) != tuple(tokens.shape):
        raise ValueError(f"APTModel.forward: {name} must have the shape of {tokens_name} {list(tokens.shape)}, "
                         f"got {list(mask.shape)}")
    return mask == 0


def resolve_forward_inputs(
    config,
    *,
    src_tokens, tgt_tokens, src_mask, tgt_mask, memory_mask, src_key_padding_mask, tgt_key_padding_mask,
    memory_key_padding_mask, query, key, value, attn_mask, key_padding_mask, input_ids, decoder_input_ids,
    attention_mask, decoder_attention_mask, labels,
) -> ForwardInputs:
    """The inputs of one forward call under upstream's names (see the module docstring)."""
    src = _one("the encoder tokens", src_tokens=src_tokens, query=query, input_ids=input_ids)
    if src is None:
        raise TypeError("APTModel.forward() needs the encoder tokens: src_tokens=, query= or input_ids=")
    tgt = _one("the decoder tokens", tgt_tokens=tgt_tokens, key=key, decoder_input_ids=decoder_input_ids)
    if tgt is None and labels is not None:
        tgt = shift_tokens_right(labels, config)
    tgt = src if tgt is None else tgt
    if value is not None and not (value is tgt or torch.equal(value, tgt)):
        raise TypeError("APTModel.forward(): value= is upstream's unused alias; it can only repeat the decoder "
                        "tokens (key= / tgt_tokens=), and APT reads nothing else from it")
    if labels is not None and tuple(labels.shape) != tuple(tgt.shape):
        raise ValueError(f"APTModel.forward: labels must have the shape of the decoder tokens {list(tgt.shape)}, "
                         f"got {list(labels.shape)}")
    src_padding = _one(
        "the encoder padding mask", src_key_padding_mask=src_key_padding_mask, key_padding_mask=key_padding_mask,
        attention_mask=_padding(attention_mask, "attention_mask", src, "the encoder tokens"))
    tgt_padding = _one(
        "the decoder padding mask", tgt_key_padding_mask=tgt_key_padding_mask,
        decoder_attention_mask=_padding(decoder_attention_mask, "decoder_attention_mask", tgt, "the decoder tokens"))
    return ForwardInputs(
        src_tokens=src,
        tgt_tokens=tgt,
        src_mask=_one("the encoder attention mask", src_mask=src_mask, attn_mask=attn_mask),
        tgt_mask=tgt_mask,
        memory_mask=memory_mask,
        src_key_padding_mask=src_padding,
        tgt_key_padding_mask=tgt_padding,
        memory_key_padding_mask=src_padding if memory_key_padding_mask is None else memory_key_padding_mask,
    )
