"""Benchmark harness shared by `apt-fast bench` and the pytest-benchmark suite in bench/.

A case runs a baseline and apt_fast's candidate in one process on the same inputs, checks that their
outputs agree before timing anything, and reports median / min / max, the ratio, peak memory and a
verdict on each of its targets.
"""

from .harness import BenchCase, CaseResult, Timing, peak_in_process, run_case
from .registry import all_cases, select_cases
from .targets import Targets, Verdict

__all__ = ["BenchCase", "CaseResult", "Targets", "Timing", "Verdict", "all_cases", "peak_in_process", "run_case",
           "select_cases"]
