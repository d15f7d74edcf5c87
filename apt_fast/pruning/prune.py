"""apt_fast.prune(model, config, calibration=None): prune a model's linear layers in place and report it."""

from __future__ import annotations

from typing import Iterable, Optional

from torch import nn

from . import methods  # noqa: F401  (registers every method)
from .configs import CONFIGS
from .layers import FilterFn, model_layers
from .registry import METHODS
from .report import PruneReport


def prune(model: nn.Module, config, calibration: Optional[Iterable] = None, *,
          filter_fn: Optional[FilterFn] = None) -> PruneReport:
    """Prune ``model`` in place with ``config`` and return what was done, layer by layer.

    config: MagnitudePruneConfig, NMPruneConfig, BlockPruneConfig, StructuredPruneConfig, TaylorPruneConfig or
    WandaPruneConfig. The mask-based methods zero weights of the model's nn.Linear layers and keep them zero through
    training (:mod:`apt_fast.pruning.masks`); StructuredPruneConfig removes FFN neurons or attention heads and
    shrinks the layers and the model's config. ``calibration`` (Taylor, Wanda): an iterable of batches, each a dict
    (``model(**batch)``), a tuple or list (``model(*batch)``) or a tensor (``model(batch)``). ``filter_fn(module,
    path) -> bool`` selects the linear layers to prune (default: all); the others are reported as skipped.
    """
    if type(config) not in METHODS:
        names = ", ".join(c.__name__ for c in CONFIGS)
        raise ValueError(f"config must be one of {names}, got {type(config).__name__}")
    return METHODS[type(config)](model, config, calibration, model_layers(model, filter_fn))
