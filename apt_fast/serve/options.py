"""Sampling settings of one request, read from Ollama's ``options`` or from OpenAI's request fields."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .errors import ServeError

logger = logging.getLogger("apt_fast.serve")

# Ollama's keys that apt_fast uses; the others Ollama knows are accepted and ignored, unknown ones logged.
_USED = {"temperature", "top_k", "top_p", "seed", "num_predict", "stop", "repeat_penalty", "num_ctx"}


@dataclass(frozen=True)
class SamplingSettings:
    """``num_predict`` < 0 means up to the model's context; ``seed`` None draws a fresh one; ``temperature`` 0 is
    argmax decoding; ``num_ctx`` None means the model's context length."""

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.9
    seed: int | None = None
    num_predict: int = -1
    stop: tuple[str, ...] = field(default_factory=tuple)
    repeat_penalty: float = 1.0
    num_ctx: int | None = None


def _number(name: str, value, kind):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
        raise ServeError(400, f"option {name} must be {'an integer' if kind is int else 'a number'}, got {value!r}")
    return kind(value)


def _stops(value) -> tuple[str, ...]:
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise ServeError(400, f"stop must be a string or a list of strings, got {value!r}")
    return tuple(s for s in stops if s)


def _settings(values: dict, defaults: SamplingSettings) -> SamplingSettings:
    temperature = _number("temperature", values.get("temperature", defaults.temperature), float)
    top_p = _number("top_p", values.get("top_p", defaults.top_p), float)
    if temperature < 0:
        raise ServeError(400, f"option temperature must be >= 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise ServeError(400, f"option top_p must be in (0, 1], got {top_p}")
    seed = values.get("seed")
    seed = None if seed is None or _number("seed", seed, int) < 0 else int(seed)
    num_ctx = values.get("num_ctx")
    return SamplingSettings(
        temperature=temperature, top_k=_number("top_k", values.get("top_k", defaults.top_k), int), top_p=top_p,
        seed=seed, num_predict=_number("num_predict", values.get("num_predict", defaults.num_predict), int),
        stop=_stops(values.get("stop")),
        repeat_penalty=_number("repeat_penalty", values.get("repeat_penalty", defaults.repeat_penalty), float),
        num_ctx=None if num_ctx is None else _number("num_ctx", num_ctx, int))


def ollama_settings(options) -> SamplingSettings:
    """Ollama's ``options`` object (defaults as Ollama's); unknown keys are logged and ignored."""
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise ServeError(400, f"options must be an object, got {options!r}")
    for key in sorted(set(options) - _USED):
        logger.warning("invalid option provided: %s (ignored)", key)
    return _settings(options, SamplingSettings())


def openai_settings(body: dict) -> SamplingSettings:
    """An OpenAI request's ``max_tokens``, ``stop``, ``temperature``, ``top_p``, ``seed`` (temperature and
    top_p default to 1.0, as OpenAI's)."""
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    values = {"temperature": body.get("temperature"), "top_p": body.get("top_p"), "seed": body.get("seed"),
              "stop": body.get("stop"), "num_predict": -1 if max_tokens is None else max_tokens}
    values = {k: v for k, v in values.items() if v is not None}
    return _settings(values, SamplingSettings(temperature=1.0, top_k=0, top_p=1.0))
