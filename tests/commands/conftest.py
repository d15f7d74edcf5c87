"""Fixtures of the pruning commands' tests: a saved tiny APT model and small letter-sorting data files."""

from __future__ import annotations

import json
import logging
import random

import pytest
import torch
from pruning_cli_helpers import tiny_model


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread (and leave the other core to other work)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def engine_logger_restored():
    """The training commands give the engine's logger a handler on the test's stderr; later tests must not use it."""
    logger = logging.getLogger("apt_fast.train")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)
    logger.propagate = propagate


@pytest.fixture
def model_dir(tmp_path):
    """``model_dir(**config_overrides)``: the path of a saved tiny model with seed-0 weights."""
    import apt_fast

    def save(**overrides) -> str:
        path = tmp_path / ("model" + "".join(f"-{k}{v}" for k, v in overrides.items()))
        model, tokenizer = tiny_model(**overrides)
        apt_fast.save(model, path, tokenizer)
        return str(path)

    return save


def _write_sorting(path, n: int, seed: int) -> str:
    rng = random.Random(seed)
    words = ["".join(rng.choice("abcdef") for _ in range(rng.randint(2, 5))) for _ in range(n)]
    path.write_text("".join(json.dumps({"prompt": w, "response": "".join(sorted(w))}) + "\n" for w in words),
                    encoding="utf-8")
    return str(path)


@pytest.fixture
def train_file(tmp_path):
    return _write_sorting(tmp_path / "train.jsonl", 32, seed=0)


@pytest.fixture
def val_file(tmp_path):
    return _write_sorting(tmp_path / "val.jsonl", 8, seed=1)


@pytest.fixture
def run_cli(capsys):
    """``run_cli(argv) -> (exit code, stdout lines, stderr lines)``."""
    from apt_fast.cli import main

    def run(argv):
        capsys.readouterr()
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out.splitlines(), err.splitlines()

    return run
