"""--resume when the newest checkpoint is truncated (issue 12.4): it says so and resumes from the previous kept
one, with the losses of an uninterrupted run; when none is readable, or a checkpoint given by path is not,
it is a one-line error."""

from __future__ import annotations

import json
import logging
import os
import re

import pytest
from train_helpers import TINY

from apt_fast.cli import main
from apt_fast.train import TrainingInterrupted, UnreadableCheckpoint, train_model

SIX_STEPS = dict(epochs=1, batch_size=8, learning_rate=3e-3, save_steps=2, tensorboard=False)
ZIP_REASON = "PytorchStreamReader failed reading zip archive: failed finding central directory"


def _losses(save_path):
    with open(os.path.join(save_path, "training_log.json"), encoding="utf-8") as f:
        return [h["loss"] for h in json.load(f)["history"]]


def _stopped_at_step_4(save_path, train_file):
    """A run stopped after step 4: checkpoints step-2 and step-4."""
    def stop(trainer, state, loss):
        if state.step == 4:
            trainer.request_stop()

    with pytest.raises(TrainingInterrupted):
        train_model(dict(TINY), train_file, save_path=save_path, callbacks=[stop], **SIX_STEPS)
    return os.path.join(save_path, "checkpoints")


def _truncate(path):
    os.truncate(path, os.path.getsize(path) // 2)


@pytest.mark.parametrize("name", ["trainer_state.pt", "model.safetensors", "rng-rank0.pt"])
def test_a_truncated_newest_checkpoint_falls_back_to_the_previous(tmp_path, train_file, caplog, name):
    caplog.set_level(logging.INFO, logger="apt_fast.train")
    full, part = str(tmp_path / "full"), str(tmp_path / "part")
    train_model(dict(TINY), train_file, save_path=full, **SIX_STEPS)
    checkpoints = _stopped_at_step_4(part, train_file)
    _truncate(os.path.join(checkpoints, "step-4", name))
    train_model(dict(TINY), train_file, save_path=part, resume="latest", **SIX_STEPS)
    assert re.search(rf"checkpoint step-4 is unreadable \({re.escape(name)}: [^\n]+\); resuming from step-2\n",
                     caplog.text), caplog.text
    assert f"resumed from {os.path.join(checkpoints, 'step-2')} at step 2" in caplog.text
    assert _losses(part) == _losses(full)


def test_no_readable_checkpoint_is_a_one_line_error(tmp_path, train_file, capsys):
    save_path = str(tmp_path / "part")
    checkpoints = _stopped_at_step_4(save_path, train_file)
    for step in ("step-2", "step-4"):
        _truncate(os.path.join(checkpoints, step, "trainer_state.pt"))
    assert main(["train", "--config", _config(tmp_path), "--data-path", train_file, "--save-path", save_path,
                 "--resume", "--epochs", "1", "--save-steps", "2", "--learning-rate", "3e-3", "--no-tensorboard"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"apt-fast train: error: --resume: no readable checkpoint under {checkpoints} (step-4: trainer_state.pt: "
        f"{ZIP_REASON}; step-2: trainer_state.pt: {ZIP_REASON})")


def test_an_unreadable_checkpoint_given_by_path_has_no_fallback(tmp_path, train_file):
    checkpoints = _stopped_at_step_4(str(tmp_path / "part"), train_file)
    newest = os.path.join(checkpoints, "step-4")
    _truncate(os.path.join(newest, "model.safetensors"))
    with pytest.raises(UnreadableCheckpoint) as unreadable:
        train_model(dict(TINY), train_file, save_path=str(tmp_path / "part"), resume=newest, **SIX_STEPS)
    assert str(unreadable.value) == (f"--resume {newest}: the checkpoint is unreadable (model.safetensors: Error "
                                     f"while deserializing header: incomplete metadata, file not fully covered)")


def _config(tmp_path):
    path = tmp_path / "model.json"
    path.write_text(json.dumps(TINY), encoding="utf-8")
    return str(path)
