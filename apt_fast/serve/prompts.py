"""The encoder input of a request, laid out as apt_fast's training data lays it out
(:func:`apt_fast.train.records.render_prompt`): earlier turns as ``role: text`` lines, the last message alone."""

from __future__ import annotations

from ..train.records import render_prompt
from .errors import ServeError

ROLES = ("system", "user", "assistant", "tool")


def chat_prompt(messages) -> str:
    if not isinstance(messages, list) or not messages:
        raise ServeError(400, "messages must be a non-empty list")
    turns = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise ServeError(400, f"messages[{i}] must be an object with a role in {list(ROLES)}, got {message!r}")
        content = message.get("content") or ""
        if not isinstance(content, str):  # OpenAI's list of parts: the text parts
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        turns.append((message["role"], content))
    *history, (_, last) = turns
    return render_prompt(history, last)


def generate_prompt(prompt: str, system) -> str:
    """``system`` (when given) as a first ``system:`` line, then the prompt."""
    if system is not None and not isinstance(system, str):
        raise ServeError(400, f"system must be a string, got {system!r}")
    return render_prompt([("system", system)], prompt) if system else prompt
