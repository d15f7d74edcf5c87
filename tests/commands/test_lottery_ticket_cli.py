"""`apt-fast lottery-ticket` end to end on a tiny model: K rounds whose sparsity compounds (1 - (1 - r)^k, the
pruned weights of a round staying pruned), each round rewound to the initial weights (or to step S of round 0)
before it trains, each round saved whole, and an interrupted run leaving the rounds finished before it intact."""

from __future__ import annotations

import os
import re

import pytest
import torch
from pruning_cli_helpers import load_linear_weights, png_size, sparsity_table, zero_share

import apt_fast
import apt_fast.train.checkpointing as checkpointing
import apt_fast.train.lottery_ticket as engine

RATIO, ROUNDS = 0.3, 3
TRAINING = ["--epochs-per-iter", "1", "--batch-size", "8", "--learning-rate", "1e-2", "--eval-samples", "4",
            "--no-tensorboard"]


def _lottery(run_cli, model, train_file, save, *options):
    return run_cli(["lottery-ticket", "--model-path", model, "--data-path", train_file, "--save-path", save,
                    "--iterations", ROUNDS, "--prune-ratio-per-iter", RATIO, *TRAINING, *options])


@pytest.fixture
def round_starts(monkeypatch):
    """The model's state as each round's training starts, in round order (records every call of the training)."""
    starts = []
    train = engine.run_language_model_training

    def recording(model, *args, **kwargs):
        starts.append({key: value.detach().clone() for key, value in model.state_dict().items()})
        return train(model, *args, **kwargs)

    monkeypatch.setattr(engine, "run_language_model_training", recording)
    return starts


def _compounded(index: int) -> float:
    return 1 - (1 - RATIO) ** index


def test_rounds_compound_the_sparsity_and_rewind_to_the_initial_weights(run_cli, model_dir, train_file, tmp_path,
                                                                         round_starts):
    model, save = model_dir(), str(tmp_path / "ticket")
    code, out, err = _lottery(run_cli, model, train_file, save)
    assert code == 0, err
    initial = apt_fast.load(model)[0].state_dict()
    previous_zeros = None
    for index in range(ROUNDS + 1):
        path = os.path.join(save, f"round-{index}")
        shown = [re.match(rf"round {index}: sparsity ([\d.]+)%, loss .* -> {re.escape(path)}$", line) for line in out]
        [sparsity] = [float(m[1]) for m in shown if m]
        assert sparsity == pytest.approx(100 * _compounded(index), abs=0.05)  # each layer rounds to whole weights
        weights = load_linear_weights(path)
        zeros = {name: weight == 0 for name, weight in weights.items()}
        for name, weight in weights.items():
            assert zero_share(weight) == pytest.approx(_compounded(index), abs=0.5 / weight.numel()), (index, name)
            if previous_zeros is not None:
                assert bool(zeros[name][previous_zeros[name]].all()), f"round {index} revived a pruned weight"
        previous_zeros = zeros
        start = round_starts[index]
        for key, value in initial.items():  # rewound: the initial weights, zero where pruned
            expected = value.masked_fill(zeros[key[:-len(".weight")]], 0) if key[:-len(".weight")] in zeros \
                and index else value
            assert torch.equal(start[key], expected), (index, key)
    final = load_linear_weights(save)
    last = load_linear_weights(os.path.join(save, f"round-{ROUNDS}"))
    assert all(torch.equal(final[name], last[name]) for name in final)
    assert not any(key.endswith("weight_mask") for key in apt_fast.load(save)[0].state_dict())
    table = sparsity_table(out)
    assert all(row[2] == pytest.approx(100 * _compounded(ROUNDS), abs=0.1) for row in table.values())
    assert png_size(os.path.join(save, "sparsity.png"))[0] > 1000  # bars and the rounds' curve
    assert not os.path.exists(os.path.join(save, engine.SCRATCH))


