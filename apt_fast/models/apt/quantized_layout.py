"""A quantized APT checkpoint's layout: config.json's ``quantization_config`` (written by apt_fast.quantize) and
what it promises about model.safetensors, checked before any tensor is loaded.

``quantization_config`` = {quant_method: "apt_fast", scheme, the scheme's settings, modules: [paths of the
quantized nn.Linear layers], include_embedding}. Each listed layer stores ``<path>.qweight`` [out, in] (int8,
float8_e4m3fn or float8_e5m2), ``<path>.scales`` [out, in / group] float32 and its bias; when the tied
``output_projection`` is listed (include_embedding), the input embedding stores nothing: it looks up the
projection's rows. Every disagreement between
the entry and the tensors is a CheckpointError naming the layer, what the entry expects and what the file holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ...quantization.configs import Fp8WeightOnlyConfig, config_from_dict
from ...reference.quantized_linear import FP8_FORMATS
from .errors import CheckpointError
from .shape_check import EMBEDDING, OUTPUT

QUANTIZATION_CONFIG = "quantization_config"
OUTPUT_LAYER = OUTPUT.removesuffix(".weight")


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


@dataclass(frozen=True)
class QuantizedLayout:
    """A parsed ``quantization_config``: ``config`` (Int8DynamicConfig, Int8WeightOnlyConfig or
    Fp8WeightOnlyConfig), the quantized layers' paths, include_embedding, and ``entry``, the dict as saved."""

    config: object
    modules: tuple[str, ...]
    include_embedding: bool
    entry: dict

    @property
    def code_dtype(self) -> torch.dtype:
        """The dtype of every ``qweight``."""
        if isinstance(self.config, Fp8WeightOnlyConfig):
            return FP8_FORMATS[self.config.format][1]
        return torch.int8

    def describe(self) -> str:
        """e.g. 'int8 (int8_weight_only)'."""
        return f"{_name(self.code_dtype)} ({self.config.scheme})"

    def group(self, linear: nn.Linear) -> int:
        """Inputs per scale of ``linear`` once quantized."""
        return self.config.group_for(linear) or linear.in_features

    def quantizes_embedding(self, tied: bool) -> bool:
        """Whether the input embedding is a QuantizedEmbedding: the output projection it is tied to is listed."""
        return tied and OUTPUT_LAYER in self.modules


def split_quantization_config(saved: dict, source: str) -> tuple[dict, QuantizedLayout | None]:
    """(``saved`` without its quantization_config, the layout it describes or None). Taken out before the
    APTConfig is built: transformers reads ``quantization_config`` as one of its own quantizers'."""
    saved = dict(saved)
    entry = saved.pop(QUANTIZATION_CONFIG, None)
    if entry is None:
        return saved, None
    try:
        config = config_from_dict(entry)
    except ValueError as err:
        raise CheckpointError(f"{source}: {err}") from None
    modules, include_embedding = entry.get("modules"), entry.get("include_embedding", False)
    if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
        raise CheckpointError(f"{source}: quantization_config.modules must be a list of layer paths, got {modules!r}")
    if not isinstance(include_embedding, bool):
        raise CheckpointError(f"{source}: quantization_config.include_embedding must be true or false, got "
                              f"{include_embedding!r}")
    return saved, QuantizedLayout(config, tuple(modules), include_embedding, dict(entry))


def _linear(model: nn.Module, path: str, source: str) -> nn.Linear:
    try:
        module = model.get_submodule(path)
    except AttributeError:
        module = None
    if not isinstance(module, nn.Linear):
        found = "no such layer" if module is None else type(module).__name__
        raise CheckpointError(f"{source}: quantization_config lists {path}, which is not a linear layer of this "
                              f"model ({found})")
    return module


def _held(state_dict: dict, key: str) -> str:
    value = state_dict[key]
    return f"{key} ({_name(value.dtype)})"


