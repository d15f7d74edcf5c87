"""NaN and infinity (issue 12.3): a non-finite loss or gradient norm stops the run with one line naming the
step and the last good checkpoint, or is skipped up to --skip-nonfinite-steps; a non-finite validation loss
is never the best; non-finite weights are never saved."""

from __future__ import annotations

import json
import logging
import math
import os
import re

import pytest
import torch
from train_helpers import make_tiny_model

from apt_fast.cli import main
from apt_fast.train import LanguageModelObjective, NonFiniteError, TrainConfig, Trainer
from apt_fast.train.evaluation import EvalResult
from apt_fast.train.inputs import load_tokenized

SIX_STEPS = dict(epochs=1, batch_size=8, learning_rate=3e-3, tensorboard=False)  # 48 samples: 6 steps


class Poisoned:
    """The cross-entropy objective whose loss is NaN at the given steps (one micro-batch a step), or whose
    gradient norm overflows there (``gradient=True``, the loss left finite)."""

    def __init__(self, steps, gradient=False):
        self.steps, self.gradient, self.calls = set(steps), gradient, 0

    def __call__(self, model, batch):
        self.calls += 1
        ce, count = LanguageModelObjective()(model, batch)["ce"]
        if self.calls in self.steps:
            if self.gradient:
                ce.register_hook(lambda grad: grad * 1e30)  # finite gradients whose norm overflows
            else:
                ce = ce * math.nan
        return {"ce": (ce, count)}


def _trainer(tmp_path, train_file, objective, val_file=None, callbacks=(), **settings):
    model, tokenizer = make_tiny_model()
    train = load_tokenized(train_file, tokenizer, max_length=32)
    val = load_tokenized(val_file, tokenizer, max_length=32) if val_file else None
    config = TrainConfig(**{**SIX_STEPS, **settings})
    return Trainer(model, tokenizer, objective, train, val, config, tmp_path / "run", callbacks=callbacks,
                   progress_bar=False)


def _log(tmp_path):
    with open(tmp_path / "run" / "training_log.json", encoding="utf-8") as f:
        return json.load(f)


@pytest.mark.parametrize("skip, stopped_at", [
    ([], "the loss is nan at step 2 (learning rate 1e+09); the last good checkpoint is {save}/checkpoints/step-1"),
    (["--skip-nonfinite-steps", "1"], "the loss is nan at step 3 (learning rate 1e+09) after 1 skipped step "
                                      "(--skip-nonfinite-steps 1); the last good checkpoint is "
                                      "{save}/checkpoints/step-2"),
])
def test_learning_rate_1e9_stops_with_one_line_naming_the_step(tmp_path, tiny_model_dir, train_file, capsys, skip,
                                                               stopped_at):
    save_path = str(tmp_path / "ft")
    code = main(["fine-tune", "--model-path", tiny_model_dir, "--data-path", train_file, "--save-path", save_path,
                 "--learning-rate", "1e9", "--save-steps", "1", "--epochs", "1", "--no-tensorboard", *skip])
    assert code == 2
    assert capsys.readouterr().err.splitlines()[-1] == "apt-fast fine-tune: error: " + stopped_at.format(save=save_path)
    assert not os.path.exists(os.path.join(save_path, "model.safetensors"))  # no final model from a diverged run
    with open(os.path.join(save_path, "training_log.json"), encoding="utf-8") as f:
        assert json.load(f)["final_weights"] == "failed"


def test_skipped_steps_leave_the_weights_and_the_history(tmp_path, train_file, caplog):
    caplog.set_level(logging.INFO, logger="apt_fast.train")
    snapshots = {}

    def snapshot(trainer, state, loss):
        snapshots[state.step] = [p.detach().clone() for p in trainer.model.parameters()]

    result = _trainer(tmp_path, train_file, Poisoned({2, 4}), callbacks=[snapshot], skip_nonfinite_steps=2).train()
    assert result.state.step == 6 and result.state.skipped_steps == [2, 4]
    assert [h["step"] for h in result.state.history] == [1, 3, 5, 6]
    for skipped in (2, 4):
        assert all(torch.equal(a, b) for a, b in zip(snapshots[skipped], snapshots[skipped - 1]))
    assert not all(torch.equal(a, b) for a, b in zip(snapshots[3], snapshots[2]))
    assert "step 2: the loss is nan: update skipped (1 of at most 2 such steps)" in caplog.text
    assert "step 4: the loss is nan: update skipped (2 of at most 2 such steps)" in caplog.text


