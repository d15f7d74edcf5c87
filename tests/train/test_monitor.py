"""TensorBoard event logs: written under <save_path>/runs when tensorboard is installed; without it the run
says so once and goes on. The progress bar: by default only when stderr is a terminal."""

from __future__ import annotations

import json
import logging
import os
import sys

import pytest

from apt_fast.train import distill, fine_tune_model, train_model
from apt_fast.train.monitor import tensorboard_dir

TWO_STEPS = dict(epochs=1, batch_size=8, max_steps=2, learning_rate=1e-3)
QUIET_RUN = dict(TWO_STEPS, tensorboard=False)


def test_fine_tune_writes_the_loss_to_tensorboard(tmp_path, tiny_model_dir, train_file):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    save_path = str(tmp_path / "ft")
    fine_tune_model(tiny_model_dir, train_file, save_path=save_path, **TWO_STEPS)
    runs = tensorboard_dir(save_path)
    assert [name.startswith("events.out.tfevents.") for name in os.listdir(runs)] == [True]
    events = EventAccumulator(runs)
    events.Reload()
    logged = [(e.step, e.value) for e in events.Scalars("train/loss")]
    with open(os.path.join(save_path, "training_log.json"), encoding="utf-8") as f:
        history = json.load(f)["history"]
    assert [step for step, _ in logged] == [h["step"] for h in history] == [1, 2]
    for (_, value), h in zip(logged, history):
        assert abs(value - h["loss"]) <= 1e-6 * h["loss"]  # stored as float32


def test_without_tensorboard_the_run_says_so_once_and_goes_on(tmp_path, tiny_model_dir, train_file, monkeypatch,
                                                              caplog):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # the import raises ImportError
    caplog.set_level(logging.INFO, logger="apt_fast.train")
    save_path = str(tmp_path / "ft")
    fine_tune_model(tiny_model_dir, train_file, save_path=save_path, **TWO_STEPS)
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("tensorboard is not installed: no event logs (pip install tensorboard)") == 1
    assert not os.path.exists(tensorboard_dir(save_path))
    assert os.path.exists(os.path.join(save_path, "model.safetensors"))


def _run(entry: str, model_dir: str, data: str, save_path: str, **kwargs):
    from train_helpers import TINY

    if entry == "fine_tune_model":
        return fine_tune_model(model_dir, data, save_path=save_path, **kwargs, **QUIET_RUN)
    if entry == "train_model":
        return train_model(dict(TINY), data, save_path=save_path, **kwargs, **QUIET_RUN)
    return distill(model_dir, data, student_config=dict(TINY), save_path=save_path, **kwargs, **QUIET_RUN)


@pytest.mark.parametrize("entry", ["fine_tune_model", "train_model", "distill"])
def test_progress_bar_defaults_to_whether_stderr_is_a_terminal(entry, tmp_path, tiny_model_dir, train_file, capsys):
    _run(entry, tiny_model_dir, train_file, str(tmp_path / "default"))
    assert "%|" not in capsys.readouterr().err  # pytest's stderr is not a terminal
    _run(entry, tiny_model_dir, train_file, str(tmp_path / "shown"), progress_bar=True)
    assert "100%|" in capsys.readouterr().err
