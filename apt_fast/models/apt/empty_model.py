"""An APT model whose weights are not initialised, for the loaders that set every tensor from a file and replace
some linear layers by quantized or sparse ones.

The model is built on the meta device (nothing allocated: the shapes are all a loader checks first), then given
uninitialised CPU storage, whose pages take no memory until written: a layer that is then swapped for a quantized
one never costs its float32 size, so loading a quantized model needs about its quantized size.
"""

from __future__ import annotations

import torch
from torch import nn

from ...modules.quantized_linear import QuantizedEmbedding
from ...modules.sparse_linear import SparseEmbedding
from .configuration_apt import APTConfig
from .modeling_apt import APTModel


def meta_model(config: APTConfig) -> APTModel:
    """The model ``config`` describes, on the meta device."""
    with torch.device("meta"):
        return APTModel(config)


def materialize(model: APTModel, dtype: torch.dtype) -> APTModel:
    """Uninitialised CPU storage in ``dtype`` for a :func:`meta_model` (every tensor must then be set); the output
    projection is tied to the embedding again (new storage means new Parameters). Call ``_add_gradient_hooks``
    once the layers are swapped."""
    model.to_empty(device="cpu")
    if model.config.tie_word_embeddings:
        model.output_projection.weight = model.token_embedding.weight
    return model.to(dtype)


def swap_in(model: nn.Module, path: str, module: nn.Module) -> None:
    """Put ``module`` where the layer ``path`` (a dotted module path) is."""
    parent, _, name = path.rpartition(".")
    setattr(model.get_submodule(parent), name, module)


def quantized_embedding(model: APTModel) -> None:
    """Make the tied input embedding look up the rows of the (quantized) output projection."""
    model.token_embedding = QuantizedEmbedding(model.output_projection, model.token_embedding.padding_idx)


def sparse_embedding(model: APTModel) -> None:
    """Make the tied input embedding look up the rows of the (sparse) output projection."""
    model.token_embedding = SparseEmbedding(model.output_projection, model.token_embedding.padding_idx)
