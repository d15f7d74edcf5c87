"""sparsity.png: what pruning did, for the pruning commands.

The first panel has one horizontal bar per pruned layer (its sparsity, in model order, top to bottom) and the
overall sparsity as a dashed line. A second panel, when a curve is given, plots the loss (left axis) and the exact
match (right axis) at a few points: prune-finetune's stages (dense, pruned, fine-tuned) or lottery-ticket's rounds
against their sparsity. Rendered with matplotlib's Agg canvas (no display, no global backend change) to PNG bytes,
so that a failure to draw happens before anything is written; :func:`write_plot` writes them atomically.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

from ..atomic import atomic_write


@dataclass(frozen=True)
class QualityCurve:
    """Loss and exact match (a fraction, or None where not measured) at each point; ``positions`` place the points
    on the x axis (sparsity in %, or 0, 1, 2 for stages) and ``labels`` name them."""

    x_label: str
    positions: Sequence[float]
    labels: Sequence[str]
    losses: Sequence[float]
    exact_matches: Sequence[Optional[float]]
    categorical: bool = False  # stages: the labels are the x ticks


def _layer_panel(ax, layers: Sequence[Tuple[str, float]], overall: float) -> None:
    names = [name for name, _ in layers]
    values = [100 * sparsity for _, sparsity in layers]
    positions = range(len(layers))
    ax.barh(positions, values, color="#4c72b0", height=0.7)
    ax.set_yticks(list(positions), names, fontsize=7 if len(layers) > 24 else 8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("sparsity (% of the layer's weights pruned)")
    ax.axvline(100 * overall, color="#c44e52", linestyle="--", linewidth=1)
    ax.set_title(f"per-layer sparsity (dashed: overall {100 * overall:.1f}%)", fontsize=9)  # no legend over a bar
    ax.grid(axis="x", alpha=0.3)


def _curve_panel(ax, curve: QualityCurve) -> None:
    losses = [loss if math.isfinite(loss) else float("nan") for loss in curve.losses]
    ax.plot(curve.positions, losses, "o-", color="#4c72b0", label="loss")
    ax.set_ylabel("loss", color="#4c72b0")
    ax.set_xlabel(curve.x_label)
    if curve.categorical:
        ax.set_xticks(list(curve.positions), list(curve.labels))
    else:
        for x, y, label in zip(curve.positions, losses, curve.labels):
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
    ax.grid(alpha=0.3)
    ax.set_title("loss and exact match", fontsize=9)
    measured = [(x, 100 * m) for x, m in zip(curve.positions, curve.exact_matches) if m is not None]
    if measured:
        right = ax.twinx()
        right.plot([x for x, _ in measured], [m for _, m in measured], "s--", color="#dd8452", label="exact match")
        right.set_ylabel("exact match (%)", color="#dd8452")
        right.set_ylim(0, 105)


def render_sparsity_plot(layers: Sequence[Tuple[str, float]], overall: float, title: str,
                         curve: Optional[QualityCurve] = None) -> bytes:
    """The PNG: per-layer sparsity bars (``layers``: (name, sparsity in [0, 1])) and, with ``curve``, the quality
    panel beside them."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    height = max(3.0, 0.2 * len(layers) + 1.4)
    figure = Figure(figsize=(13 if curve else 7.5, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2 if curve else 1, squeeze=False)[0]
    _layer_panel(axes[0], layers, overall)
    if curve is not None:
        _curve_panel(axes[1], curve)
    figure.suptitle(title, fontsize=10)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def write_plot(path: str | os.PathLike, png: bytes) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(png)

    atomic_write(path, write)
