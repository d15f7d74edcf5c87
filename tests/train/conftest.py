"""Fixtures of the training tests: tiny APT models and small generated data files."""

from __future__ import annotations

import pytest
from train_helpers import make_tiny_model, reversal_records, write_jsonl


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread (and do not fight other processes for the cores)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def engine_logger_restored():
    """The commands' configure_logging gives the engine's logger a handler on the running test's stderr
    (closed after that test) and a level; later tests must not log through either."""
    import logging

    logger = logging.getLogger("apt_fast.train")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)
    logger.propagate = propagate


@pytest.fixture
def train_file(tmp_path):
    return write_jsonl(tmp_path / "train.jsonl", reversal_records(48))


@pytest.fixture
def val_file(tmp_path):
    return write_jsonl(tmp_path / "val.jsonl", reversal_records(16, seed=1))


@pytest.fixture
def tiny_model_dir(tmp_path):
    """A saved tiny model (2+2 layers, byte tokenizer)."""
    from apt_fast.train.checkpointing import save_model

    model, tokenizer = make_tiny_model()
    path = tmp_path / "base"
    save_model(model, str(path), tokenizer)
    return str(path)
