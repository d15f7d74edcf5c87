"""What a module swap (patch, quantize, sparsify) changed and what it left alone, and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Tuple


@dataclass
class SwapReport:
    swapped: List[Tuple[str, str, str]] = field(default_factory=list)  # (module path, old class, new class)
    left_alone: List[Tuple[str, str]] = field(default_factory=list)  # (module path, reason)

    action = "swap"  # the call the report is about, for its first line

    def lines(self) -> List[str]:
        lines = [f"{self.action}: swapped {len(self.swapped)} module(s), left {len(self.left_alone)} alone"]
        lines += [f"  swapped     {path or '<root>'}: {old} -> {new}" for path, old, new in self.swapped]
        lines += [f"  left alone  {path or '<root>'}: {reason}" for path, reason in self.left_alone]
        return lines

    def __str__(self) -> str:
        return "\n".join(self.lines())


@dataclass
class PatchReport(SwapReport):
    action = "apt_fast.patch"
