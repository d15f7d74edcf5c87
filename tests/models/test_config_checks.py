"""Config keys APT does not read, and configs that contradict their weights, are reported instead of building a
different model than the one asked for."""

from __future__ import annotations

import json
import warnings

import pytest
from byte_models import byte_model
from safetensors.torch import load_file, save_file

from apt_fast.models.apt import APTConfig


@pytest.mark.parametrize("key, meant", [
    ("num_layers", "num_encoder_layers or num_decoder_layers"),
    ("n_heads", "num_heads"),
    ("num_head", "num_heads"),
    ("ffn_dim", "d_ff"),
    ("max_position_embeddings", "max_seq_len"),
])
def test_misspelt_fields_are_errors(key, meant):
    with pytest.raises(ValueError, match=rf"^APTConfig: unknown field '{key}' \(did you mean {meant}\?\); APT reads no "
                       r"such field, so the value would be silently ignored$"):
        APTConfig(**{key: 1})


def test_other_unknown_fields_warn():
    with pytest.warns(UserWarning, match=r"APTConfig: unknown field 'colour' is kept as an attribute, but no APT code "
                      r"reads it") as record:
        config = APTConfig(colour="blue")
    assert config.colour == "blue" and record[0].category.__name__ == "UnknownConfigKeyWarning"


def test_known_keys_pass_silently():
    """transformers' own keys, the attribute_map aliases and upstream's inert trainer fields (APT_SPEC.md §1)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config = APTConfig(hidden_size=64, num_attention_heads=4, warmup_steps=100, layer_norm_eps=1e-5,
                           tokenizer_type="chinese-char", use_cache=False, torch_dtype="float32",
                           architectures=["APTModel"])
        again = APTConfig(**{k: v for k, v in config.to_dict().items() if k != "model_type"})
    assert (config.d_model, config.num_heads) == (64, 4) and again.to_dict() == config.to_dict()


def _saved(tmp_path, **config_changes):
    byte_model().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, **config_changes}))
    return tmp_path


@pytest.mark.parametrize("changes, message", [
    ({"num_encoder_layers": 12, "num_decoder_layers": 12},
     "num_encoder_layers is 12 in the config, 1 in the weights; "
     "num_decoder_layers is 12 in the config, 1 in the weights"),
    ({"d_ff": 128}, "d_ff is 128 in the config, 64 in the weights"),
    ({"sr_ratio": 1}, r"sr_ratio is 1 in the config \(sr_conv width 32\), 2 in the weights \(width 16\)"),
])
def test_auto_model_refuses_a_config_that_contradicts_the_weights(tmp_path, changes, message):
    """transformers filled the missing layers with random weights and only logged it."""
    from transformers import AutoModel

    from apt_fast.models.apt.loading import CheckpointError

    with pytest.raises(CheckpointError, match=rf"the config contradicts the weights: {message}$"):
        AutoModel.from_pretrained(_saved(tmp_path, **changes))


def test_auto_model_refuses_missing_weights(tmp_path):
    from transformers import AutoModel

    from apt_fast.models.apt.loading import CheckpointError

    directory = _saved(tmp_path)
    weights = load_file(directory / "model.safetensors")
    del weights["encoder_layers.0.linear2.bias"]
    save_file(weights, directory / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"the weights do not match the config: missing \(would be random\) keys "
                       r"\['encoder_layers.0.linear2.bias'\]"):
        AutoModel.from_pretrained(directory)

