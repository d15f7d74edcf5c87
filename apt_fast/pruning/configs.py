"""The pruning methods' settings, as frozen dataclasses validated on construction: each bad value is a ValueError
naming the argument, what was expected and what was given.

``ratio`` is the fraction of the weights (of the blocks, FFN neurons or heads for the structured configs) that
pruning sets to zero, rounded to the nearest count (halves up) per layer or, with ``scope="global"``, over all the
layers together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Tuple

from ..validation import check_choice

SCOPES = ("layer", "global")
BLOCKS = ((16, 16), (32, 32), (1, 16))
NM_GROUPS = (4, 8)
STRUCTURED_TARGETS = ("ffn", "heads")


def _check_ratio(name: str, ratio) -> None:
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)):
        raise ValueError(f"{name} must be a number in [0, 1), got {ratio!r}")
    if not 0 <= ratio < 1:  # nan too
        raise ValueError(f"{name} must be in [0, 1), got {ratio!r}")


@dataclass(frozen=True)
class MagnitudePruneConfig:
    """Unstructured pruning of the smallest |w|, per layer (``scope="layer"``) or over all layers at once
    (``"global"``). A linear layer whose weight is tied to an input embedding (the APT output projection) is
    pruned once, as one tensor, at its own ``embedding_ratio`` (None: left dense), outside the global pool; the
    embedding shares the mask, so the tie is kept."""

    ratio: float
    scope: str = "layer"
    embedding_ratio: Optional[float] = None

    def __post_init__(self) -> None:
        _check_ratio("ratio", self.ratio)
        check_choice("scope", self.scope, SCOPES)
        if self.embedding_ratio is not None:
            _check_ratio("embedding_ratio", self.embedding_ratio)


@dataclass(frozen=True)
class NMPruneConfig:
    """N:M semi-structured pruning: in every group of ``m`` consecutive inputs of a row, the ``n`` largest |w| are
    kept (2:4 and 4:8 are the patterns the sparse kernels read). in_features must be a multiple of ``m``."""

    n: int = 2
    m: int = 4

    def __post_init__(self) -> None:
        if isinstance(self.m, bool) or not isinstance(self.m, int) or self.m not in NM_GROUPS:
            raise ValueError(f"m must be one of {', '.join(map(str, NM_GROUPS))}, got {self.m!r}")
        if isinstance(self.n, bool) or not isinstance(self.n, int) or not 1 <= self.n < self.m:
            raise ValueError(f"n must be an int in [1, {self.m - 1}] (fewer than m={self.m}), got {self.n!r}")


@dataclass(frozen=True)
class BlockPruneConfig:
    """Block pruning: the weight is cut into ``block`` = (rows, inputs) tiles and the tiles of smallest L2 norm are
    removed whole, ``ratio`` of the tiles in each layer. The block must tile the weight exactly."""

    ratio: float
    block: Tuple[int, int] = (32, 32)

    def __post_init__(self) -> None:
        _check_ratio("ratio", self.ratio)
        block = tuple(self.block) if isinstance(self.block, (tuple, list)) else self.block
        if block not in BLOCKS:
            raise ValueError(f"block must be one of {', '.join(map(str, BLOCKS))}, got {self.block!r}")
        object.__setattr__(self, "block", block)


@dataclass(frozen=True)
class StructuredPruneConfig:
    """Structured pruning that removes whole units and shrinks the layers: ``target="ffn"`` removes the FFN hidden
    neurons (rows of the first linear, columns of the second) of smallest ||w_in|| * ||w_out||; ``"heads"`` removes
    the attention heads of smallest L2 norm over their q/k/v rows and out_proj columns. The same number of units
    goes from every layer (``ratio`` of each); the model's config (``d_ff``; ``num_heads`` and ``head_dim``) is
    updated, so the result saves and loads as a smaller ordinary model."""

    ratio: float
    target: str = "ffn"

    def __post_init__(self) -> None:
        _check_ratio("ratio", self.ratio)
        check_choice("target", self.target, STRUCTURED_TARGETS)


@dataclass(frozen=True)
class TaylorPruneConfig:
    """Unstructured pruning by first-order saliency |w * dL/dw|, summed over the calibration batches, per layer or
    global (default, as upstream). ``loss_fn(model, batch) -> scalar`` gives each batch's loss; without it the loss
    is the model's output on the batch when that is a scalar, or its ``.loss`` (a batch with labels)."""

    ratio: float
    scope: str = "global"
    loss_fn: Optional[Callable] = None

    def __post_init__(self) -> None:
        _check_ratio("ratio", self.ratio)
        check_choice("scope", self.scope, SCOPES)
        if self.loss_fn is not None and not callable(self.loss_fn):
            raise ValueError(f"loss_fn must be None or a callable (model, batch) -> scalar loss, got "
                             f"{type(self.loss_fn).__name__}")


@dataclass(frozen=True)
class WandaPruneConfig:
    """Wanda: score |w[n, k]| * ||x[:, k]||_2, the input column norms gathered from calibration batches with
    forward hooks, and prune ``ratio`` of each output row (each row's inputs compete, as in the Wanda paper)."""

    ratio: float

    def __post_init__(self) -> None:
        _check_ratio("ratio", self.ratio)


CONFIGS = (MagnitudePruneConfig, NMPruneConfig, BlockPruneConfig, StructuredPruneConfig, TaylorPruneConfig,
           WandaPruneConfig)
