"""Where a run writes, and how: resumable checkpoints, the best model, the final model; all atomic.

Layout of ``save_path``::

    save_path/                      the final model (config.json, model.safetensors, tokenizer files)
    save_path/training_log.json     losses, evaluations and the settings of the run
    save_path/best/                 the model with the best validation loss so far
    save_path/checkpoints/step-N/   model + trainer_state.pt (optimizer, scheduler, step, early-stopping
                                    state, history) + rng-rank<R>.pt (each process's RNG state)

A checkpoint directory is written under a temporary name and renamed into place, so a crash or Ctrl-C
never leaves a half-written checkpoint: a directory named step-N is complete.
"""

from __future__ import annotations

import os
import random
import re
import shutil

import torch

from ..atomic import atomic_write, atomic_write_json
from ..models.apt.loading import save

CHECKPOINTS = "checkpoints"
BEST = "best"
TRAINER_STATE = "trainer_state.pt"
LOG_FILE = "training_log.json"
_STEP_DIR = re.compile(r"^step-(\d+)$")
_MODEL_FILES = ("config.json", "model.safetensors")


def rng_state() -> dict:
    """This process's random state: Python's ``random``, torch's CPU generator and CUDA's."""
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def holds_model(path: str) -> bool:
    """Whether ``path`` already holds a model or a run's checkpoints."""
    return any(os.path.exists(os.path.join(path, name)) for name in (*_MODEL_FILES, CHECKPOINTS, BEST))


def replace_directory(staging: str, final: str) -> None:
    """Move the complete directory ``staging`` to ``final``, replacing an older ``final``."""
    if os.path.exists(final):
        retired = f"{final}.old"
        shutil.rmtree(retired, ignore_errors=True)
        os.replace(final, retired)
        os.replace(staging, final)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(staging, final)


def save_model(model, directory: str, tokenizer) -> None:
    """apt_fast's atomic model save, without transformers' per-save progress bar."""
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        save(model, directory, tokenizer)
    finally:
        if shown:
            hf_logging.enable_progress_bar()


def torch_save_atomic(obj, path: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: torch derives the archive name from a path's basename
            torch.save(obj, f)

    atomic_write(path, write)


class CheckpointStore:
    """Reads and writes one run's files under ``save_path``; only rank 0 writes shared files."""

    def __init__(self, save_path: str | os.PathLike, *, keep: int = 2):
        self.save_path = os.fspath(save_path)
        self.keep = keep

    @property
    def checkpoint_dir(self) -> str:
        return os.path.join(self.save_path, CHECKPOINTS)

    @property
    def best_dir(self) -> str:
        return os.path.join(self.save_path, BEST)

    def prepare(self, *, overwrite: bool, resuming: bool) -> None:
        """Refuse a save path that holds a model, unless ``overwrite`` (old run's files removed) or resuming."""
        if resuming or not holds_model(self.save_path):
            return
        if not overwrite:
            raise FileExistsError(f"--save-path {self.save_path} already holds a model; pass --overwrite to replace "
                                  f"it, or --resume to continue its training")
        for name in (CHECKPOINTS, BEST):
            shutil.rmtree(os.path.join(self.save_path, name), ignore_errors=True)

    def checkpoints(self) -> list[tuple[int, str]]:
        """Complete checkpoints as (step, path), oldest first."""
        if not os.path.isdir(self.checkpoint_dir):
            return []
        found = [(int(m.group(1)), os.path.join(self.checkpoint_dir, name))
                 for name in os.listdir(self.checkpoint_dir) if (m := _STEP_DIR.match(name))]
        return sorted(found)

    def resolve(self, resume: str) -> str:
        """The checkpoint directory for ``--resume``: 'latest' (newest under save_path) or a path."""
        if resume != "latest":
            if not os.path.exists(os.path.join(resume, TRAINER_STATE)):
                raise FileNotFoundError(f"--resume {resume}: not a checkpoint directory (no {TRAINER_STATE})")
            return resume
        found = self.checkpoints()
        if not found:
            raise FileNotFoundError(f"--resume: no checkpoint under {self.checkpoint_dir}; start without --resume")
        return found[-1][1]

    def staging_dir(self, step: int) -> str:
        return os.path.join(self.checkpoint_dir, f".tmp-step-{step}")

    def write_rng(self, directory: str, rank: int) -> None:
        torch_save_atomic(rng_state(), os.path.join(directory, f"rng-rank{rank}.pt"))

    def commit(self, step: int) -> str:
        """Rename the staged checkpoint of ``step`` into place and drop the oldest beyond ``keep``."""
        final = os.path.join(self.checkpoint_dir, f"step-{step}")
        replace_directory(self.staging_dir(step), final)
        for _, old in self.checkpoints()[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    @staticmethod
    def read_state(directory: str) -> dict:
        return torch.load(os.path.join(directory, TRAINER_STATE), map_location="cpu", weights_only=True)

    @staticmethod
    def read_rng(directory: str, rank: int) -> dict | None:
        path = os.path.join(directory, f"rng-rank{rank}.pt")
        path = path if os.path.exists(path) else os.path.join(directory, "rng-rank0.pt")
        return torch.load(path, weights_only=True) if os.path.exists(path) else None

    def write_log(self, log: dict) -> None:
        atomic_write_json(os.path.join(self.save_path, LOG_FILE), log)
