"""A request's ``template`` (Ollama's Go template) for ``/api/generate``: the subset a prompt layout needs, namely
``{{ .System }}``, ``{{ .Prompt }}``, ``{{ .Response }}`` (empty: generation starts there), ``{{ if .X }}``,
``{{ else }}``, ``{{ end }}`` and the ``{{-`` / ``-}}`` whitespace trims. Anything else is a 400 naming the action."""

from __future__ import annotations

import re

from .errors import ServeError

_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.DOTALL)
_FIELD = re.compile(r"\.(System|Prompt|Response)")


def render(template: str, values: dict[str, str]) -> str:
    """``template`` with ``values`` (System, Prompt, Response) filled in."""
    pieces: list = []  # text, ("field", name), ("if", name, then, otherwise)
    stack: list[tuple[list, str, list | None]] = []  # open ifs: (where their pieces go, field, then-branch)
    position = 0
    for match in _ACTION.finditer(template):
        text = template[position:match.start()]
        if match.group(1):
            text = text.rstrip()
        _append_text(pieces, text)
        position = match.end()
        if match.group(3):
            trimmed = template[position:]
            position += len(trimmed) - len(trimmed.lstrip())
        action = match.group(2)
        if _FIELD.fullmatch(action):
            pieces.append(("field", action[1:]))
        elif action.startswith("if ") and _FIELD.fullmatch(action[3:].strip()):
            stack.append((pieces, action[3:].strip()[1:], None))
            pieces = []
        elif action == "else" and stack and stack[-1][2] is None:
            outer, field, _ = stack.pop()
            stack.append((outer, field, pieces))
            pieces = []
        elif action == "end" and stack:
            outer, field, then = stack.pop()
            then, otherwise = (pieces, []) if then is None else (then, pieces)
            outer.append(("if", field, then, otherwise))
            pieces = outer
        else:
            raise ServeError(400, f"template: unsupported action {match.group(0)!r} (apt-fast serve supports .System, "
                                  f".Prompt, .Response, if, else and end)")
    if stack:
        raise ServeError(400, f"template: {{{{ if .{stack[-1][1]} }}}} has no {{{{ end }}}}")
    _append_text(pieces, template[position:])
    return _evaluate(pieces, values)


def _append_text(pieces: list, text: str) -> None:
    if text:
        pieces.append(text)


def _evaluate(pieces: list, values: dict[str, str]) -> str:
    out = []
    for piece in pieces:
        if isinstance(piece, str):
            out.append(piece)
        elif piece[0] == "field":
            out.append(values.get(piece[1], ""))
        else:
            out.append(_evaluate(piece[2] if values.get(piece[1]) else piece[3], values))
    return "".join(out)
