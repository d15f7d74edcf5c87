"""Gradient accumulation: N micro-batches per optimizer step give the step of one N times larger batch,
and every step count (history, schedule, checkpoints, resume) counts optimizer steps."""

from __future__ import annotations

import json
import os

import pytest
import torch
from train_helpers import TINY, make_tiny_model

from apt_fast.cli import main
from apt_fast.train import (
    LanguageModelObjective,
    TrainConfig,
    Trainer,
    TrainingInterrupted,
    fine_tune_model,
    tokenize_examples,
    train_model,
)
from apt_fast.train.records import Example


def _equal_length_data(tokenizer):
    """8 samples of 4 source and 4 target tokens: every micro-batch holds the same number of tokens, so the
    mean of the micro-batches' per-token losses is the per-token loss of their union."""
    words = ["abcd", "bcde", "cdef", "defa", "efab", "fabc", "acef", "bdfa"]
    return tokenize_examples([Example(w, w[::-1]) for w in words], tokenizer, max_length=16)


def _train_two_steps(tmp_path, name, batch_size, accumulation):
    """2 optimizer steps over the 8 samples in float64 (plain PyTorch: the kernels take float32 and below).
    Adam divides each gradient element by its magnitude, which in float32 magnifies the rounding of
    gradients that are 0 up to rounding (key biases: softmax ignores a shift of the scores) to ~1e-5."""
    model, tokenizer = make_tiny_model()  # dropout 0
    model.double()
    config = TrainConfig(epochs=1, batch_size=batch_size, gradient_accumulation_steps=accumulation,
                         learning_rate=1e-2, fast=False, tensorboard=False)
    result = Trainer(model, tokenizer, LanguageModelObjective(), _equal_length_data(tokenizer), None, config,
                     tmp_path / name, progress_bar=False).train()
    return model, result


@pytest.fixture
def gradient_norms(monkeypatch):
    """The global gradient norm of every optimizer step, recorded where the trainer clips it: Adam and
    clipping would hide a gradient of the wrong scale (a sum instead of a mean) from the parameters."""
    norms = []
    clip = torch.nn.utils.clip_grad_norm_

    def recording_clip(params, max_norm, *args, **kwargs):
        norm = clip(params, max_norm, *args, **kwargs)
        norms.append(norm.item())
        return norm

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", recording_clip)
    return norms


def test_accumulated_micro_batches_equal_one_large_batch(tmp_path, gradient_norms):
    large, large_run = _train_two_steps(tmp_path, "large", batch_size=4, accumulation=1)
    micro, micro_run = _train_two_steps(tmp_path, "micro", batch_size=2, accumulation=2)
    assert large_run.state.step == micro_run.state.step == 2
    assert len(gradient_norms) == 4  # clipped once per optimizer step
    torch.testing.assert_close(gradient_norms[2:], gradient_norms[:2], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(micro_run.losses, large_run.losses, rtol=1e-5, atol=1e-6)
    for (name, a), b in zip(micro.named_parameters(), large.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def _log(path):
    with open(os.path.join(path, "training_log.json"), encoding="utf-8") as f:
        return json.load(f)


def test_steps_checkpoints_and_resume_count_optimizer_steps(tmp_path, train_file):
    # 48 samples in batches of 4 are 12 micro-batches an epoch; 5 a step make steps of 5, 5 and 2 micro-batches.
    kwargs = dict(epochs=2, batch_size=4, gradient_accumulation_steps=5, save_steps=2, learning_rate=3e-3,
                  tensorboard=False)
    train_model(dict(TINY), train_file, save_path=str(tmp_path / "full"), **kwargs)
    full = _log(tmp_path / "full")
    assert [h["step"] for h in full["history"]] == [1, 2, 3, 4, 5, 6]
    assert full["history"][-1]["lr"] == 0.0  # the cosine schedule spans the 6 optimizer steps
    assert sorted(os.listdir(tmp_path / "full" / "checkpoints")) == ["step-4", "step-6"]

    def stop_at_step_4(trainer, state, loss):
        if state.step == 4:
            trainer.request_stop()

    with pytest.raises(TrainingInterrupted) as interrupted:
        train_model(dict(TINY), train_file, save_path=str(tmp_path / "part"), callbacks=[stop_at_step_4], **kwargs)
    assert interrupted.value.step == 4
    saved = torch.load(tmp_path / "part" / "checkpoints" / "step-4" / "trainer_state.pt", weights_only=True)
    assert (saved["state"]["step"], saved["state"]["epoch"], saved["state"]["batch_in_epoch"]) == (4, 1, 5)
    train_model(dict(TINY), train_file, save_path=str(tmp_path / "part"), resume="latest", **kwargs)
    assert [h["loss"] for h in _log(tmp_path / "part")["history"]] == [h["loss"] for h in full["history"]]


def test_zero_accumulation_steps_is_an_error_of_the_api(tmp_path, tiny_model_dir, train_file):
    with pytest.raises(ValueError) as err:
        fine_tune_model(tiny_model_dir, train_file, save_path=str(tmp_path / "ft"), gradient_accumulation_steps=0)
    assert str(err.value) == "gradient_accumulation_steps must be an int >= 1, got 0"


@pytest.mark.parametrize("command, inputs", [("fine-tune", ["--model-path", "m"]), ("train", ["--config", "c.json"]),
                                             ("distill", ["--teacher", "t", "--student", "s"])])
@pytest.mark.parametrize("value, shown", [("0", "0"), ("-2", "-2"), ("two", "'two'")])
def test_bad_accumulation_steps_is_a_one_line_cli_error(command, inputs, value, shown, capsys):
    assert main([command, *inputs, "--data-path", "d", "--gradient-accumulation-steps", value]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"apt-fast {command}: error: argument --gradient-accumulation-steps: must be an int >= 1, got {shown} "
        f"(see --help)"]