def _check_layer(layout: QuantizedLayout, path: str, linear: nn.Linear, state_dict: dict, source: str) -> None:
    lists_it = f"{source}: {path}: quantization_config lists it as {layout.describe()}, but the checkpoint holds"
    qweight, scales = state_dict.get(f"{path}.qweight"), state_dict.get(f"{path}.scales")
    if qweight is None:
        held = _held(state_dict, f"{path}.weight") if f"{path}.weight" in state_dict else f"no {path}.qweight"
        raise CheckpointError(f"{lists_it} {held}")
    if qweight.dtype != layout.code_dtype:
        raise CheckpointError(f"{lists_it} {_held(state_dict, f'{path}.qweight')}")
    if scales is None:
        raise CheckpointError(f"{lists_it} no {path}.scales")
    out, inputs, group = linear.out_features, linear.in_features, layout.group(linear)
    if tuple(qweight.shape) != (out, inputs):
        raise CheckpointError(f"{source}: {path}.qweight: expected shape {[out, inputs]} (the layer's out x in "
                              f"features), the checkpoint holds {list(qweight.shape)}")
    expected = [out, inputs // group]
    if scales.dtype != torch.float32 or list(scales.shape) != expected:
        raise CheckpointError(f"{source}: {path}.scales: quantization_config ({layout.config.scheme}, {group} "
                              f"inputs per scale) needs float32 {expected}, the checkpoint holds "
                              f"{_name(scales.dtype)} {list(scales.shape)}")


def check_no_unlisted_qweight(layout: QuantizedLayout | None, state_dict: dict, source: str) -> None:
    """No layer but those ``layout`` lists (None: the config has no quantization_config) holds a qweight."""
    listed = set(layout.modules) if layout is not None else set()
    for key in state_dict:
        path = key.removesuffix(".qweight")
        if key.endswith(".qweight") and path not in listed:
            why = ("quantization_config does not list it" if layout is not None
                   else "config.json has no quantization_config")
            raise CheckpointError(f"{source}: {path}: the checkpoint holds {_held(state_dict, key)}, but {why}")


def check_quantized_tensors(layout: QuantizedLayout, model: nn.Module, state_dict: dict, source: str) -> None:
    """Check ``state_dict`` against ``layout`` and ``model`` (the unquantized model the config describes, e.g. on
    the meta device): every listed layer is an nn.Linear of the model with a qweight / scales of the scheme's dtype
    and shapes; a listed tied output projection comes with include_embedding and no token_embedding.weight."""
    for path in layout.modules:
        _check_layer(layout, path, _linear(model, path, source), state_dict, source)
    embedding = layout.quantizes_embedding(bool(model.config.tie_word_embeddings))
    if embedding and not layout.include_embedding:
        raise CheckpointError(f"{source}: quantization_config lists {OUTPUT_LAYER}, which is tied to the input "
                              f"embedding (tie_word_embeddings), but has include_embedding false; quantizing a tied "
                              f"{OUTPUT_LAYER} quantizes the embedding too (include_embedding true)")
    if embedding and EMBEDDING in state_dict:
        raise CheckpointError(f"{source}: token_embedding: quantization_config has include_embedding true (the "
                              f"embedding looks up the quantized {OUTPUT_LAYER}), but the checkpoint holds "
                              f"{_held(state_dict, EMBEDDING)}")


def expected_shapes(layout: QuantizedLayout, model: nn.Module) -> dict[str, tuple[int, ...]]:
    """{state_dict key: shape} of the quantized model: ``model``'s (unquantized) state_dict with each listed
    layer's weight replaced by its qweight and scales, and no embedding weight when the tied projection is listed."""
    shapes = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    for path in layout.modules:
        linear = model.get_submodule(path)
        del shapes[f"{path}.weight"]
        shapes[f"{path}.qweight"] = (linear.out_features, linear.in_features)
        shapes[f"{path}.scales"] = (linear.out_features, linear.in_features // layout.group(linear))
    if layout.quantizes_embedding(bool(model.config.tie_word_embeddings)):
        del shapes[EMBEDDING]
    return shapes
