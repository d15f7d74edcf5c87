"""A benchmark case's targets and the verdict on each: met, missed, or not measured.

The time targets compare medians: `max_time_ratio` bounds candidate / baseline (below 1 is faster) and
`min_speedup` bounds baseline / candidate (the same measurement, for cases stated as "N times faster").
`max_mem_ratio` bounds candidate peak / baseline peak; where the peaks cannot be measured (no /proc) or the
baseline's is zero, that target is not measured: neither met nor missed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, List, Optional


@dataclass(frozen=True)
class Targets:
    max_time_ratio: Optional[float] = None
    max_mem_ratio: Optional[float] = None
    min_speedup: Optional[float] = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"Targets.{f.name} must be a positive finite number or None, got {value!r}")
        if self.max_time_ratio is None and self.max_mem_ratio is None and self.min_speedup is None:
            raise ValueError("Targets needs at least one of max_time_ratio, max_mem_ratio, min_speedup, got none")
        if self.max_time_ratio is not None and self.min_speedup is not None:
            raise ValueError(f"Targets takes max_time_ratio or min_speedup (the same measurement), not both: got "
                             f"max_time_ratio={self.max_time_ratio!r}, min_speedup={self.min_speedup!r}")

    def as_dict(self) -> Dict[str, Optional[float]]:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    """One target's outcome. `met` is None when the quantity could not be measured (`reason` says why)."""

    target: str  # the Targets field: max_time_ratio, max_mem_ratio or min_speedup
    wanted: float
    measured: Optional[float]
    met: Optional[bool]
    reason: str = ""

    @property
    def label(self) -> str:
        """time<=0.35, mem<=0.0625, speedup>=10."""
        return {"max_time_ratio": "time<=", "max_mem_ratio": "mem<=", "min_speedup": "speedup>="}[self.target] + \
            f"{self.wanted:g}"

    @property
    def mark(self) -> str:
        return "?" if self.met is None else "✓" if self.met else "✗"

    def shortfall(self) -> str:
        """How a missed target was missed: time ratio 0.370 > 0.2."""
        if self.target == "max_time_ratio":
            return f"time ratio {self.measured:.3f} > {self.wanted:g}"
        if self.target == "max_mem_ratio":
            return f"memory ratio {self.measured:.4f} > {self.wanted:g}"
        return f"speedup {self.measured:.2f}x < {self.wanted:g}x"

    def as_dict(self) -> Dict[str, Any]:
        return {**asdict(self), "label": self.label}


def judge(targets: Targets, time_ratio: float, memory_ratio: Optional[float],
          memory_unmeasured_reason: str) -> List[Verdict]:
    """Verdicts in the order time, speedup, memory; `memory_unmeasured_reason` is used where memory_ratio is None."""
    verdicts = []
    if targets.max_time_ratio is not None:
        verdicts.append(Verdict("max_time_ratio", targets.max_time_ratio, time_ratio,
                                time_ratio <= targets.max_time_ratio))
    if targets.min_speedup is not None:
        speedup = 1.0 / time_ratio if time_ratio > 0 else math.inf
        verdicts.append(Verdict("min_speedup", targets.min_speedup, speedup, speedup >= targets.min_speedup))
    if targets.max_mem_ratio is not None:
        if memory_ratio is None:
            verdicts.append(Verdict("max_mem_ratio", targets.max_mem_ratio, None, None, memory_unmeasured_reason))
        else:
            verdicts.append(Verdict("max_mem_ratio", targets.max_mem_ratio, memory_ratio,
                                    memory_ratio <= targets.max_mem_ratio))
    return verdicts
