"""A chat session over an APT model: each reply is generated from the conversation so far, laid out
as training data lays it out (:func:`apt_fast.train.records.render_prompt`)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..validation import check_in_range
from .evaluation import generate_text
from .records import render_prompt


@dataclass(frozen=True)
class ChatSettings:
    """Sampling settings of :class:`ChatSession`; ``history`` is the number of earlier exchanges kept."""

    max_new_tokens: int = 64
    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 50
    greedy: bool = False
    history: int = 3

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.history < 0:
            raise ValueError(f"history must be >= 0, got {self.history}")
        check_in_range("temperature", self.temperature, 0.0, float("inf"), low_open=True)
        check_in_range("top_p", self.top_p, 0.0, 1.0, low_open=True)


class ChatSession:
    """``reply(message)`` answers and remembers the exchange; ``reset()`` forgets the conversation."""

    def __init__(self, model: nn.Module, tokenizer, settings: ChatSettings = ChatSettings()):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.settings = settings
        self.turns: list[tuple[str, str]] = []

    def prompt_for(self, message: str) -> str:
        kept = self.turns[len(self.turns) - 2 * self.settings.history:] if self.settings.history else []
        return render_prompt(kept, message)

    def reply(self, message: str) -> str:
        s = self.settings
        answer = generate_text(self.model, self.tokenizer, [self.prompt_for(message)], max_new_tokens=s.max_new_tokens,
                               do_sample=not s.greedy, temperature=s.temperature, top_p=s.top_p, top_k=s.top_k)[0]
        self.turns += [("user", message), ("assistant", answer)]
        return answer

    def reset(self) -> None:
        self.turns.clear()
