"""The training loop: exact resume, Ctrl-C, early stopping, checkpoints, best model, overwrite refusal."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch
from train_helpers import TINY

from apt_fast.train import LanguageModelObjective, TrainConfig, Trainer, TrainingInterrupted, train_model
from apt_fast.train.inputs import load_tokenized

FAST = dict(batch_size=8, learning_rate=3e-3, tensorboard=False)


def _history(path):
    with open(os.path.join(path, "training_log.json"), encoding="utf-8") as f:
        return json.load(f)


def test_resume_after_ctrl_c_gives_the_uninterrupted_losses(tmp_path, train_file):
    config = dict(TINY, dropout=0.1, use_dbc_dac=True)  # dropout: the RNG state must be restored too
    kwargs = dict(epochs=2, save_steps=4, **FAST)
    train_model(config, train_file, save_path=str(tmp_path / "full"), **kwargs)

    def ctrl_c(trainer, state, loss):
        if state.step == 5:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted) as interrupted:
        train_model(config, train_file, save_path=str(tmp_path / "part"), callbacks=[ctrl_c], **kwargs)
    assert interrupted.value.step == 5
    checkpoints = sorted(os.listdir(tmp_path / "part" / "checkpoints"))
    assert checkpoints == ["step-4", "step-5"]  # complete directories only, no temporaries
    assert sorted(os.listdir(tmp_path / "part" / "checkpoints" / "step-5")) == [
        "README.md", "config.json", "model.safetensors", "rng-rank0.pt", "tokenizer_config.json",
        "trainer_state.pt"]
    model, _, _ = train_model(config, train_file, save_path=str(tmp_path / "part"), resume="latest", **kwargs)

    full, resumed = _history(tmp_path / "full"), _history(tmp_path / "part")
    assert [h["loss"] for h in resumed["history"]] == [h["loss"] for h in full["history"]]  # exact
    assert len(full["history"]) == 12
    from apt_fast import load

    reference, _ = load(str(tmp_path / "full"))
    for (name, a), b in zip(model.state_dict().items(), reference.state_dict().values()):
        assert torch.equal(a, b), name


def test_early_stopping_on_validation_loss(tmp_path, train_file, val_file, caplog):
    from apt_fast.models.apt.tokenization_byte import APTByteTokenizer
    from apt_fast.train.pretrain import config_for_tokenizer, new_model

    tokenizer = APTByteTokenizer()
    model = new_model(config_for_tokenizer(dict(TINY), tokenizer), seed=0)
    train = load_tokenized(train_file, tokenizer, max_length=32)
    val = load_tokenized(val_file, tokenizer, max_length=32)
    # A learning rate far below float32 resolution: the weights, hence the validation loss, never improve.
    config = TrainConfig(epochs=5, batch_size=8, learning_rate=1e-30, eval_steps=1, early_stopping_patience=2,
                         tensorboard=False)
    result = Trainer(model, tokenizer, LanguageModelObjective(), train, val, config, tmp_path / "es").train()
    assert result.state.stopped_early and result.state.step == 3
    assert [e["step"] for e in result.state.evals] == [1, 2, 3]
    assert result.state.best_step == 1 and result.final_weights == "best"
    assert os.path.isdir(tmp_path / "es" / "best")


def test_save_path_holding_a_model_is_refused(tmp_path, train_file, tiny_model_dir):
    with pytest.raises(FileExistsError) as err:
        train_model(dict(TINY), train_file, save_path=tiny_model_dir, epochs=1, **FAST)
    assert str(err.value) == (f"--save-path {tiny_model_dir} already holds a model; pass --overwrite to replace "
                              f"it, or --resume to continue its training")
    train_model(dict(TINY), train_file, save_path=tiny_model_dir, epochs=1, overwrite=True, **FAST)


def test_checkpoints_rotate_and_log_is_written(tmp_path, train_file):
    train_model(dict(TINY), train_file, save_path=str(tmp_path / "run"), epochs=2, save_steps=2, keep_checkpoints=2,
                bf16=True, **FAST)
    assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == ["step-10", "step-12"]
    log = _history(tmp_path / "run")
    assert log["settings"]["bf16"] and len(log["history"]) == 12 and log["final_weights"] == "last"


def test_resume_without_checkpoint_is_an_error(tmp_path, train_file):
    with pytest.raises(FileNotFoundError, match="--resume: no checkpoint under"):
        train_model(dict(TINY), train_file, save_path=str(tmp_path / "none"), resume="latest", **FAST)
