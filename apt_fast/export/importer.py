"""``load_gguf(path) -> (model, tokenizer)``: rebuild an APT model from a GGUF file apt_fast wrote.

The config comes from the ``apt.*`` metadata, the tokenizer from the ``apt.tokenizer.*`` files, the
weights from the tensors, dequantized to float32 on load (F32 files therefore give the exported model's
exact weights). Names and shapes are checked against the model before anything is copied.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from . import metadata as meta
from .reader import GGUFError, GGUFFile, read_gguf
from .tensor_names import state_dict_key
from .tokenizer_metadata import tokenizer_from_metadata


def dequantize(file: GGUFFile, name: str) -> torch.Tensor:
    """Tensor ``name`` as float32 in its PyTorch shape."""
    info = file.tensors[name]
    raw = file.raw(name)
    kind = info.qtype.name
    if kind == "f32":
        values = raw.view(np.float32).copy()
    elif kind == "f16":
        values = raw.view(np.float16).astype(np.float32)
    elif kind == "bf16":
        values = (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    else:
        import gguf

        blocks = raw.reshape(-1, info.qtype.type_size)
        values = gguf.quants.dequantize(blocks, gguf.GGMLQuantizationType(info.qtype.ggml_id))
    return torch.from_numpy(values.reshape(info.shape))


def _config(file: GGUFFile, overrides: dict | None):
    from ..models.apt import APTConfig

    architecture = file.metadata.get("general.architecture")
    if architecture != meta.ARCHITECTURE:
        raise GGUFError(f"{file.path}: general.architecture is {architecture!r}, not 'apt'; apt_fast imports "
                        f"only APT models")
    fields = {**meta.config_fields(file.metadata, file.path), **(overrides or {})}
    try:
        return APTConfig(**fields)
    except (TypeError, ValueError) as err:
        raise GGUFError(f"{file.path}: the metadata gives an invalid APT config: {err}") from err


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


def load_gguf(path: str | os.PathLike, *, config_overrides: dict | None = None):
    """Rebuild ``(model, tokenizer)`` from a GGUF file written by :func:`apt_fast.export.export_gguf`.

    The model is float32, in eval mode; ``tokenizer`` is None when the file stores none.
    """
    from ..models.apt import APTModel

    file = read_gguf(path)
    config = _config(file, config_overrides)
    tokenizer = tokenizer_from_metadata(file.metadata, file.path)
    model = APTModel(config)
    expected = model.state_dict()
    keys = _match_tensors(file, expected, config.tie_word_embeddings)
    with torch.no_grad():
        for key, name in keys.items():
            expected[key].copy_(dequantize(file, name).reshape(expected[key].shape))
    return model.eval(), tokenizer
