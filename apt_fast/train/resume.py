"""``--resume``: read a checkpoint whole before using any of it, and fall back to the previous kept one when
the newest cannot be read (a truncated or corrupt file: a full disk, a copy cut short).

Every file a resumed run needs (model.safetensors, trainer_state.pt, this process's rng-rank<R>.pt) is read
first; a checkpoint where one fails is skipped with the warning ``checkpoint step-N is unreadable
(<file>: <reason>); resuming from step-M``. With several processes all skip a checkpoint that any of them
cannot read, so they resume from the same one. A checkpoint given by path has no fallback.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from .checkpointing import MODEL_FILE, TRAINER_STATE, CheckpointStore
from .distributed import Runtime
from .errors import UnreadableCheckpoint

logger = logging.getLogger("apt_fast.train")


@dataclass(frozen=True)
class Resumable:
    """A checkpoint read whole: its directory, trainer state, weights and this process's RNG state."""

    path: str
    saved: dict
    weights: dict[str, Tensor]
    rng: dict | None


def _reason(error: BaseException) -> str:
    """The first sentence of an error's first line (torch's zip errors go on for a paragraph)."""
    text = str(error).strip()
    if not text:
        return type(error).__name__
    return text.splitlines()[0].split(". ")[0]


def _read(name: str, read: Callable[[], object]):
    try:
        return read()
    except Exception as err:  # any failure to read the file: torch, safetensors and the OS raise many types
        raise UnreadableCheckpoint(f"{name}: {_reason(err)}") from err


def read_checkpoint(directory: str, runtime: Runtime) -> Resumable:
    """Read everything this process resumes from ``directory``; UnreadableCheckpoint names the file that failed."""
    from safetensors.torch import load_file

    saved = _read(TRAINER_STATE, lambda: CheckpointStore.read_state(directory))
    weights = _read(MODEL_FILE, lambda: load_file(os.path.join(directory, MODEL_FILE), device=str(runtime.device)))
    rng = _read(f"rng-rank{runtime.rank}.pt", lambda: CheckpointStore.read_rng(directory, runtime.rank))
    return Resumable(directory, saved, weights, rng)


def _anyone_failed(failed: bool, runtime: Runtime) -> bool:
    flag = torch.tensor([float(failed)], dtype=torch.float64, device=runtime.device)
    return bool(runtime.all_reduce_sum(flag).item() > 0)


def find_resumable(store: CheckpointStore, resume: str, runtime: Runtime) -> Resumable:
    """The newest readable checkpoint among those ``resume`` ('latest' or a path) allows; an unreadable one
    is skipped with a warning, none readable is an UnreadableCheckpoint."""
    candidates = store.candidates(resume)
    reasons = []
    for path in candidates:
        try:
            found, failure = read_checkpoint(path, runtime), None
        except UnreadableCheckpoint as err:
            found, failure = None, str(err)
        if _anyone_failed(failure is not None, runtime):
            reasons.append((path, failure or "unreadable on another process"))
            continue
        for skipped, reason in reasons:
            logger.warning("checkpoint %s is unreadable (%s); resuming from %s", os.path.basename(skipped), reason,
                           os.path.basename(path))
        return found
    if resume != "latest":
        raise UnreadableCheckpoint(f"--resume {resume}: the checkpoint is unreadable ({reasons[0][1]})")
    listed = "; ".join(f"{os.path.basename(path)}: {reason}" for path, reason in reasons)
    raise UnreadableCheckpoint(f"--resume: no readable checkpoint under {store.checkpoint_dir} ({listed})")