def test_rewind_step_rewinds_to_the_weights_after_that_step(run_cli, model_dir, train_file, tmp_path, monkeypatch):
    """With --rewind-step 2, round 1 starts from the weights after optimizer step 2 of round 0 (masked)."""
    at_step, starts = {}, []
    train = engine.run_language_model_training

    def recording(model, *args, callbacks=(), **kwargs):
        starts.append({key: value.detach().clone() for key, value in model.state_dict().items()})

        def keep(trainer, state, loss):
            if state.step == 2 and not at_step:
                at_step.update({key: value.detach().clone() for key, value in model.state_dict().items()})

        return train(model, *args, callbacks=[*callbacks, keep], **kwargs)

    monkeypatch.setattr(engine, "run_language_model_training", recording)
    save = str(tmp_path / "ticket")
    code, _, err = _lottery(run_cli, model_dir(), train_file, save, "--rewind-step", "2")
    assert code == 0, err
    mask = starts[1]["encoder_layers.0.linear1.weight_mask"]
    weight = "encoder_layers.0.linear1.weight"
    assert torch.equal(starts[1][weight], at_step[weight].masked_fill(~mask, 0))
    assert not torch.equal(starts[1][weight], starts[0][weight].masked_fill(~mask, 0))  # not the initial ones
    assert torch.equal(starts[1]["decoder_norm.weight"], at_step["decoder_norm.weight"])


def test_interrupt_in_round_2_keeps_the_rounds_before(run_cli, model_dir, train_file, tmp_path, monkeypatch):
    calls = []
    train = engine.run_language_model_training

    def interrupted_in_round_2(model, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # round 0, round 1, then Ctrl-C as round 2 trains
            raise KeyboardInterrupt
        return train(model, *args, **kwargs)

    monkeypatch.setattr(engine, "run_language_model_training", interrupted_in_round_2)
    save = str(tmp_path / "ticket")
    code, _, err = _lottery(run_cli, model_dir(), train_file, save)
    assert code == 130
    assert err[-1] == (f"apt-fast lottery-ticket: interrupted in round 2; {save}/round-1 holds the last complete "
                       f"round")
    assert sorted(os.listdir(save)) == ["round-0", "round-1"]  # no final ticket, plot or scratch directory
    weights = load_linear_weights(os.path.join(save, "round-1"))
    assert all(zero_share(w) == pytest.approx(RATIO, abs=0.5 / w.numel()) for w in weights.values())


def test_interrupt_while_round_2_is_written_leaves_no_partial_round(run_cli, model_dir, train_file, tmp_path,
                                                                   monkeypatch):
    save = str(tmp_path / "ticket")
    written = checkpointing.save_model
    states = {}

    def interrupted_after_staging_round_2(model, directory, tokenizer):
        if directory.endswith("round-2.tmp"):
            for name in sorted(os.listdir(os.path.join(save, "round-1"))):
                path = os.path.join(save, "round-1", name)
                states[name] = (open(path, "rb").read(), os.stat(path).st_mtime_ns)
        written(model, directory, tokenizer)
        if directory.endswith("round-2.tmp"):
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpointing, "save_model", interrupted_after_staging_round_2)
    code, _, err = _lottery(run_cli, model_dir(), train_file, save)
    assert code == 130 and "round-1 holds the last complete round" in err[-1]
    assert sorted(os.listdir(save)) == ["round-0", "round-1"]
    after = {name: (open(os.path.join(save, "round-1", name), "rb").read(),
                    os.stat(os.path.join(save, "round-1", name)).st_mtime_ns) for name in states}
    assert states and after == states


def test_rewind_step_past_the_round_is_refused(run_cli, model_dir, train_file, tmp_path):
    save = tmp_path / "ticket"
    code, out, err = _lottery(run_cli, model_dir(), train_file, str(save), "--rewind-step", "5")
    assert code == 2 and out == []
    # the steps of a round are counted from the data, read (and logged) first
    assert err[-1] == ("apt-fast lottery-ticket: error: --rewind-step must be at most the 4 optimizer steps of a "
                       "round, got 5")
    assert sum("error" in line for line in err) == 1
    assert not save.exists() or os.listdir(save) == []


def test_overwrite_leaves_no_round_of_the_earlier_run(run_cli, model_dir, train_file, tmp_path):
    model, save = model_dir(), str(tmp_path / "ticket")
    assert _lottery(run_cli, model, train_file, save)[0] == 0
    code, _, err = run_cli(["lottery-ticket", "--model-path", model, "--data-path", train_file, "--save-path", save,
                            "--iterations", 1, "--prune-ratio-per-iter", 0.5, *TRAINING, "--overwrite"])
    assert code == 0, err
    assert sorted(name for name in os.listdir(save) if name.startswith("round-")) == ["round-0", "round-1"]
