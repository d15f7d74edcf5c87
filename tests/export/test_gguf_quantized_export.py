"""Exporting a quantized model: q8_0 writes an int8 group-32 layer's codes and scales as they are (a model loaded
from Q8_0 re-exports the same bytes), refuses the layers it cannot hold as they are, and the other types write
the dequantized weights."""

from __future__ import annotations

import os

import pytest
import torch

import apt_fast
from apt_fast.cli import main
from apt_fast.export import export_gguf, read_gguf
from apt_fast.modules.quantized_linear import Int8Linear, QuantizedLinear


def _layers(model) -> dict:
    return {path: module for path, module in model.named_modules() if isinstance(module, QuantizedLinear)}


def _fp16_scales(model) -> None:
    """Give every Int8Linear scales that are fp16 values (as a Q8_0 file's are)."""
    for layer in _layers(model).values():
        codes, scales = layer.quantized()
        layer.set_quantized(codes.clone(), scales.half().float())


def _tensor_bytes(path) -> dict:
    file = read_gguf(path)
    return {name: file.raw(name).tobytes() for name in file.tensors}


def test_int8_group_32_exports_exactly(tmp_path, model, tokenizer):
    apt_fast.quantize(model, apt_fast.Int8DynamicConfig(group_size=32), include_embedding=True)
    _fp16_scales(model)
    export_gguf(model, tmp_path / "m.gguf", "q8_0", tokenizer, progress=False)
    loaded, _ = apt_fast.load(tmp_path / "m.gguf")
    original = _layers(model)
    assert _layers(loaded).keys() == original.keys()
    for path, layer in _layers(loaded).items():
        codes, scales = layer.quantized()
        assert torch.equal(codes, original[path].quantized()[0]), path
        assert torch.equal(scales, original[path].quantized()[1]), path


def test_scales_are_stored_as_their_nearest_fp16(tmp_path, model, tokenizer):
    apt_fast.quantize(model, apt_fast.Int8WeightOnlyConfig(group_size=32))
    export_gguf(model, tmp_path / "m.gguf", "q8_0", tokenizer, progress=False)
    loaded, _ = apt_fast.load(tmp_path / "m.gguf")
    for path, layer in _layers(model).items():
        codes, scales = layer.quantized()
        loaded_codes, loaded_scales = loaded.get_submodule(path).quantized()
        assert torch.equal(loaded_codes, codes), path  # the codes as they are
        assert torch.equal(loaded_scales, scales.half().float()), path
        assert ((loaded_scales - scales).abs() <= scales * 2**-11).all(), path


def test_a_q8_0_model_reexports_the_same_bytes(tmp_path, make_model, tokenizer):
    model = make_model(tie_word_embeddings=False, d_ff=80)  # rows of 80 inputs: F16, not Q8_0
    first, again = tmp_path / "first.gguf", tmp_path / "again.gguf"
    export_gguf(model, first, "q8_0", tokenizer, progress=False)
    loaded, _ = apt_fast.load(first)
    export_gguf(loaded, again, "q8_0", tokenizer, progress=False)
    assert _tensor_bytes(again) == _tensor_bytes(first)

    apt_fast.save(loaded, tmp_path / "saved")  # and through a saved directory and the command line
    via_directory = tmp_path / "via-directory.gguf"
    assert main(["export-gguf", "--model-path", str(tmp_path / "saved"), "--output", str(via_directory),
                 "--type", "q8_0"]) == 0
    assert _tensor_bytes(via_directory) == _tensor_bytes(first)


@pytest.mark.parametrize("config, held", [
    (apt_fast.Int8WeightOnlyConfig(), "Int8Linear (int8_weight_only) with one scale per output channel"),
    (apt_fast.Int8DynamicConfig(group_size=64), "Int8Linear (int8_dynamic) with one scale per 64 inputs"),
    (apt_fast.Fp8WeightOnlyConfig("e5m2"), "Fp8Linear (fp8_e5m2_weight_only) with e5m2 FP8 codes"),
])
def test_layers_q8_0_cannot_hold_as_they_are_are_refused(tmp_path, make_model, tokenizer, config, held):
    model = make_model(d_model=128, d_ff=128)
    apt_fast.quantize(model, config)
    with pytest.raises(ValueError) as refused:
        export_gguf(model, tmp_path / "m.gguf", "q8_0", tokenizer, progress=False)
    assert str(refused.value) == (
        f"export_gguf: encoder_layers.0.self_attn.q_proj is {held}; q8_0 stores int8 codes with one scale per 32 "
        f"inputs, so it would have to quantize this layer again: quantize the float model with group_size 32 instead "
        f"(apt-fast quantize --scheme int8-weight-only --group-size 32), or export another type (f16, bf16, f32: the "
        f"dequantized weights)")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("config", [apt_fast.Int8DynamicConfig(), apt_fast.Fp8WeightOnlyConfig("e4m3")])
def test_other_types_write_the_dequantized_weights(tmp_path, model, tokenizer, config):
    apt_fast.quantize(model, config, include_embedding=True)
    export_gguf(model, tmp_path / "m.f32.gguf", "f32", tokenizer, progress=False)
    export_gguf(model, tmp_path / "m.f16.gguf", "f16", tokenizer, progress=False)
    exact, halved = apt_fast.load(tmp_path / "m.f32.gguf")[0], apt_fast.load(tmp_path / "m.f16.gguf")[0]
    for path, layer in _layers(model).items():
        assert torch.equal(exact.get_submodule(path).weight, layer.dequantized()), path
        assert torch.equal(halved.get_submodule(path).weight, layer.dequantized().half().float()), path
    assert torch.equal(exact.token_embedding.weight, model.output_projection.dequantized())


def test_an_int8_output_projection_of_an_untied_model(tmp_path, make_model, tokenizer):
    model = make_model(tie_word_embeddings=False)
    apt_fast.quantize(model, apt_fast.Int8WeightOnlyConfig(group_size=32),
                      lambda module, path: path == "output_projection")
    _fp16_scales(model)
    export_gguf(model, tmp_path / "m.gguf", "q8_0", tokenizer, progress=False)
    loaded, _ = apt_fast.load(tmp_path / "m.gguf")
    assert isinstance(loaded.output_projection, Int8Linear)
    assert torch.equal(loaded.output_projection.quantized()[0], model.output_projection.quantized()[0])
    assert torch.equal(loaded.output_projection.quantized()[1], model.output_projection.quantized()[1])
