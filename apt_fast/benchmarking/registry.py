"""All benchmark cases, by family. Each family's module defines CASES."""

from __future__ import annotations

from typing import List, Optional

from .cases import apt_attention
from .cases import distill_loss
from .cases import flash_attention
from .cases import gguf
from .cases import training
from .harness import BenchCase


def all_cases() -> List[BenchCase]:
    return [*distill_loss.CASES, *flash_attention.CASES, *apt_attention.CASES, *gguf.CASES, *training.CASES]


def select_cases(quick: bool = False, name_filter: Optional[str] = None) -> List[BenchCase]:
    cases = all_cases()
    if quick:
        cases = [c for c in cases if c.quick]
    if name_filter:
        cases = [c for c in cases if name_filter in c.name or name_filter == c.family]
    return cases
