"""A failure during a run (issue 12.1): a refused or full disk at a save, any exception mid-training, leaves
the checkpoints written before it in place (no half-written one), and the one-line error names the step
and the last good checkpoint, from which --resume continues."""

from __future__ import annotations

import errno
import os

import pytest

from apt_fast.cli import main
from apt_fast.train import TrainingFailed, fine_tune_model

SIX_STEPS = ["--epochs", "1", "--batch-size", "8", "--learning-rate", "3e-3", "--no-tensorboard"]
SETTINGS = dict(epochs=1, batch_size=8, learning_rate=3e-3, tensorboard=False)  # 48 samples: 6 steps


def test_permission_denied_at_a_checkpoint_names_the_last_good_one(tmp_path, tiny_model_dir, train_file, capsys,
                                                                   monkeypatch):
    import apt_fast.train.trainer as trainer_module

    save_path = str(tmp_path / "ft")
    real_save, denied = trainer_module.torch_save_atomic, os.path.join(save_path, "checkpoints", ".tmp-step-4")

    def save(obj, path):
        if path.startswith(denied):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        real_save(obj, path)

    monkeypatch.setattr(trainer_module, "torch_save_atomic", save)
    argv = ["fine-tune", "--model-path", tiny_model_dir, "--data-path", train_file, "--save-path", save_path,
            "--save-steps", "2", *SIX_STEPS]
    assert main(argv) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"apt-fast fine-tune: error: training stopped after step 4 by PermissionError: [Errno 13] Permission "
        f"denied: '{denied}/trainer_state.pt'; the last good checkpoint is {save_path}/checkpoints/step-2 "
        f"(continue with --resume)")
    assert os.listdir(os.path.join(save_path, "checkpoints")) == ["step-2"]  # the half-written one removed

    monkeypatch.setattr(trainer_module, "torch_save_atomic", real_save)
    assert main([*argv, "--resume"]) == 0
    assert "resumed from " + os.path.join(save_path, "checkpoints", "step-2") in capsys.readouterr().err


def test_a_full_disk_at_the_final_save_keeps_the_checkpoints(tmp_path, tiny_model_dir, train_file, monkeypatch):
    import apt_fast.train.checkpointing as checkpointing

    save_path = str(tmp_path / "ft")
    real_save = checkpointing.save_model

    def save(model, directory, tokenizer):
        if os.path.basename(directory) == "last.tmp":
            os.makedirs(directory)
            open(os.path.join(directory, "model.safetensors"), "wb").close()
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(model, directory, tokenizer)

    monkeypatch.setattr(checkpointing, "save_model", save)
    with pytest.raises(TrainingFailed) as failed:
        fine_tune_model(tiny_model_dir, train_file, save_path=save_path, save_steps=3, **SETTINGS)
    checkpoint = os.path.join(save_path, "checkpoints", "step-6")
    assert str(failed.value) == (f"training stopped after step 6 by OSError: [Errno 28] No space left on device; "
                                 f"the last good checkpoint is {checkpoint} (continue with --resume)")
    assert os.listdir(save_path) == ["checkpoints"]  # neither last/ nor last.tmp, no final model

    monkeypatch.setattr(checkpointing, "save_model", real_save)
    fine_tune_model(tiny_model_dir, train_file, save_path=save_path, save_steps=3, resume="latest", **SETTINGS)
    assert {"last", "model.safetensors"} <= set(os.listdir(save_path))


@pytest.mark.parametrize("failing_step, last_good", [(3, "step-2"), (1, None)])
def test_an_exception_mid_training_names_the_step_and_checkpoint(tmp_path, tiny_model_dir, train_file, failing_step,
                                                                 last_good):
    crash = RuntimeError("CUDA error: an illegal memory access was encountered\nCompile with TORCH_USE_CUDA_DSA")

    def fail(trainer, state, loss):
        if state.step == failing_step:
            raise crash

    save_path = str(tmp_path / "ft")
    with pytest.raises(TrainingFailed) as failed:
        fine_tune_model(tiny_model_dir, train_file, save_path=save_path, save_steps=2, callbacks=[fail], **SETTINGS)
    where = (f"the last good checkpoint is {os.path.join(save_path, 'checkpoints', last_good)} (continue with "
             f"--resume)" if last_good else "no checkpoint was written before it")
    assert str(failed.value) == (f"training stopped after step {failing_step} by RuntimeError: CUDA error: an "
                                 f"illegal memory access was encountered; {where}")
    assert failed.value.__cause__ is crash and failed.value.step == failing_step
