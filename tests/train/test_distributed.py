"""Data-parallel fine-tuning: torchrun with 2 CPU processes (gloo) gives the losses of one process with
the same global batch; also checks `python -m apt_fast.cli` runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def _fine_tune(launcher, model_dir, train_file, save_path, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    argv = [*launcher, "-m", "apt_fast.cli", "fine-tune", "--model-path", model_dir, "--data-path", train_file,
            "--save-path", save_path, "--epochs", "2", "--batch-size", "8", "--learning-rate", "3e-3",
            "--save-steps", "4", "--no-tensorboard", "--seed", "7"]
    done = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(os.path.join(save_path, "training_log.json"), encoding="utf-8") as f:
        return [h["loss"] for h in json.load(f)["history"]]


@pytest.mark.slow
def test_two_processes_match_one(tmp_path, tiny_model_dir, train_file):
    one = _fine_tune([sys.executable], tiny_model_dir, train_file, str(tmp_path / "one"), tmp_path)
    two = _fine_tune([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"],
                     tiny_model_dir, train_file, str(tmp_path / "two"), tmp_path)
    assert len(one) == len(two) == 12, f"1 process: {one}\n2 processes: {two}"
    for step, (a, b) in enumerate(zip(one, two)):
        assert abs(a - b) <= 1e-5 * max(1.0, abs(a)), f"step {step}: 1 process {a}, 2 processes {b}"
    assert sorted(os.listdir(tmp_path / "two" / "checkpoints" / "step-12")) == [
        "README.md", "config.json", "model.safetensors", "rng-rank0.pt", "rng-rank1.pt",
        "tokenizer_config.json", "trainer_state.pt"]
