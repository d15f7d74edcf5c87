"""Freezing really freezes: frozen tensors keep their values and are absent from the optimizer."""

from __future__ import annotations

import pytest
import torch
from train_helpers import make_tiny_model

from apt_fast.cli import main
from apt_fast.train import TrainConfig, fine_tune_model, freeze_layers
from apt_fast.train.optim import build_optimizer


def test_frozen_parameters_unchanged_and_not_in_optimizer(tiny_model_dir, train_file, tmp_path):
    model, _, _ = fine_tune_model(
        pretrained_model_path=tiny_model_dir, train_data_path=train_file, save_path=str(tmp_path / "ft"),
        freeze_embeddings=True, freeze_encoder_layers=1, freeze_decoder_layers=2,
        epochs=1, batch_size=8, learning_rate=1e-2, tensorboard=False)
    from apt_fast import load

    before, _ = load(tiny_model_dir)
    after = dict(model.named_parameters())
    frozen_prefixes = ("token_embedding.", "output_projection.", "encoder_layers.0.", "decoder_layers.")
    for name, p in before.named_parameters():
        changed = not torch.equal(p, after[name])
        if name.startswith(frozen_prefixes):
            assert not changed and not after[name].requires_grad, name
        elif name.startswith("encoder_layers.1.") and "sr_layernorm" not in name:
            assert changed, name  # trained (sr_layernorm is unused upstream, so it never gets a gradient)


def test_optimizer_holds_only_trainable_parameters():
    model, _ = make_tiny_model()
    report = freeze_layers(model, freeze_embeddings=True, freeze_encoder_layers=2)
    optimizer = build_optimizer(model, TrainConfig())
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert id(model.token_embedding.weight) not in in_optimizer
    assert model.output_projection.weight is model.token_embedding.weight  # tied: frozen together
    assert all(id(p) not in in_optimizer for p in model.encoder_layers.parameters())
    assert {id(p) for p in model.parameters() if p.requires_grad} == in_optimizer
    assert report.frozen_elements + report.trainable_elements == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("kwargs, message", [
    ({"freeze_encoder_layers": 3},
     "freeze_encoder_layers must be an int in [0, 2] (the model has 2 encoder layers), got 3"),
    ({"freeze_decoder_layers": -1},
     "freeze_decoder_layers must be an int in [0, 2] (the model has 2 decoder layers), got -1"),
])
def test_freeze_counts_beyond_the_model_are_errors(kwargs, message):
    model, _ = make_tiny_model()
    with pytest.raises(ValueError) as err:
        freeze_layers(model, freeze_embeddings=True, **kwargs)
    assert str(err.value) == message
    assert all(p.requires_grad for p in model.parameters())  # nothing frozen on error


def test_freeze_count_beyond_the_model_names_the_parameter_or_the_flag(tmp_path, tiny_model_dir, train_file, capsys):
    with pytest.raises(ValueError) as err:
        fine_tune_model(tiny_model_dir, train_file, save_path=str(tmp_path / "api"), freeze_encoder_layers=5)
    assert str(err.value) == "freeze_encoder_layers must be an int in [0, 2] (the model has 2 encoder layers), got 5"
    assert main(["fine-tune", "--model-path", tiny_model_dir, "--data-path", train_file,
                 "--save-path", str(tmp_path / "cli"), "--freeze-encoder-layers", "5"]) == 2
    shown = capsys.readouterr().err
    assert shown.splitlines()[-1] == (
        "apt-fast fine-tune: error: --freeze-encoder-layers is 5, but the model has 2 encoder layers")
    assert "Traceback" not in shown


def test_everything_frozen_is_an_error():
    model, _ = make_tiny_model(num_encoder_layers=1, num_decoder_layers=1)
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="every parameter is frozen: nothing to train"):
        build_optimizer(model, TrainConfig())
