"""A sparse APT checkpoint's layout: config.json's ``sparsity_config`` (written by apt_fast.sparsify) and what it
promises about model.safetensors, checked before any layer is built.

``sparsity_config`` = {format_version, layers: {path: {format, dtype, the format's options (n, m or block),
m_buckets, dense_m}}, include_embedding}. Each listed layer stores ``<path>.values`` and its format's structure
tensors (``<path>.bitmap`` and ``<path>.row_offsets``; ``<path>.indices``; ``<path>.block_row_offsets`` and
``<path>.block_columns``; ``<path>.scales`` with int8 values) plus its bias; with include_embedding the tied input
embedding stores nothing (it looks up the sparse output projection's rows). Every disagreement is a
CheckpointError naming the file, the layer, what was expected and what the file holds.

transformers' ``from_pretrained`` of such a directory is refused (:mod:`.hf_sparsity`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

import torch
from torch import Tensor, nn

from ...modules.sparse_linear import Route
from ...sparsity.formats import FORMATS, SparseWeight
from .errors import CheckpointError
from .hf_sparsity import SPARSITY_CONFIG
from .shape_check import EMBEDDING, OUTPUT

SPARSE_VALUES = "values"
OUTPUT_LAYER = OUTPUT.removesuffix(".weight")


@dataclass(frozen=True)
class SparseLayout:
    """A parsed ``sparsity_config``: each sparse layer's format options and route, include_embedding, and
    ``entry``, the dict as saved."""

    layers: Dict[str, dict]
    routes: Dict[str, Route]
    include_embedding: bool
    entry: dict

    def describe(self, path: str) -> str:
        """e.g. 'bitmap float32'."""
        options = self.layers[path]
        return f"{options['format']} {options.get('dtype')}"

    def tensor_keys(self, path: str, state_dict: dict) -> list[str]:
        """The keys of ``state_dict`` that hold the sparse layer ``path``'s values and structure (not its bias)."""
        prefix = f"{path}."
        return [key for key in state_dict if key.startswith(prefix) and "." not in key[len(prefix):]
                and key[len(prefix):] not in ("bias", "weight", "weight_mask")]


def _layer_entry(path: str, options, source: str) -> tuple[dict, Route]:
    if not isinstance(options, dict):
        raise CheckpointError(f"{source}: sparsity_config.layers[{path!r}] must be an object, got {options!r}")
    if options.get("format") not in FORMATS:
        raise CheckpointError(f"{source}: sparsity_config.layers[{path!r}].format must be one of "
                              f"{', '.join(map(repr, sorted(FORMATS)))}, got {options.get('format')!r}")
    buckets, dense = options.get("m_buckets", [1]), options.get("dense_m", [])
    try:
        route = Route(tuple(buckets), tuple(b in dense for b in buckets))
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{source}: sparsity_config.layers[{path!r}].m_buckets: {err}") from None
    if not isinstance(dense, list) or not set(dense) <= set(route.buckets):
        raise CheckpointError(f"{source}: sparsity_config.layers[{path!r}].dense_m must be a list of its m_buckets "
                              f"{list(route.buckets)}, got {dense!r}")
    return {k: v for k, v in options.items() if k not in ("m_buckets", "dense_m")}, route


def split_sparsity_config(saved: dict, source: str) -> tuple[dict, SparseLayout | None]:
    """(``saved`` without its sparsity_config, the layout it describes or None)."""
    saved = dict(saved)
    entry = saved.pop(SPARSITY_CONFIG, None)
    if entry is None:
        return saved, None
    layers = entry.get("layers") if isinstance(entry, dict) else None
    if not isinstance(layers, dict) or not layers:
        raise CheckpointError(f"{source}: sparsity_config.layers must map layer paths to their formats, got "
                              f"{layers!r}")
    include_embedding = entry.get("include_embedding", False)
    if not isinstance(include_embedding, bool):
        raise CheckpointError(f"{source}: sparsity_config.include_embedding must be true or false, got "
                              f"{include_embedding!r}")
    parsed = {path: _layer_entry(path, options, source) for path, options in layers.items()}
    return saved, SparseLayout({p: o for p, (o, _) in parsed.items()}, {p: r for p, (_, r) in parsed.items()},
                               include_embedding, dict(entry))


