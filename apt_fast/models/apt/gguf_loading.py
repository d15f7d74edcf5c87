"""``load_gguf(path) -> (model, tokenizer)``: rebuild an APT model from a GGUF file apt_fast wrote.

The config comes from the ``apt.*`` metadata, the tokenizer from the ``apt.tokenizer.*`` files, the
weights from the tensors. A Q8_0 weight matrix stays int8: its layer becomes an Int8Linear, weight-only, group
size 32, holding the file's codes and (as float32, exactly) its fp16 scales, and a Q8_0 tied embedding becomes a
QuantizedEmbedding of that output projection; the model records them as its ``quantization_config`` (so
apt_fast.save writes them as they are, and export_gguf writes the same Q8_0 bytes again). The model therefore
takes about the file's size in memory, not four times it. Every other tensor (F32, F16, BF16, the 4- and 5-bit
block types, and a Q8_0 embedding that is not tied) is dequantized to float32; F32 files give the exported
model's exact weights. Names and shapes are checked against the model before anything is read. The file format
itself (reader, metadata keys, tensor names, Q8_0 blocks) is apt_fast.gguf.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import torch
from torch import nn

from ...gguf import metadata as meta
from ...gguf.dequantize import dequantize
from ...gguf.q8_0 import codes_and_scales
from ...gguf.reader import GGUFError, GGUFFile, read_gguf
from ...gguf.tensor_names import state_dict_key
from ...gguf.tokenizer_files import tokenizer_files
from ...quantization.configs import Int8WeightOnlyConfig, config_to_dict
from .configuration_apt import APTConfig
from .empty_model import materialize, meta_model, quantized_embedding, swap_in
from .modeling_apt import APTModel
from .shape_check import EMBEDDING, OUTPUT
from .tokenization_apt import load_tokenizer

Q8_0_CONFIG = Int8WeightOnlyConfig(group_size=32)  # what a Q8_0 weight matrix loads as


def _config(file: GGUFFile, overrides: dict | None) -> APTConfig:
    architecture = file.metadata.get("general.architecture")
    if architecture != meta.ARCHITECTURE:
        raise GGUFError(f"{file.path}: general.architecture is {architecture!r}, not 'apt'; apt_fast imports "
                        f"only APT models")
    fields = {**meta.config_fields(file.metadata, file.path), **(overrides or {})}
    try:
        return APTConfig(**fields)
    except (TypeError, ValueError) as err:
        raise GGUFError(f"{file.path}: the metadata gives an invalid APT config: {err}") from err


def _tokenizer(file: GGUFFile):
    """The tokenizer saved in the file's metadata, or None when the file carries none."""
    files = tokenizer_files(file.metadata, file.path)
    if files is None:
        return None
    with tempfile.TemporaryDirectory() as directory:
        for name, content in files.items():
            with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
                f.write(content)
        try:
            return load_tokenizer(directory)
        except (OSError, ValueError, KeyError) as err:
            raise GGUFError(f"{file.path}: the tokenizer stored in the file cannot be loaded: {err}") from err


def _match_tensors(file: GGUFFile, expected: dict[str, torch.Tensor], tied: bool) -> dict[str, str]:
    """state_dict key -> GGUF name, after checking that names and element counts match the model."""
    keys, unknown = {}, []
    for name in file.tensors:
        key = state_dict_key(name)
        if key is None or key not in expected:
            unknown.append(name)
        else:
            keys[key] = name
    optional = {"output_projection.weight"} if tied else set()
    missing = [key for key in expected if key not in keys and key not in optional]
    if unknown or missing:
        raise GGUFError(f"{file.path}: tensors do not match the APT config in its metadata: missing "
                        f"{missing}, unexpected {unknown}")
    for key, name in keys.items():
        have, want = file.tensors[name].shape, tuple(expected[key].shape)
        if int(np.prod(have)) != expected[key].numel() or [d for d in have if d != 1] != [d for d in want if d != 1]:
            raise GGUFError(f"{file.path}: tensor {name} has shape {list(have)}, the config needs {list(want)}")
    return keys


def _q8_0_layers(file: GGUFFile, keys: dict[str, str], model: APTModel) -> dict[str, str]:
    """Layer path -> GGUF name of each linear layer stored as Q8_0 (the tied embedding's tensor standing for the
    output projection it is tied to)."""
    layers = {}
    for key, name in keys.items():
        if file.tensors[name].qtype.name != "q8_0" or not key.endswith(".weight"):
            continue
        if key == EMBEDDING and model.config.tie_word_embeddings:
            layers[OUTPUT.removesuffix(".weight")] = name
        elif isinstance(model.get_submodule(key.removesuffix(".weight")), nn.Linear):
            layers[key.removesuffix(".weight")] = name
    return layers


def _int8_layer(file: GGUFFile, name: str, linear: nn.Linear) -> nn.Module:
    layer = Q8_0_CONFIG.empty(linear.in_features, linear.out_features, linear.bias is not None)
    layer.set_quantized(*codes_and_scales(file.raw(name), (linear.out_features, linear.in_features)))
    return layer.eval()


def _tensor(model: nn.Module, key: str) -> torch.Tensor:
    module, _, attribute = key.rpartition(".")
    return getattr(model.get_submodule(module), attribute)


def load_gguf(path: str | os.PathLike, *, config_overrides: dict | None = None):
    """Rebuild ``(model, tokenizer)`` from a GGUF file written by :func:`apt_fast.export.export_gguf`.

    The model is float32 (its Q8_0 weight matrices int8, see the module's description), in eval mode, with the
    tokenizer attached as ``model.tokenizer``; ``tokenizer`` is None when the file stores none.
    """
    file = read_gguf(path)
    config = _config(file, config_overrides)
    tokenizer = _tokenizer(file)
    model = meta_model(config)
    keys = _match_tensors(file, model.state_dict(), config.tie_word_embeddings)
    layers = _q8_0_layers(file, keys, model)
    materialize(model, torch.float32)
    tied_q8_0 = OUTPUT.removesuffix(".weight") in layers and config.tie_word_embeddings
    with torch.no_grad():
        for layer, name in layers.items():
            swap_in(model, layer, _int8_layer(file, name, model.get_submodule(layer)))
        if tied_q8_0:
            quantized_embedding(model)
        for key, name in keys.items():
            if key.removesuffix(".weight") in layers or (key == EMBEDDING and tied_q8_0):
                continue
            tensor = _tensor(model, key)
            tensor.copy_(dequantize(file, name).reshape(tensor.shape))
    if layers:
        model.config.quantization_config = {**config_to_dict(Q8_0_CONFIG), "modules": sorted(layers),
                                            "include_embedding": tied_q8_0}
    model._add_gradient_hooks()
    model.tokenizer = tokenizer
    return model.eval(), tokenizer
