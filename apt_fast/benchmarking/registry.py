"""All benchmark cases: every module of benchmarking/cases/ that defines CASES (a new op family adds its own file
there and edits nothing shared)."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from typing import List, Optional

from . import cases as cases_package
from .harness import BenchCase


def all_cases() -> List[BenchCase]:
    found: List[BenchCase] = []
    for module_info in sorted(pkgutil.iter_modules(cases_package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{cases_package.__name__}.{module_info.name}")
        found.extend(getattr(module, "CASES", []))
    return found


def select_cases(quick: bool = False, name_filter: Optional[str] = None) -> List[BenchCase]:
    cases = all_cases()
    if quick:
        cases = [c for c in cases if c.quick]
    if name_filter:
        cases = [c for c in cases if name_filter in c.name or name_filter == c.family]
    return cases


def missing_modules(case: BenchCase) -> List[str]:
    """The modules of ``case.requires`` that cannot be imported here."""
    return [name for name in case.requires if importlib.util.find_spec(name) is None]
