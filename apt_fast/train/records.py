"""One data record (a JSON object or a CSV row) -> training examples, and the prompt layout chat reuses.

How source and target are built for the encoder-decoder:

* **plain text** (``{"text": ...}``, a line of a .txt file, a CSV ``text`` column): language-model
  style, as upstream's trainer: the encoder reads the text and the decoder is trained to produce the
  same text shifted by one (decoder input ``[BOS] + text``, labels ``text + [EOS]``);
* **instruction pairs**: the prompt goes in (encoder), the response comes out (decoder):
  ``{"prompt", "response" | "completion"}``; Alpaca ``{"instruction", "input"?, "output"}`` where the
  prompt is the instruction, then a blank line and the input when it is not empty;
* **conversations**: ShareGPT ``{"conversations": [{"from": "human" | "gpt" | "system", "value"}]}`` or
  chat ``{"messages": [{"role": "user" | "assistant" | "system", "content"}]}``: every assistant turn
  is one example whose prompt is the conversation before it (:func:`render_prompt`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "system": "system", "chatgpt": "assistant", "bot": "assistant"}
RECORD_FORMATS = ("text", "prompt+response", "prompt+completion", "instruction+output (Alpaca)",
                  "conversations (ShareGPT)", "messages (chat)")


@dataclass(frozen=True)
class Example:
    """One training example: ``source`` feeds the encoder, ``target`` is what the decoder learns to write."""

    source: str
    target: str


def render_prompt(history: Iterable[tuple[str, str]], message: str) -> str:
    """The encoder input for ``message`` after ``history`` ((role, text) pairs, oldest first).

    Without history the prompt is the message itself, so single-turn chat data, Alpaca and prompt/response
    pairs all train the same layout; earlier turns come first as ``role: text`` lines.
    """
    lines = [f"{role}: {text}" for role, text in history]
    return "\n".join([*lines, message]) if lines else message


def _alpaca_prompt(record: Mapping) -> str:
    extra = str(record.get("input") or "").strip()
    instruction = str(record["instruction"]).strip()
    return f"{instruction}\n\n{extra}" if extra else instruction


def _turns(record: Mapping, where: str) -> list[tuple[str, str]]:
    """(role, text) pairs of a ShareGPT or chat record, roles normalised to user/assistant/system."""
    if "conversations" in record:
        items, role_key, text_key, roles = record["conversations"], "from", "value", SHAREGPT_ROLES
    else:
        items, role_key, text_key, roles = record["messages"], "role", "content", None
    if not isinstance(items, list):
        raise ValueError(f"{where}: the conversation must be a list of turns, got {type(items).__name__}")
    turns = []
    for turn in items:
        if not isinstance(turn, Mapping) or role_key not in turn or text_key not in turn:
            raise ValueError(f"{where}: each turn must be an object with '{role_key}' and '{text_key}', got {turn!r}")
        role = str(turn[role_key]).lower()
        role = roles.get(role, role) if roles is not None else role
        turns.append((role, str(turn[text_key]).strip()))
    return turns


def _conversation_examples(turns: list[tuple[str, str]]) -> list[Example]:
    examples = []
    for i, (role, text) in enumerate(turns):
        if role == "assistant" and i > 0:
            history, (_, message) = turns[: i - 1], turns[i - 1]
            examples.append(Example(render_prompt(history, message), text))
    return examples


def examples_from_record(record: object, where: str) -> list[Example]:
    """The examples of one record; ``where`` ("file: line N") prefixes every error."""
    if not isinstance(record, Mapping):
        raise ValueError(f"{where}: a record must be a JSON object, got {type(record).__name__}")
    if "conversations" in record or "messages" in record:
        return _conversation_examples(_turns(record, where))
    if "instruction" in record and "output" in record:
        return [Example(_alpaca_prompt(record), str(record["output"]).strip())]
    if "prompt" in record:
        for answer in ("response", "completion"):
            if answer in record:
                return [Example(str(record["prompt"]).strip(), str(record[answer]).strip())]
    if "text" in record:
        text = str(record["text"]).strip()
        return [Example(text, text)]
    raise ValueError(f"{where}: unrecognised record with keys {sorted(record)}; expected one of: "
                     f"{', '.join(RECORD_FORMATS)}")
