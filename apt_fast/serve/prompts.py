"""The encoder input of a request: a chat through the tokenizer's chat template when it has one, else laid out as
apt_fast's training data lays it out (:func:`apt_fast.train.records.render_prompt`): earlier turns as
``role: text`` lines, the last message alone."""

from __future__ import annotations

from ..train.records import render_prompt
from .errors import ServeError
from .go_template import render

ROLES = ("system", "user", "assistant", "tool")


def chat_messages(messages) -> tuple[dict, ...]:
    """The checked messages as {role, content} with text content (OpenAI's content parts joined)."""
    if not isinstance(messages, list) or not messages:
        raise ServeError(400, "messages must be a non-empty list")
    turns = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise ServeError(400, f"messages[{i}] must be an object with a role in {list(ROLES)}, got {message!r}")
        content = message.get("content") or ""
        if not isinstance(content, str):  # OpenAI's list of parts: the text parts
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        turns.append({"role": message["role"], "content": content})
    return tuple(turns)


def chat_prompt(messages: tuple[dict, ...], tokenizer) -> str:
    """``messages`` (from :func:`chat_messages`) through ``tokenizer.chat_template`` (Jinja, sandboxed, with the
    generation prompt) when there is one, else the training layout."""
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, str) and template:
        from jinja2 import TemplateError
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        try:
            return environment.from_string(template).render(messages=list(messages), add_generation_prompt=True,
                                                            bos_token="", eos_token="")
        except TemplateError as error:
            raise ServeError(400, f"the model's chat template failed on these messages: {error}") from None
    *history, last = messages
    return render_prompt([(m["role"], m["content"]) for m in history], last["content"])


def generate_prompt(prompt: str, system, template=None) -> str:
    """The request's ``template`` (a Go template, go_template.py) with ``system`` and the prompt, else ``system``
    (when given) as a first ``system:`` line, then the prompt."""
    if system is not None and not isinstance(system, str):
        raise ServeError(400, f"system must be a string, got {system!r}")
    if template is not None and not isinstance(template, str):
        raise ServeError(400, f"template must be a string, got {template!r}")
    if template:
        return render(template, {"System": system or "", "Prompt": prompt, "Response": ""})
    return render_prompt([("system", system)], prompt) if system else prompt
