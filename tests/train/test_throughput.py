"""The throughput workload: both paths run the engine from the same start and agree; the fused optimizer;
the progress bar can be hidden."""

from __future__ import annotations

import pytest
import torch
from train_helpers import TINY, make_tiny_model

from apt_fast.train.throughput import FineTuneShape, check_losses, fresh_model, make_workload, run_fine_tune

SHAPE = FineTuneShape(dict(TINY, vocab_size=50, pad_token_id=0, bos_token_id=1, eos_token_id=2), batch=2, length=8,
                      steps=2)


def test_fast_and_no_fast_runs_agree_and_start_from_the_same_weights(capsys):
    workload = make_workload(SHAPE)
    initial = {name: t.clone() for name, t in workload.model.state_dict().items()}
    no_fast = run_fine_tune(workload, fresh_model(workload), fast=False)
    fast = run_fine_tune(workload, fresh_model(workload), fast=True)
    assert no_fast.shape == (2,) and bool(torch.isfinite(no_fast).all())
    check_losses(no_fast, fast)
    for name, tensor in workload.model.state_dict().items():
        assert torch.equal(tensor, initial[name]), name  # runs train copies
    assert SHAPE.tokens == 2 * 2 * 2 * 8 and "2 steps = 64 tokens" in SHAPE.describe()
    assert "throughput" not in capsys.readouterr().err  # progress_bar=False: no tqdm bar


def test_check_losses_rejects_disagreement():
    with pytest.raises(AssertionError, match="fast-path losses disagree with --no-fast"):
        check_losses(torch.tensor([2.0, 1.0], dtype=torch.float64), torch.tensor([2.0, 1.01], dtype=torch.float64))


def test_optimizer_is_torch_fused_adamw_on_cpu():
    from apt_fast.train.config import TrainConfig
    from apt_fast.train.optim import build_optimizer

    model, _ = make_tiny_model()
    assert build_optimizer(model, TrainConfig()).defaults["fused"] is True
