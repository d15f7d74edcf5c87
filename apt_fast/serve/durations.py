"""``keep_alive`` values as Ollama reads them: a number is seconds, a string a Go duration ("5m", "1h30m",
"0"), a negative value means forever."""

from __future__ import annotations

import re

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def seconds(value, argument: str = "keep_alive") -> float:
    """``value`` in seconds (negative: forever); a ValueError naming ``argument`` when it is neither form."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        sign = -1.0 if text.startswith("-") else 1.0
        body = text.lstrip("+-")
        if re.fullmatch(r"\d+(\.\d*)?", body):
            return sign * float(body)
        parts = _PART.findall(body)
        if parts and "".join(n + u for n, u in parts) == body:
            return sign * sum(float(n) * _UNITS[u] for n, u in parts)
    raise ValueError(f"{argument} must be seconds or a duration such as '5m', got {value!r}")
