"""Which weights a run keeps (issue 12.2): it evaluates after its last step whatever --eval-steps, keeps
best/ and last/, and the final model is best/ with validation data, last/ without; the log says which."""

from __future__ import annotations

import json
import logging
import os

import torch
from safetensors.torch import load_file

from apt_fast.train import fine_tune_model
from apt_fast.train.checkpointing import FINAL_WEIGHTS_RULE

# 48 samples in batches of 8: 6 steps; evaluations every 4 steps fall at step 4, and the run ends at step 6.
SIX_STEPS = dict(epochs=1, batch_size=8, learning_rate=3e-3, eval_steps=4, tensorboard=False)


def _weights(directory):
    return load_file(os.path.join(directory, "model.safetensors"))


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _log(save_path):
    with open(os.path.join(save_path, "training_log.json"), encoding="utf-8") as f:
        return json.load(f)


def _weights_at_step(step, kept):
    def keep(trainer, state, loss):
        if state.step == step:
            kept.update({k: v.detach().clone() for k, v in trainer.model.state_dict().items()})

    return keep


def test_the_last_step_is_evaluated_and_competes_for_best(tmp_path, tiny_model_dir, train_file, val_file, caplog):
    caplog.set_level(logging.INFO, logger="apt_fast.train")
    save_path = str(tmp_path / "ft")
    at_step_6 = {}
    fine_tune_model(tiny_model_dir, train_file, val_file, save_path=save_path,
                    callbacks=[_weights_at_step(6, at_step_6)], **SIX_STEPS)
    log = _log(save_path)
    assert [e["step"] for e in log["evals"]] == [4, 6]
    assert log["evals"][1]["loss"] < log["evals"][0]["loss"]  # the steps after the last periodic evaluation help
    assert (log["final_weights"], log["final_step"], log["best_step"]) == ("best", 6, 6)
    assert log["final_weights_rule"] == FINAL_WEIGHTS_RULE
    final, best, last = (_weights(os.path.join(save_path, name)) for name in ("", "best", "last"))
    assert _same(final, best) and _same(last, best)
    assert _same(last, {k: v for k, v in at_step_6.items() if k in last})
    assert (f"saved the model to {save_path}: best/, the weights of step 6 (validation loss "
            f"{log['best_val_loss']:.4f}, the lowest of 2 evaluations); last/ holds step 6") in caplog.text


def test_without_validation_the_final_model_is_last(tmp_path, tiny_model_dir, train_file, caplog):
    caplog.set_level(logging.INFO, logger="apt_fast.train")
    save_path = str(tmp_path / "ft")
    fine_tune_model(tiny_model_dir, train_file, save_path=save_path, **SIX_STEPS)
    log = _log(save_path)
    assert (log["final_weights"], log["final_step"], log["evals"]) == ("last", 6, [])
    assert not os.path.exists(os.path.join(save_path, "best"))
    assert _same(_weights(save_path), _weights(os.path.join(save_path, "last")))
    assert f"saved the model to {save_path}: last/, the weights of step 6, training loss " in caplog.text
    assert caplog.text.rstrip().endswith("(no validation data)")