def check_no_unlisted_sparse(layout: SparseLayout | None, state_dict: dict, source: str) -> None:
    """No layer but those ``layout`` lists (None: the config has no sparsity_config) holds sparse values."""
    listed = set(layout.layers) if layout is not None else set()
    for key, value in state_dict.items():
        path = key.removesuffix(f".{SPARSE_VALUES}")
        if key.endswith(f".{SPARSE_VALUES}") and path not in listed:
            why = "sparsity_config does not list it" if layout is not None else "config.json has no sparsity_config"
            raise CheckpointError(f"{source}: {path}: the checkpoint holds {key} "
                                  f"({str(value.dtype).removeprefix('torch.')} sparse values), but {why}")


def _linear(model: nn.Module, path: str, source: str) -> nn.Linear:
    try:
        module = model.get_submodule(path)
    except AttributeError:
        module = None
    if not isinstance(module, nn.Linear):
        found = "no such layer" if module is None else type(module).__name__
        raise CheckpointError(f"{source}: sparsity_config lists {path}, which is not a linear layer of this model "
                              f"({found})")
    return module


def sparse_weights(layout: SparseLayout, model: nn.Module, state_dict: Dict[str, Tensor],
                   source: str) -> Dict[str, SparseWeight]:
    """path -> the listed layer's SparseWeight rebuilt from ``state_dict`` and checked against the layer of ``model``
    (the dense model the config describes, e.g. on the meta device): its shape, the format's tensors, their
    dtypes and their agreement (offsets and counts against the bitmap, positions, block columns)."""
    weights = {}
    for path, options in layout.layers.items():
        linear = _linear(model, path, source)
        values = state_dict.get(f"{path}.{SPARSE_VALUES}")
        if values is None:
            held = f"{path}.weight" if f"{path}.weight" in state_dict else f"no {path}.{SPARSE_VALUES}"
            raise CheckpointError(f"{source}: {path}: sparsity_config lists it as {layout.describe(path)}, but the "
                                  f"checkpoint holds {held}")
        structure = {key.removeprefix(f"{path}."): state_dict[key] for key in layout.tensor_keys(path, state_dict)
                     if key != f"{path}.{SPARSE_VALUES}"}
        try:
            weights[path] = FORMATS[options["format"]].from_state(linear.out_features, linear.in_features, options,
                                                                  values, structure)
        except ValueError as err:
            raise CheckpointError(f"{source}: {path} ({layout.describe(path)}, {linear.out_features}x"
                                  f"{linear.in_features}): {err}") from None
    if layout.include_embedding:
        if OUTPUT_LAYER not in layout.layers:
            raise CheckpointError(f"{source}: sparsity_config has include_embedding true, but does not list "
                                  f"{OUTPUT_LAYER}, whose rows the embedding would look up")
        if EMBEDDING in state_dict:
            raise CheckpointError(f"{source}: token_embedding: sparsity_config has include_embedding true (the "
                                  f"embedding looks up the sparse {OUTPUT_LAYER}), but the checkpoint holds "
                                  f"{EMBEDDING}")
    elif OUTPUT_LAYER in layout.layers and model.config.tie_word_embeddings:
        raise CheckpointError(f"{source}: sparsity_config lists {OUTPUT_LAYER}, which is tied to the input embedding "
                              f"(tie_word_embeddings), but has include_embedding false; a sparse tied {OUTPUT_LAYER} "
                              f"makes the embedding sparse too (include_embedding true)")
    return weights


def dense_shapes(layout: SparseLayout, shapes: Dict[str, tuple]) -> Dict[str, tuple]:
    """{key: shape} of the model's other tensors: ``shapes`` (the dense or quantized model's) without the listed
    layers' weights, nor the embedding's when it looks up the sparse projection."""
    dropped = {f"{path}.weight" for path in layout.layers}
    if layout.include_embedding:
        dropped.add(EMBEDDING)
    return {key: shape for key, shape in shapes.items() if key not in dropped}


def dense_dtype_of(state_dict: Dict[str, Tensor]) -> torch.dtype:
    """The dtype of the checkpoint's float tensors (the dense model's), which the sparse layers' dense paths use."""
    for key in (EMBEDDING, "positional_encoding.pe"):
        if key in state_dict:
            return state_dict[key].dtype
    return torch.float32
