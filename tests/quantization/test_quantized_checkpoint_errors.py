"""A quantized checkpoint whose quantization_config does not match its tensors is refused before anything is
loaded, with a ValueError (CheckpointError) naming the layer, what the config expects and what the file holds."""

from __future__ import annotations

import json
import re

import pytest
from safetensors.torch import load_file, save_file
from torch import nn

import apt_fast
from apt_fast.cli import main
from apt_fast.models.apt.errors import CheckpointError

FIRST = "decoder_layers.0.linear1"  # the first listed layer (sorted): 128 inputs, 256 outputs


@pytest.fixture
def saved(tmp_path, make_model, tokenizer):
    """``saved(config=int8 weight-only g32, include_embedding=False, **model_overrides)``: a saved quantized model."""

    def save(config=None, include_embedding=False, filter_fn=None, **overrides):
        model = make_model(**overrides)
        config = config or apt_fast.Int8WeightOnlyConfig(group_size=32)
        apt_fast.quantize(model, config, filter_fn, include_embedding=include_embedding)
        apt_fast.save(model, tmp_path / "model", tokenizer)
        return tmp_path / "model"

    return save


def _edit_config(directory, edit) -> None:
    config = json.loads((directory / "config.json").read_text())
    edit(config["quantization_config"])
    (directory / "config.json").write_text(json.dumps(config))


def _edit_tensors(directory, edit) -> None:
    tensors = load_file(directory / "model.safetensors")
    edit(tensors)
    save_file(tensors, directory / "model.safetensors", metadata={"format": "pt"})


def _refused(directory, message: str, source: str = "model.safetensors") -> None:
    with pytest.raises(CheckpointError, match=f"^{re.escape(f'{directory / source}: {message}')}$"):
        apt_fast.load(directory)


def test_a_listed_layer_stored_in_float(saved):
    directory = saved(filter_fn=lambda module, path: isinstance(module, nn.Linear) and path != "output_projection",
                      tie_word_embeddings=False)
    _edit_config(directory, lambda q: q["modules"].append("output_projection"))
    _refused(directory, "output_projection: quantization_config lists it as int8 (int8_weight_only), but the "
                        "checkpoint holds output_projection.weight (float32)")


def _as_fp8(quantization_config: dict) -> None:
    del quantization_config["group_size"]
    quantization_config.update(scheme="fp8_weight_only", format="e4m3", granularity="row")


def test_codes_of_another_dtype(saved):
    directory = saved()
    _edit_config(directory, _as_fp8)
    _refused(directory, f"{FIRST}: quantization_config lists it as float8_e4m3fn (fp8_weight_only), but the "
                        f"checkpoint holds {FIRST}.qweight (int8)")


@pytest.mark.parametrize("tensor", ["qweight", "scales"])
def test_missing_codes_or_scales(saved, tensor):
    directory = saved()
    _edit_tensors(directory, lambda t: t.pop(f"{FIRST}.{tensor}"))
    _refused(directory, f"{FIRST}: quantization_config lists it as int8 (int8_weight_only), but the checkpoint holds "
                        f"no {FIRST}.{tensor}")


def test_scales_of_another_group_size(saved):
    directory = saved()
    _edit_config(directory, lambda q: q.update(group_size=64))
    _refused(directory, f"{FIRST}.scales: quantization_config (int8_weight_only, 64 inputs per scale) needs float32 "
                        f"[256, 2], the checkpoint holds float32 [256, 4]")


def test_codes_of_another_shape(saved):
    directory, key = saved(), "decoder_layers.0.self_attn.q_proj.qweight"
    _edit_tensors(directory, lambda t: t.update({key: t[key][:64].contiguous()}))
    _refused(directory, f"{key}: expected shape [128, 128] (the layer's out x in features), the checkpoint holds "
                        f"[64, 128]")


def test_codes_of_a_layer_not_listed(saved):
    directory = saved()
    _edit_config(directory, lambda q: q["modules"].remove("encoder_layers.0.linear2"))
    _refused(directory, "encoder_layers.0.linear2: the checkpoint holds encoder_layers.0.linear2.qweight (int8), but "
                        "quantization_config does not list it")


def test_codes_without_a_quantization_config(saved):
    directory = saved()
    config = json.loads((directory / "config.json").read_text())
    del config["quantization_config"]
    (directory / "config.json").write_text(json.dumps(config))
    _refused(directory, f"{FIRST}: the checkpoint holds {FIRST}.qweight (int8), but config.json has no "
                        f"quantization_config")


@pytest.mark.parametrize("path, found", [("encoder_layers.3.linear1", "no such layer"),
                                         ("encoder_layers.0.norm1", "LayerNorm")])
def test_a_listed_path_that_is_no_linear_layer(saved, path, found):
    directory = saved()
    _edit_config(directory, lambda q: q["modules"].append(path))
    _refused(directory, f"quantization_config lists {path}, which is not a linear layer of this model ({found})")


def test_tied_projection_without_include_embedding(saved):
    directory = saved(include_embedding=True)
    _edit_config(directory, lambda q: q.update(include_embedding=False))
    _refused(directory, "quantization_config lists output_projection, which is tied to the input embedding "
                        "(tie_word_embeddings), but has include_embedding false; quantizing a tied output_projection "
                        "quantizes the embedding too (include_embedding true)")


def test_quantized_embedding_stored_in_float(saved, make_model):
    directory = saved(include_embedding=True)
    embedding = make_model().token_embedding.weight.detach()
    _edit_tensors(directory, lambda t: t.update({"token_embedding.weight": embedding}))
    _refused(directory, "token_embedding: quantization_config has include_embedding true (the embedding looks up the "
                        "quantized output_projection), but the checkpoint holds token_embedding.weight (float32)")


@pytest.mark.parametrize("edit, message", [
    (lambda q: q.update(scheme="int4"), "quantization_config scheme must be one of int8_dynamic, int8_weight_only, "
                                        "fp8_weight_only, got 'int4'"),
    (lambda q: q.update(group_size=48), "group_size must be None (one scale per output channel) or one of 32, 64, 128, "
                                        "got 48"),
    (lambda q: q.update(modules="all"), "quantization_config.modules must be a list of layer paths, got 'all'"),
])
def test_an_invalid_quantization_config(saved, edit, message):
    directory = saved()
    _edit_config(directory, edit)
    _refused(directory, message, source="config.json")


def test_the_commands_print_the_mismatch_on_one_line(saved, capsys):
    directory = saved()
    _edit_tensors(directory, lambda t: t.pop(f"{FIRST}.scales"))
    capsys.readouterr()
    assert main(["generate", "--model-path", str(directory), "--prompt", "hi"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"apt-fast generate: error: {directory / 'model.safetensors'}: {FIRST}: quantization_config lists it as int8 "
        f"(int8_weight_only), but the checkpoint holds no {FIRST}.scales"]
