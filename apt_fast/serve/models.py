"""The models a server offers: Ollama-style ``name:tag`` names mapped to local paths, loaded by each worker process on
first use, and unloaded from all of them once their ``keep_alive`` has passed."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable

from .errors import ServeError, model_not_found

MODEL_SUFFIXES = (".gguf", ".pt", ".pth", ".bin", ".safetensors")


def full_name(name: str) -> str:
    """Ollama's naming: ``x`` means ``x:latest``."""
    name = name.strip()
    return name if ":" in name else f"{name}:latest"


def parse_model_argument(text: str) -> tuple[str, str]:
    """``--model NAME=PATH`` -> (name:tag, path)."""
    name, sep, path = text.partition("=")
    if not sep or not name.strip() or not path:
        raise ValueError(f"--model must be NAME=PATH (for example tiny=./tiny-apt), got {text!r}")
    return full_name(name), path


def models_in(directory: str) -> dict[str, str]:
    """``--models-dir``: each model directory (holding config.json) or model file in ``directory`` under its name."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"--models-dir {directory}: no such directory")
    found = {}
    for entry in sorted(os.listdir(directory)):
        path = os.path.join(directory, entry)
        stem, suffix = os.path.splitext(entry)
        if os.path.isfile(os.path.join(path, "config.json")):
            found[full_name(entry)] = path
        elif os.path.isfile(path) and suffix in MODEL_SUFFIXES:
            found[full_name(stem)] = path
    return found


@dataclass
class LoadedModel:
    """A model as a worker process holds it."""

    model: object
    tokenizer: object
    size: int  # bytes of the parameters
    load_duration_ns: int


class WorkerModels:
    """The models one worker process holds: each loaded on first use (``loaded(name, entry)`` is told), and dropped
    when the server unloads it."""

    def __init__(self, paths: dict[str, str], loaded: Callable[[str, LoadedModel], None]):
        self.paths = paths
        self.models: dict[str, LoadedModel] = {}
        self.loaded = loaded

    def get(self, name: str) -> tuple[LoadedModel, bool]:
        """(the model, whether this call loaded it)."""
        entry = self.models.get(name)
        if entry is not None:
            return entry, False
        if name not in self.paths:
            raise model_not_found(name)
        entry = self.models[name] = load_for_serving(self.paths[name])
        self.loaded(name, entry)
        return entry, True

    def drop(self, name: str) -> None:
        self.models.pop(name, None)


@dataclass
class ModelState:
    """What the server knows of a model it has loaded: its requests under way, when it expires once idle, and what a
    worker reported when it loaded it (None until then)."""

    users: int = 0
    expires_at: float = float("inf")  # time.time() after which an idle model is unloaded
    size: int | None = None  # bytes of the parameters
    context_length: int = 0


@dataclass
class ModelRegistry:
    """The server's models: ``paths`` maps name:tag to a local path. The weights live in the worker processes; this
    counts each model's requests (``acquire``/``release``), sets the idle expiry (``keep_alive`` seconds, < 0
    forever, 0 at once) and calls ``on_unload(name)`` when a model expires, so that the workers drop it."""

    paths: dict[str, str]
    on_unload: Callable[[str], None] = lambda name: None
    states: dict[str, ModelState] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def resolve(self, name) -> str:
        if not isinstance(name, str) or not name.strip():
            raise ServeError(400, "model is required")
        full = full_name(name)
        if full not in self.paths:
            raise model_not_found(name)
        return full

    def acquire(self, name: str) -> None:
        """One request more on ``name`` until :meth:`release`."""
        with self.lock:
            self.states.setdefault(full_name(name), ModelState()).users += 1

    def release(self, name: str, keep_alive: float | None) -> None:
        """One request less; ``keep_alive`` None leaves the expiry as it was (a request that never ran)."""
        with self.lock:
            state = self.states.get(full_name(name))
            if state is None:
                return
            state.users -= 1
            if keep_alive is not None:
                state.expires_at = float("inf") if keep_alive < 0 else time.time() + keep_alive
        self.sweep()

    def worker_loaded(self, name: str, size: int, context_length: int) -> None:
        with self.lock:
            state = self.states.get(name)
            if state is not None:
                state.size, state.context_length = size, context_length

    def unload(self, name: str) -> None:
        with self.lock:
            state = self.states.get(full_name(name))
            if state is not None:
                state.expires_at = time.time()
        self.sweep()

    def sweep(self) -> None:
        """Unload the idle models whose keep_alive has passed."""
        now = time.time()
        with self.lock:
            expired = [n for n, s in self.states.items() if s.users == 0 and s.expires_at <= now]
            for name in expired:
                del self.states[name]
        for name in expired:
            self.on_unload(name)

    def running(self) -> dict[str, ModelState]:
        """The models a worker has loaded and that have not expired."""
        self.sweep()
        with self.lock:
            return {n: replace(s) for n, s in self.states.items() if s.size is not None}


def load_for_serving(path: str) -> LoadedModel:
    """The model at ``path`` as the server runs it: in eval mode, weights checked finite, on apt_fast's fast path."""
    from ..models.apt.weight_check import check_finite_weights
    from ..train.fast_path import apply_fast_path
    from ..train.inputs import load_pretrained

    start = time.perf_counter_ns()
    try:
        model, tokenizer = load_pretrained(path, argument="model")
    except (OSError, ValueError) as error:
        raise ServeError(500, f"the model could not be loaded: {type(error).__name__}") from error
    model.eval()
    check_finite_weights(model)
    apply_fast_path(model, True)
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    return LoadedModel(model, tokenizer, size, time.perf_counter_ns() - start)
