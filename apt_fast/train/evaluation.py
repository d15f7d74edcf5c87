"""Evaluation: teacher-forced loss, perplexity and token accuracy; exact match of greedy generation."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .batching import IGNORE_INDEX, TokenizedData, collate, sequential_batches
from .distributed import Runtime
from .objectives import encode_decode
from .precision import autocast
from .records import Example


@dataclass(frozen=True)
class EvalResult:
    """Mean token cross-entropy, its exp, and the share of target tokens predicted exactly (argmax)."""

    loss: float
    perplexity: float
    token_accuracy: float
    tokens: int
    samples: int

    def describe(self) -> str:
        return (f"loss {self.loss:.4f}  perplexity {self.perplexity:.3f}  token accuracy "
                f"{100 * self.token_accuracy:.2f}%  ({self.samples} samples, {self.tokens} target tokens)")


def special_ids(model: nn.Module, tokenizer) -> tuple[int, int, int]:
    """(pad, bos, eos): the model config's (what generate uses), else the tokenizer's."""
    ids = []
    for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
        value = getattr(model.config, name, None)
        value = value if value is not None else getattr(tokenizer, name, None)
        if value is None:
            raise ValueError(f"{name} is set neither in the model config nor in the tokenizer")
        ids.append(int(value))
    return ids[0], ids[1], ids[2]


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: TokenizedData,
    tokenizer,
    *,
    batch_size: int = 8,
    runtime: Runtime | None = None,
    bf16: bool = False,
) -> EvalResult:
    """Loss, perplexity and token accuracy of ``model`` over ``data`` (eval mode; train mode restored).

    With several processes each evaluates every N-th batch and the sums are all-reduced. ``bf16``: the forward
    pass under bfloat16 autocast (see :mod:`precision`), the loss in float32.
    """
    runtime = runtime or Runtime(0, 1, next(model.parameters()).device)
    pad, bos, eos = special_ids(model, tokenizer)
    was_training = model.training
    model.eval()
    totals = torch.zeros(3, dtype=torch.float64)  # [ce sum, tokens, correct]
    try:
        for indices in sequential_batches(len(data), batch_size)[runtime.rank:: runtime.world_size]:
            batch = collate(data, indices, pad_id=pad, bos_id=bos, eos_id=eos).to(runtime.device)
            with autocast(runtime.device, bf16):
                _, hidden = encode_decode(model, batch)
                logits = model.output_projection(hidden).float()  # [B, T, V]
            live = batch.labels != IGNORE_INDEX  # [B, T]
            ce = F.cross_entropy(logits.flatten(0, 1), batch.labels.flatten(), ignore_index=IGNORE_INDEX,
                                 reduction="sum")
            correct = ((logits.argmax(-1) == batch.labels) & live).sum()
            totals += torch.tensor([ce.item(), live.sum().item(), correct.item()], dtype=torch.float64)
    finally:
        model.train(was_training)
    ce_sum, tokens, correct = runtime.all_reduce_sum(totals.to(runtime.device)).cpu().tolist()
    loss = ce_sum / max(tokens, 1.0)
    return EvalResult(loss, math.exp(min(loss, 700.0)), correct / max(tokens, 1.0), int(tokens), len(data))


def generate_text(model: nn.Module, tokenizer, prompts: Sequence[str], *, max_new_tokens: int,
                  do_sample: bool = False, temperature: float = 1.0, top_p: float = 0.9, top_k: int = 50,
                  max_length: int | None = None) -> list[str]:
    """Decode a reply to each prompt (cut at the first EOS); greedy unless ``do_sample``."""
    pad, _, eos = special_ids(model, tokenizer)
    device = next(model.parameters()).device
    rows = [list(tokenizer.encode(p))[:max_length] or [pad] for p in prompts]
    width = max(len(r) for r in rows)
    input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], dtype=torch.long, device=device)  # [B, S]
    out = model.generate(input_ids, max_length=max_new_tokens, do_sample=do_sample, temperature=temperature,
                         top_p=top_p, top_k=top_k, eos_token_id=eos, pad_token_id=pad)  # [B, <= max_new_tokens]
    replies = []
    for row in out.tolist():
        row = row[: row.index(eos)] if eos in row else row
        replies.append(tokenizer.decode(row))
    return replies


def exact_match(model: nn.Module, tokenizer, examples: Sequence[Example], *, batch_size: int = 64) -> float:
    """Share of examples whose greedy reply equals the target exactly."""
    hits = 0
    longest = max(len(tokenizer.encode(ex.target)) for ex in examples) + 1
    for start in range(0, len(examples), batch_size):
        chunk = examples[start: start + batch_size]
        replies = generate_text(model, tokenizer, [ex.source for ex in chunk], max_new_tokens=longest)
        hits += sum(reply == ex.target for reply, ex in zip(replies, chunk))
    return hits / len(examples)
