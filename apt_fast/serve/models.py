"""The models a server offers: Ollama-style ``name:tag`` names mapped to local paths, loaded on first use and
unloaded once their ``keep_alive`` has passed."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

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
    model: object
    tokenizer: object
    size: int  # bytes of the parameters
    load_duration_ns: int
    expires_at: float = float("inf")  # time.time() after which an idle model is unloaded
    users: int = 0  # requests running on it now


@dataclass
class ModelRegistry:
    """``paths`` maps name:tag to a local path; ``acquire`` loads (once) and counts a user, ``release`` sets the
    idle expiry (``keep_alive`` seconds, < 0 forever, 0 at once)."""

    paths: dict[str, str]
    loaded: dict[str, LoadedModel] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    loading: dict[str, threading.Lock] = field(default_factory=dict)

    def resolve(self, name) -> str:
        if not isinstance(name, str) or not name.strip():
            raise ServeError(400, "model is required")
        full = full_name(name)
        if full not in self.paths:
            raise model_not_found(name)
        return full

    def acquire(self, name: str) -> tuple[LoadedModel, bool]:
        """(the loaded model, whether this call loaded it); one user more until :meth:`release`."""
        full = self.resolve(name)
        with self.lock:
            gate = self.loading.setdefault(full, threading.Lock())
        with gate:
            with self.lock:
                entry = self.loaded.get(full)
                if entry is not None:
                    entry.users += 1
                    return entry, False
            entry = load_for_serving(self.paths[full])
            with self.lock:
                entry.users += 1
                self.loaded[full] = entry
            return entry, True

    def release(self, name: str, keep_alive: float) -> None:
        full = full_name(name)
        with self.lock:
            entry = self.loaded.get(full)
            if entry is None:
                return
            entry.users -= 1
            entry.expires_at = float("inf") if keep_alive < 0 else time.time() + keep_alive
        self.sweep()

    def unload(self, name: str) -> None:
        with self.lock:
            entry = self.loaded.get(full_name(name))
            if entry is not None:
                entry.expires_at = time.time()
        self.sweep()

    def sweep(self) -> None:
        """Unload the idle models whose keep_alive has passed."""
        now = time.time()
        with self.lock:
            for full in [n for n, e in self.loaded.items() if e.users == 0 and e.expires_at <= now]:
                del self.loaded[full]

    def running(self) -> dict[str, LoadedModel]:
        self.sweep()
        with self.lock:
            return dict(self.loaded)


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
