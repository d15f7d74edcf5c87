"""Token-by-token decoding for streaming: the steps of ``APTModel.generate`` with a per-request generator,
and the text stream that never splits a UTF-8 character and holds back what could begin a stop sequence."""

from __future__ import annotations

from typing import Iterator

import torch

from ..models.apt.generation import apply_repetition_penalty, special_token_ids, top_k_filter, top_p_filter
from ..models.apt.weight_check import check_finite_logits
from .options import SamplingSettings


def next_token(logits: torch.Tensor, tokens: torch.Tensor, settings: SamplingSettings, banned: list[int],
               generator: torch.Generator) -> torch.Tensor:  # logits [1, V], tokens [1, L] -> [1, 1]
    """One step of generate's sampling: repetition penalty, temperature, banned ids, top-k, top-p, multinomial
    with ``generator`` (argmax at temperature 0)."""
    if settings.repeat_penalty != 1.0 and tokens.shape[1] > 1:
        logits = apply_repetition_penalty(logits, tokens[:, 1:], settings.repeat_penalty)
    logits = logits.clone()
    logits[:, banned] = float("-inf")
    if settings.temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / settings.temperature
    if settings.top_k > 0:
        logits = top_k_filter(logits, settings.top_k)
    if 0.0 < settings.top_p < 1.0:
        logits = top_p_filter(logits, settings.top_p)
    return torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator)


@torch.inference_mode()
def decode_steps(model, input_ids: torch.Tensor, settings: SamplingSettings, max_new_tokens: int,
                 generator: torch.Generator) -> Iterator[int]:  # input_ids [1, S]
    """Yield generated token ids one at a time (EOS ends the stream and is not yielded); the encoder runs at
    the first ``next()``, so the caller can time it apart from the decode steps."""
    config = model.config
    bos, eos, pad = special_token_ids(config)
    unk = getattr(config, "unk_token_id", None)
    banned = [pad] + ([unk] if unk is not None else [])
    memory = model.encode(input_ids, src_key_padding_mask=None)  # [1, S, D]
    yield -1  # the prompt is encoded
    tokens = torch.full((1, 1), bos, dtype=torch.long)  # [1, L]
    for step in range(1, max_new_tokens + 1):
        hidden = model.decode(tokens, memory, memory_key_padding_mask=None)  # [1, L, D]
        logits = model.output_projection(hidden[:, -1]).float()  # [1, V]
        check_finite_logits(model, logits, step)
        token = next_token(logits, tokens, settings, banned, generator)  # [1, 1]
        if int(token) == eos:
            return
        tokens = torch.cat([tokens, token], dim=1)
        yield int(token)


class TextStream:
    """Turns generated ids into text pieces: ``push(id)`` returns the text now safe to send, ``stopped`` tells
    whether a stop sequence appeared (the text is cut before it), ``finish()`` returns what was held back."""

    def __init__(self, tokenizer, stops: tuple[str, ...]):
        self.tokenizer = tokenizer
        self.stops = stops
        self.ids: list[int] = []
        self.sent = 0  # characters of the decoded text already returned
        self.stopped = False

    def _text(self) -> str:
        return self.tokenizer.decode(self.ids, skip_special_tokens=True)

    def _held_back(self, text: str) -> int:
        """Characters at the end of ``text`` that could begin a stop sequence or an unfinished UTF-8 character."""
        held = len(text) - len(text.rstrip("\ufffd"))
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(text)), held, -1):
                if text.endswith(stop[:n]):
                    held = n
                    break
        return held

    def push(self, token: int) -> str:
        self.ids.append(token)
        text = self._text()
        cut = min((i for i in (text.find(s, max(0, self.sent - len(s))) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            piece, self.sent = text[self.sent:cut], max(self.sent, cut)
            return piece
        end = len(text) - self._held_back(text)
        piece = text[self.sent:end] if end > self.sent else ""
        self.sent = max(self.sent, end)
        return piece

    def finish(self) -> str:
        """The held-back text once generation ended without a stop sequence."""
        if self.stopped:
            return ""
        text = self._text()
        piece, self.sent = text[self.sent:], len(text)
        return piece
