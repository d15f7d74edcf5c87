"""Preemption and Ctrl-C (issue 12.4): SIGTERM checkpoints and stops as Ctrl-C does, and --resume continues;
a second Ctrl-C while the checkpoint is written stops at once, without a traceback or a half-written
checkpoint; the previous signal handlers are back afterwards."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest
from train_helpers import TINY

from apt_fast.cli import main
from apt_fast.train import TrainingInterrupted, train_model

FAST = dict(batch_size=8, learning_rate=3e-3, tensorboard=False)


def test_sigterm_checkpoints_and_resume_continues(tmp_path, tiny_model_dir, train_file):
    save_path = str(tmp_path / "ft")
    argv = ["fine-tune", "--model-path", tiny_model_dir, "--data-path", train_file, "--save-path", save_path,
            "--learning-rate", "3e-3", "--save-steps", "2", "--epochs", "1000", "--no-tensorboard"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.Popen([sys.executable, "-m", "apt_fast.cli", *argv], env=env, cwd=tmp_path,
                           stderr=subprocess.PIPE, text=True)  # 6000 steps: it runs until the signal
    try:
        seen = []
        for line in run.stderr:  # text mode splits the progress bar's carriage returns into lines too
            seen.append(line)
            if "step 2: checkpoint" in line:
                run.send_signal(signal.SIGTERM)
                break
        seen.append(run.stderr.read())
        code = run.wait(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    output = "".join(seen)
    stopped = re.search(r"interrupted by SIGTERM at step (\d+): resumable checkpoint (\S+) \(continue with "
                        r"--resume\)", output)
    assert code == 130 and stopped, output[-3000:]
    assert "Traceback" not in output
    step, checkpoint = int(stopped.group(1)), stopped.group(2)
    assert checkpoint == os.path.join(save_path, "checkpoints", f"step-{step}") and os.path.isdir(checkpoint)

    assert main([*argv, "--resume", "--max-steps", str(step + 2)]) == 0
    with open(os.path.join(save_path, "training_log.json"), encoding="utf-8") as f:
        assert [h["step"] for h in json.load(f)["history"]] == list(range(1, step + 3))


def test_sigterm_in_process_and_the_handlers_are_restored(tmp_path, train_file):
    class Unhandled(Exception):
        """What SIGTERM does here when the trainer does not take it over."""

    def unhandled(signum, frame):
        raise Unhandled

    def preempt(trainer, state, loss):
        if state.step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, unhandled)
    try:
        with pytest.raises(TrainingInterrupted) as interrupted:
            train_model(dict(TINY), train_file, save_path=str(tmp_path / "run"), epochs=1, callbacks=[preempt],
                        **FAST)
        assert signal.getsignal(signal.SIGTERM) is unhandled
    finally:
        signal.signal(signal.SIGTERM, previous)
    checkpoint = str(tmp_path / "run" / "checkpoints" / "step-3")
    assert (interrupted.value.step, interrupted.value.signal) == (3, "SIGTERM")
    assert str(interrupted.value) == f"interrupted by SIGTERM at step 3; resumable checkpoint: {checkpoint}"


@pytest.fixture
def second_ctrl_c_at_step_3(monkeypatch):
    """Ctrl-C while step 2's checkpoint is written, and again while step 3's is (save_steps 2)."""
    import apt_fast.train.trainer as trainer_module

    real_save = trainer_module.torch_save_atomic

    def save(obj, path):  # writes the trainer state of each checkpoint
        if ".tmp-step-3" in path:
            try:
                os.kill(os.getpid(), signal.SIGINT)  # the second Ctrl-C, while step 3's checkpoint is written
            finally:  # what torch.save's zip writer raises when a KeyboardInterrupt cuts it short
                raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 148416 vs 148304")
        real_save(obj, path)
        if ".tmp-step-2" in path:
            os.kill(os.getpid(), signal.SIGINT)  # the first Ctrl-C: step 3 runs, then its checkpoint

    monkeypatch.setattr(trainer_module, "torch_save_atomic", save)


def test_a_second_ctrl_c_while_checkpointing_stops_at_once(tmp_path, train_file, second_ctrl_c_at_step_3):
    save_path = str(tmp_path / "run")
    with pytest.raises(TrainingInterrupted) as interrupted:
        train_model(dict(TINY), train_file, save_path=save_path, epochs=1, save_steps=2, **FAST)
    assert str(interrupted.value) == (f"interrupted again by Ctrl-C: stopped at once, without a checkpoint of step 3; "
                                      f"the last complete checkpoint is {save_path}/checkpoints/step-2")
    assert interrupted.value.at_once and interrupted.value.checkpoint == f"{save_path}/checkpoints/step-2"
    assert os.listdir(os.path.join(save_path, "checkpoints")) == ["step-2"]  # no half-written step 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_ctrl_c_gives_one_line_and_code_130(tmp_path, tiny_model_dir, train_file, capsys,
                                                     second_ctrl_c_at_step_3):
    code = main(["fine-tune", "--model-path", tiny_model_dir, "--data-path", train_file, "--save-path",
                 str(tmp_path / "ft"), "--save-steps", "2", "--epochs", "1", "--no-tensorboard"])
    err = capsys.readouterr().err
    assert code == 130 and "Traceback" not in err
    assert re.fullmatch(r"apt-fast.*: interrupted.*", err.splitlines()[-1])
