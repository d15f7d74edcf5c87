"""A quantized model saves as safetensors + config.json's quantization_config and loads back quantized, with the
same codes, scales and outputs, for every scheme, with and without the embedding, tied or not."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

import apt_fast
from apt_fast.modules.quantized_linear import QuantizedEmbedding, QuantizedLinear

SCHEMES = {
    "int8_dynamic_channel": lambda: apt_fast.Int8DynamicConfig(),
    "int8_dynamic_g32": lambda: apt_fast.Int8DynamicConfig(group_size=32),
    "int8_weight_only_g64": lambda: apt_fast.Int8WeightOnlyConfig(group_size=64),
    "int8_weight_only_g128": lambda: apt_fast.Int8WeightOnlyConfig(group_size=128),
    "fp8_e4m3_row": lambda: apt_fast.Fp8WeightOnlyConfig("e4m3", "row"),
    "fp8_e5m2_tensor": lambda: apt_fast.Fp8WeightOnlyConfig("e5m2", "tensor"),
    "fp8_e4m3_block": lambda: apt_fast.Fp8WeightOnlyConfig("e4m3", "block"),
}


def _quantized_layers(model) -> dict:
    """path -> (class, qweight, scales, bias) of every quantized layer."""
    return {path: (type(m).__name__, *m.quantized(), m.bias) for path, m in model.named_modules()
            if isinstance(m, QuantizedLinear)}


def _assert_same_layers(loaded, original) -> None:
    expected, actual = _quantized_layers(original), _quantized_layers(loaded)
    assert actual.keys() == expected.keys()
    for path, (kind, qweight, scales, bias) in expected.items():
        got = actual[path]
        assert got[0] == kind, path
        assert got[1].dtype == qweight.dtype and torch.equal(got[1].view(torch.uint8), qweight.view(torch.uint8)), path
        assert torch.equal(got[2], scales), path
        assert (bias is None and got[3] is None) or torch.equal(got[3], bias), path


@pytest.mark.parametrize("include_embedding", [False, True], ids=["float_embedding", "include_embedding"])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_round_trip_gives_identical_outputs(tmp_path, make_model, tokenizer, batch, run, scheme, include_embedding):
    model = make_model()
    config = SCHEMES[scheme]()
    apt_fast.quantize(model, config, include_embedding=include_embedding)
    apt_fast.save(model, tmp_path, tokenizer)

    saved = json.loads((tmp_path / "config.json").read_text())["quantization_config"]
    assert saved["quant_method"] == "apt_fast" and saved["scheme"] == config.scheme
    assert saved["include_embedding"] is include_embedding
    assert ("output_projection" in saved["modules"]) is include_embedding
    loaded, loaded_tokenizer = apt_fast.load(tmp_path)
    assert loaded_tokenizer.encode("hi") == tokenizer.encode("hi")
    assert loaded.config.quantization_config == saved
    assert isinstance(loaded.token_embedding, QuantizedEmbedding) is include_embedding
    if include_embedding:
        assert loaded.token_embedding.projection is loaded.output_projection
    else:
        assert loaded.output_projection.weight is loaded.token_embedding.weight  # still tied
    _assert_same_layers(loaded, model)
    assert torch.equal(run(loaded, batch), run(model, batch))


@pytest.mark.parametrize("include_embedding", [False, True], ids=["float_embedding", "quantized_output"])
def test_untied_output_projection(tmp_path, make_model, tokenizer, batch, run, include_embedding):
    model = make_model(tie_word_embeddings=False)
    report = apt_fast.quantize(model, apt_fast.Int8WeightOnlyConfig(group_size=32), include_embedding=include_embedding)
    assert "output_projection" in [path for path, _, _ in report.swapped]  # untied: always quantized
    model.save_pretrained(tmp_path, tokenizer=tokenizer)
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert {"token_embedding.weight", "output_projection.qweight", "output_projection.scales"} <= keys
    loaded, _ = apt_fast.load(tmp_path)
    assert type(loaded.token_embedding).__name__ == "Embedding" and not loaded.config.tie_word_embeddings
    _assert_same_layers(loaded, model)
    assert torch.equal(run(loaded, batch), run(model, batch))


def test_saved_tensors_are_codes_and_scales(tmp_path, make_model):
    model = make_model()
    apt_fast.quantize(model, apt_fast.Fp8WeightOnlyConfig("e5m2", "block"), include_embedding=True)
    model.save_pretrained(tmp_path)
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        tensors = {key: f.get_tensor(key) for key in f.keys()}
    assert "token_embedding.weight" not in tensors and "output_projection.weight" not in tensors
    assert tensors["output_projection.qweight"].dtype == torch.float8_e5m2
    assert tensors["output_projection.qweight"].shape == (259, 128)
    assert tensors["encoder_layers.0.linear2.scales"].dtype == torch.float32
    assert tensors["encoder_layers.0.linear2.scales"].shape == (128, 2)  # 256 inputs, a scale per 128
    assert not [key for key in tensors if key.endswith(".weight") and tensors[key].dim() == 2
                and "embedding" not in key]  # no float weight matrix left


def test_loaded_model_saves_again_identically(tmp_path, make_model, tokenizer):
    model = make_model()
    apt_fast.quantize(model, apt_fast.Int8DynamicConfig(group_size=64), include_embedding=True)
    apt_fast.save(model, tmp_path / "a", tokenizer)
    loaded, _ = apt_fast.load(tmp_path / "a")
    apt_fast.save(loaded, tmp_path / "b")
    for name in ("model.safetensors", "config.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_model_card_names_the_scheme(tmp_path, make_model, tokenizer):
    model = make_model()
    apt_fast.quantize(model, apt_fast.Int8WeightOnlyConfig(group_size=32), include_embedding=True)
    apt_fast.save(model, tmp_path, tokenizer)
    card = (tmp_path / "README.md").read_text()
    row = "| quantization (apt_fast) | int8_weight_only (group_size 32): 17 linear layers, the tied embedding too |"
    assert row in card
    assert "`qweight`" in card and "apt_fast.load" in card
    assert "AutoModelForSeq2SeqLM.from_pretrained" not in card  # transformers cannot load it


def test_top_level_names():
    from apt_fast import modules, quantization

    for name in ("quantize", "QuantizeReport", "Int8DynamicConfig", "Int8WeightOnlyConfig", "Fp8WeightOnlyConfig"):
        assert name in apt_fast.__all__ and getattr(apt_fast, name) is getattr(quantization, name)
    for name in ("Int8Linear", "Fp8Linear"):
        assert name in apt_fast.__all__ and getattr(apt_fast, name) is getattr(modules, name)