def test_a_non_finite_step_beyond_the_limit_stops_the_run(tmp_path, train_file):
    trainer = _trainer(tmp_path, train_file, Poisoned({2, 4}), skip_nonfinite_steps=1, save_steps=3)
    with pytest.raises(NonFiniteError) as stopped:
        trainer.train()
    checkpoint = str(tmp_path / "run" / "checkpoints" / "step-3")
    assert str(stopped.value) == (f"the loss is nan at step 4 (learning rate 0.003) after 1 skipped step "
                                  f"(--skip-nonfinite-steps 1); the last good checkpoint is {checkpoint}")
    assert (stopped.value.step, stopped.value.checkpoint) == (4, checkpoint)
    assert _log(tmp_path)["error"] == str(stopped.value)


@pytest.mark.parametrize("grad_clip", [1.0, 0.0])
def test_a_non_finite_gradient_norm_stops_the_run(tmp_path, train_file, grad_clip):
    trainer = _trainer(tmp_path, train_file, Poisoned({2}, gradient=True), grad_clip=grad_clip)
    with pytest.raises(NonFiniteError) as stopped:
        trainer.train()
    assert re.fullmatch(r"the gradient norm is inf at step 2 \(loss \d+\.\d{4}, learning rate 0\.003\); "
                        r"no checkpoint was written before it", str(stopped.value)), str(stopped.value)


def _fake_evaluations(monkeypatch, losses):
    remaining = list(losses)

    def evaluate(*args, **kwargs):
        loss = remaining.pop(0)
        return EvalResult(loss, math.exp(loss) if math.isfinite(loss) else loss, 0.0, 1, 1)

    monkeypatch.setattr("apt_fast.train.trainer.evaluate", evaluate)


def test_a_nan_validation_loss_is_never_the_best(tmp_path, train_file, val_file, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="apt_fast.train")
    _fake_evaluations(monkeypatch, [math.nan, 5.0])
    result = _trainer(tmp_path, train_file, LanguageModelObjective(), val_file, eval_steps=3).train()
    assert (result.state.best_step, result.state.best_val_loss, result.final_weights) == (6, 5.0, "best")
    assert "step 3: validation loss nan  perplexity nan" in caplog.text
    assert "(1 samples, 1 target tokens): not finite, never the best (1/3)" in caplog.text


def test_without_a_finite_validation_loss_the_final_model_is_last(tmp_path, train_file, val_file, monkeypatch):
    _fake_evaluations(monkeypatch, [math.nan, math.inf])
    result = _trainer(tmp_path, train_file, LanguageModelObjective(), val_file, eval_steps=3).train()
    assert (result.state.best_step, result.final_weights) == (None, "last")
    assert not os.path.exists(tmp_path / "run" / "best")


def test_non_finite_weights_are_never_saved(tmp_path, train_file):
    broken = []

    def break_a_weight(trainer, state, loss):
        if state.step == 2:
            name, weight = list(trainer.model.named_parameters())[-1]
            weight.data.view(-1)[0] = math.inf
            broken.append(name)

    trainer = _trainer(tmp_path, train_file, LanguageModelObjective(), callbacks=[break_a_weight], save_steps=1)
    with pytest.raises(NonFiniteError) as stopped:
        trainer.train()
    assert str(stopped.value) == (f"the weights are not finite after step 2 (learning rate 0.003): {broken[0]}; "
                                  f"the last good checkpoint is {tmp_path / 'run' / 'checkpoints' / 'step-1'}")
    assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == ["step-1"]
