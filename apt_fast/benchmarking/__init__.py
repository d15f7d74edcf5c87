"""Benchmark harness shared by `apt-fast bench` and the pytest-benchmark suite in bench/.

A case runs a baseline and apt_fast's candidate in one process on the same inputs, checks that their
outputs agree before timing anything, and reports median / min / max, the ratio and peak memory.
"""

from .harness import BenchCase, CaseResult, Timing, run_case
from .registry import all_cases, select_cases

__all__ = ["BenchCase", "CaseResult", "Timing", "run_case", "all_cases", "select_cases"]
