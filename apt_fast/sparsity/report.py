"""SparsifyReport: what ``apt_fast.sparsify`` did to each pruned layer (format, dtype, sparsity, the measured speedup
at each row count, the path each row count takes), which layers it left dense and why; ``str()`` is a table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Tuple

from ..patching.report import SwapReport


@dataclass(frozen=True)
class LayerDecision:
    """One layer the dispatcher looked at: ``kind`` is the format as 'bitmap fp32', '2:4 bf16', ...;
    ``speedups`` M -> dense time / sparse time; ``route`` the path per M ('sparse', 'dense', or mixed);
    ``dense_reason`` why the layer stayed dense ('' when it was converted)."""

    path: str
    shape: Tuple[int, int]
    sparsity: float
    kind: str = ""
    speedups: Dict[int, float] = field(default_factory=dict)
    route: str = ""
    bytes_before: int = 0
    bytes_after: int = 0
    dense_copy_bytes: int = 0
    dense_reason: str = ""

    @property
    def converted(self) -> bool:
        return not self.dense_reason


@dataclass
class SparsifyReport(SwapReport):
    action = "apt_fast.sparsify"
    min_speedup: float = 1.05
    m_buckets: Tuple[int, ...] = ()
    layers: List[LayerDecision] = field(default_factory=list)

    @property
    def converted(self) -> List[LayerDecision]:
        return [layer for layer in self.layers if layer.converted]

    @property
    def kept_dense(self) -> List[LayerDecision]:
        return [layer for layer in self.layers if not layer.converted]

    def layer(self, path: str) -> LayerDecision:
        for layer in self.layers:
            if layer.path == path:
                return layer
        raise KeyError(f"no layer {path!r} in the report; it has: {', '.join(x.path for x in self.layers)}")

    @property
    def bytes_before(self) -> int:
        """Weights of the converted layers before (their dense dtype) ..."""
        return sum(layer.bytes_before for layer in self.converted)

    @property
    def bytes_after(self) -> int:
        """... and after (values and structure)."""
        return sum(layer.bytes_after for layer in self.converted)

    @property
    def dense_copy_bytes(self) -> int:
        """Memory of the dense copies kept for the row counts where dense is faster (and for a tied embedding)."""
        return sum(layer.dense_copy_bytes for layer in self.converted)

    def _table(self) -> List[str]:
        header = ("layer", "shape", "sparsity", "format", *(f"M={m}" for m in self.m_buckets), "path")
        rows = [header]
        for layer in self.layers:
            speedups = [f"{layer.speedups[m]:.2f}x" if m in layer.speedups else "-" for m in self.m_buckets]
            path = layer.route if layer.converted else f"dense: {layer.dense_reason}"
            rows.append((layer.path, "x".join(map(str, layer.shape)), f"{100 * layer.sparsity:.1f}%",
                         layer.kind or "-", *speedups, path))
        widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
        return ["  " + "  ".join(cell.ljust(w) if i in (0, 3) else cell.rjust(w)
                                 for i, (cell, w) in enumerate(zip(row[:-1], widths))) + "  " + row[-1]
                for row in rows]

    def lines(self) -> List[str]:
        converted, dense = self.converted, self.kept_dense
        lines = [f"{self.action}: {len(converted)} layer(s) sparse, {len(dense)} left dense (speedup = dense time / "
                 f"sparse time; sparse where >= {self.min_speedup:g}x)"]
        if converted:
            ratio = self.bytes_after / max(self.bytes_before, 1)
            lines.append(f"  weights of the sparse layers: {self.bytes_before / 2**20:.2f} MiB -> "
                         f"{self.bytes_after / 2**20:.2f} MiB ({ratio:.3f}x)")
        if self.dense_copy_bytes:
            lines.append(f"  dense copies kept for the row counts where dense is faster (or a tied embedding's "
                         f"lookups): {self.dense_copy_bytes / 2**20:.2f} MiB")
        if self.layers:
            lines += self._table()
        lines += [f"  swapped     {path}: {old} -> {new}" for path, old, new in self.swapped if old == "Embedding"]
        lines += [f"  left alone  {path or '<root>'}: {reason}" for path, reason in self.left_alone]
        return lines

    def dense_reasons(self) -> Dict[str, str]:
        """path -> why the layer stayed dense, for every layer the dispatcher left dense."""
        return {layer.path: layer.dense_reason for layer in self.kept_dense}
