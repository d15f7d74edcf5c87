"""`apt-fast prune-finetune` end to end on a tiny model: the pruned weights stay exactly zero through AdamW's steps
(weight decay included) while the others train, the scores before pruning, after pruning and after fine-tuning are
printed, and sparsity.png has both panels."""

from __future__ import annotations

import os
import re

import pytest
import torch
from pruning_cli_helpers import load_linear_weights, png_size, sparsity_table, zero_share

import apt_fast

TRAINING = ["--finetune-epochs", "2", "--batch-size", "8", "--learning-rate", "1e-2", "--weight-decay", "0.1",
            "--eval-samples", "4", "--no-tensorboard", "--seed", "0"]
SCORE_ROW = re.compile(r"^\s+(dense|pruned|fine-tuned)\s+([\d.]+)\s+([\d.]+)%\s+([\d.]+%|-)$")


def _prune_finetune(run_cli, model, train_file, val_file, save, *options):
    code, out, err = run_cli(["prune-finetune", "--model-path", model, "--data-path", train_file, "--val-data-path",
                              val_file, "--save-path", save, *options, *TRAINING])
    assert code == 0, err
    return out


@pytest.mark.parametrize("options, pattern", [
    (["--prune-ratio", "0.5"], "unstructured"),
    (["--prune-ratio", "0.5", "--prune-type", "nm", "--nm", "2:4"], "2:4"),
])
def test_pruned_weights_stay_zero_and_the_rest_trains(run_cli, model_dir, train_file, val_file, tmp_path, options,
                                                      pattern):
    source, pruned_only, save = model_dir(), str(tmp_path / "pruned"), str(tmp_path / "tuned")
    prune_options = ["--prune-type", "magnitude"] if "--prune-type" not in options else []
    code, _, err = run_cli(["prune", "--model-path", source, "--output-dir", pruned_only, *prune_options, *options])
    assert code == 0, err
    out = _prune_finetune(run_cli, source, train_file, val_file, save, *options)
    table = sparsity_table(out)
    assert table and all(row[3] == pattern for row in table.values())
    before, after = load_linear_weights(pruned_only), load_linear_weights(save)
    for name, weight in after.items():
        pruned = before[name] == 0
        assert bool((weight[pruned] == 0).all()), f"{name}: a pruned weight moved"  # exactly zero
        assert zero_share(weight) == zero_share(before[name]) == 0.5, name
        assert not torch.equal(weight[~pruned], before[name][~pruned]), f"{name}: the kept weights did not train"
    assert png_size(os.path.join(save, "sparsity.png"))[0] > 1000  # two panels: bars and the stages' scores


def test_scores_before_and_after_are_printed(run_cli, model_dir, train_file, val_file, tmp_path):
    save = str(tmp_path / "tuned")
    out = _prune_finetune(run_cli, model_dir(), train_file, val_file, save, "--prune-ratio", "0.7")
    assert f"scores on {val_file}, first 4 samples:" in out
    scores = {m[1]: (float(m[2]), m[4]) for m in map(SCORE_ROW.match, out) if m}
    assert list(scores) == ["dense", "pruned", "fine-tuned"]
    assert scores["pruned"][0] != scores["dense"][0]  # 70% of the weights gone changes the loss
    assert scores["fine-tuned"][0] < scores["pruned"][0]  # at learning rate 1e-2 two epochs lower it
    assert all(match.endswith("%") for _, match in scores.values())
    assert any(line.startswith(f"wrote {save} (sparsity.png") for line in out)
    model, _ = apt_fast.load(save)  # an ordinary model: the masks were removed, the zeros kept
    assert not any(key.endswith("weight_mask") for key in model.state_dict())


def test_structured_prune_finetune_trains_the_smaller_model(run_cli, model_dir, train_file, val_file, tmp_path):
    save = str(tmp_path / "tuned")
    _prune_finetune(run_cli, model_dir(), train_file, val_file, save, "--prune-ratio", "0.5", "--prune-type",
                    "structured")
    model, _ = apt_fast.load(save)
    assert model.config.d_ff == 32 and tuple(model.encoder_layers[0].linear1.weight.shape) == (32, 32)
