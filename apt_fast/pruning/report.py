"""PruneReport: what ``apt_fast.prune`` did to each layer, what it left alone and why; printable as a table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple


@dataclass(frozen=True)
class LayerPruning:
    """One pruned layer: its weight shape before pruning, how many of its weights remain, and the pattern."""

    name: str
    shape: Tuple[int, ...]
    kept: int
    total: int
    pattern: str  # "unstructured", "2:4", "block 32x32", "FFN neurons 48/64 (rows)", ...
    removed_rows: Tuple[int, ...] = ()  # structured pruning: the weight rows removed (indices before pruning) ...
    removed_columns: Tuple[int, ...] = ()  # ... and the columns

    @property
    def sparsity(self) -> float:
        """The fraction of the layer's weights that pruning set to zero or removed."""
        return 1.0 - self.kept / self.total if self.total else 0.0


@dataclass(frozen=True)
class PruneReport:
    """``layers``: one entry per pruned layer, in model order; ``skipped``: (module path, why) for every module
    with weights that was not pruned; ``notes``: what the method decided for the whole model."""

    method: str
    layers: Tuple[LayerPruning, ...]
    skipped: Tuple[Tuple[str, str], ...] = ()
    notes: Tuple[str, ...] = ()

    @property
    def kept(self) -> int:
        return sum(layer.kept for layer in self.layers)

    @property
    def total(self) -> int:
        return sum(layer.total for layer in self.layers)

    @property
    def sparsity(self) -> float:
        """Overall sparsity: zeroed or removed weights over all weights of the pruned layers."""
        return 1.0 - self.kept / self.total if self.total else 0.0

    def layer(self, name: str) -> LayerPruning:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no pruned layer named {name!r}; pruned: {', '.join(x.name for x in self.layers)}")

    def table(self) -> str:
        """The per-layer table: name, shape, kept/total weights, sparsity, pattern; then the skipped modules (one line
        per reason) and the notes."""
        rows = [("layer", "shape", "kept/total", "sparsity", "pattern")]
        rows += [(x.name, "x".join(map(str, x.shape)), f"{x.kept}/{x.total}", f"{100 * x.sparsity:.2f}%", x.pattern)
                 for x in self.layers]
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        lines: List[str] = [f"apt_fast.prune {self.method}: {len(self.layers)} layer(s) pruned, overall sparsity "
                            f"{100 * self.sparsity:.2f}% ({self.kept}/{self.total} weights kept)"]
        for row in rows:
            lines.append("  " + "  ".join(cell.ljust(w) if i in (0, 4) else cell.rjust(w)
                                          for i, (cell, w) in enumerate(zip(row, widths))).rstrip())
        by_reason: Dict[str, List[str]] = {}
        for path, reason in self.skipped:
            by_reason.setdefault(reason, []).append(path or "<root>")
        lines += [f"  skipped  {reason} ({len(paths)}): {', '.join(paths)}" for reason, paths in by_reason.items()]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()
