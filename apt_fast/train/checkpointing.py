"""Where a run writes, and how: resumable checkpoints, the best and the last model, the final model; all atomic.

Layout of ``save_path``::

    save_path/                      the final model (config.json, model.safetensors, tokenizer files):
                                    a copy of best/ or of last/, by the rule below
    save_path/training_log.json     losses, evaluations, the settings of the run, which model is final
    save_path/best/                 the model with the lowest finite validation loss so far
    save_path/last/                 the model of the last step
    save_path/checkpoints/step-N/   model + trainer_state.pt (optimizer, scheduler, step, early-stopping
                                    state, history) + rng-rank<R>.pt (each process's RNG state)

The final model (the rule, also written to training_log.json as ``final_weights_rule``): with validation
data it is best/, the weights of the lowest validation loss, where the evaluation after the last step
takes part (a run always evaluates after its last step, whatever ``eval_steps``); without validation
data, or when no validation loss was finite, it is last/. A NaN or infinite validation loss is never the
best, and no weights with a NaN or infinite value are ever saved.

A checkpoint, best/ and last/ are written under a temporary name and renamed into place, so a crash, a
full disk or Ctrl-C never leaves a half-written one (the temporary is removed on failure): a directory
named step-N is complete, and an error keeps the checkpoints written before it.
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
LAST = "last"
FINAL_WEIGHTS_RULE = ("with validation data the final model is best/, the weights of the lowest finite validation "
                      "loss, the evaluation after the last step included; without validation data, or without a "
                      "finite validation loss, it is last/, the weights of the last step")
TRAINER_STATE = "trainer_state.pt"
MODEL_FILE = "model.safetensors"
LOG_FILE = "training_log.json"
_STEP_DIR = re.compile(r"^step-(\d+)$")
_MODEL_FILES = ("config.json", MODEL_FILE)
_TRAINER_STATE_KEYS = ("state", "optimizer", "scheduler", "config")


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
    return any(os.path.exists(os.path.join(path, name)) for name in (*_MODEL_FILES, CHECKPOINTS, BEST, LAST))


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


def save_model_directory(model, directory: str, tokenizer) -> None:
    """Write the model to ``directory`` as a whole: staged in ``directory.tmp`` and renamed when complete
    (replacing an older ``directory``); a failure removes the staging directory and keeps the older one."""
    staging = f"{directory}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        save_model(model, staging, tokenizer)
        replace_directory(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


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

    @property
    def last_dir(self) -> str:
        return os.path.join(self.save_path, LAST)

    def prepare(self, *, overwrite: bool, resuming: bool) -> None:
        """Refuse a save path that holds a model, unless ``overwrite`` (old run's files removed) or resuming."""
        if resuming or not holds_model(self.save_path):
            return
        if not overwrite:
            raise FileExistsError(f"--save-path {self.save_path} already holds a model; pass --overwrite to replace "
                                  f"it, or --resume to continue its training")
        for name in (CHECKPOINTS, BEST, LAST):
            shutil.rmtree(os.path.join(self.save_path, name), ignore_errors=True)

    def checkpoints(self) -> list[tuple[int, str]]:
        """Complete checkpoints as (step, path), oldest first."""
        if not os.path.isdir(self.checkpoint_dir):
            return []
        found = [(int(m.group(1)), os.path.join(self.checkpoint_dir, name))
                 for name in os.listdir(self.checkpoint_dir) if (m := _STEP_DIR.match(name))]
        return sorted(found)

    def newest(self) -> str | None:
        """The newest complete checkpoint, None when there is none."""
        found = self.checkpoints()
        return found[-1][1] if found else None

    def candidates(self, resume: str) -> list[str]:
        """The checkpoint directories ``--resume`` may use, in order of preference: for 'latest' every
        complete checkpoint under save_path, newest first; else the path given."""
        if resume != "latest":
            if not os.path.exists(os.path.join(resume, TRAINER_STATE)):
                raise FileNotFoundError(f"--resume {resume}: not a checkpoint directory (no {TRAINER_STATE})")
            return [resume]
        found = self.checkpoints()
        if not found:
            raise FileNotFoundError(f"--resume: no checkpoint under {self.checkpoint_dir}; start without --resume")
        return [path for _, path in reversed(found)]

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
        """A checkpoint's trainer_state.pt; a file without the trainer's entries is a ValueError."""
        saved = torch.load(os.path.join(directory, TRAINER_STATE), map_location="cpu", weights_only=True)
        missing = [key for key in _TRAINER_STATE_KEYS if not isinstance(saved, dict) or key not in saved]
        if missing:
            raise ValueError(f"not a trainer state (no {', '.join(missing)})")
        return saved

    @staticmethod
    def read_rng(directory: str, rank: int) -> dict | None:
        path = os.path.join(directory, f"rng-rank{rank}.pt")
        path = path if os.path.exists(path) else os.path.join(directory, "rng-rank0.pt")
        return torch.load(path, weights_only=True) if os.path.exists(path) else None

    def write_log(self, log: dict) -> None:
        atomic_write_json(os.path.join(self.save_path, LOG_FILE), log)
