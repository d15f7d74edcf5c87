"""``load_gguf(path) -> (model, tokenizer)``: rebuild an APT model from a GGUF file apt_fast wrote.

The config comes from the ``apt.*`` metadata, the tokenizer from the ``apt.tokenizer.*`` files, the
weights from the tensors, dequantized to float32 on load (F32 files therefore give the exported model's
exact weights). Names and shapes are checked against the model before anything is copied. The file
format itself (reader, metadata keys, tensor names) is apt_fast.gguf.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import torch

from ...gguf import metadata as meta
from ...gguf.dequantize import dequantize
from ...gguf.reader import GGUFError, GGUFFile, read_gguf
from ...gguf.tensor_names import state_dict_key
from ...gguf.tokenizer_files import tokenizer_files
from .configuration_apt import APTConfig
from .modeling_apt import APTModel
from .tokenization_apt import load_tokenizer


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


def load_gguf(path: str | os.PathLike, *, config_overrides: dict | None = None):
    """Rebuild ``(model, tokenizer)`` from a GGUF file written by :func:`apt_fast.export.export_gguf`.

    The model is float32, in eval mode, with the tokenizer attached as ``model.tokenizer``; ``tokenizer`` is
    None when the file stores none.
    """
    file = read_gguf(path)
    config = _config(file, config_overrides)
    tokenizer = _tokenizer(file)
    model = APTModel(config)
    expected = model.state_dict()
    keys = _match_tensors(file, expected, config.tie_word_embeddings)
    with torch.no_grad():
        for key, name in keys.items():
            expected[key].copy_(dequantize(file, name).reshape(expected[key].shape))
    model.tokenizer = tokenizer
    return model.eval(), tokenizer
