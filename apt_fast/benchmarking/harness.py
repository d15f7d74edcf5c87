"""Runs one benchmark case: agreement check, then timings and peak memory of baseline and candidate."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional

import torch

from . import heap, memory


@dataclass(frozen=True)
class BenchCase:
    """A benchmark: `make_inputs(quick)` builds the shared inputs; `prepare(inputs)` makes fresh per-run
    arguments (untimed, e.g. leaf tensors that require grad); `baseline` and `candidate` take them and
    return outputs that `check(baseline_out, candidate_out)` compares (it raises on disagreement).
    `unavoidable_bytes(inputs)` is subtracted from both peaks (e.g. the input gradient both must return)."""

    name: str
    family: str
    shape: Callable[[Any], str]
    make_inputs: Callable[[bool], Any]
    prepare: Callable[[Any], Any]
    baseline: Callable[[Any], Any]
    candidate: Callable[[Any], Any]
    check: Callable[[Any, Any], None]
    baseline_name: str
    target: str = ""
    unavoidable_bytes: Callable[[Any], int] = lambda inputs: 0
    quick: bool = True  # part of `apt-fast bench --quick`


@dataclass
class Timing:
    times: List[float]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def min(self) -> float:
        return min(self.times)

    @property
    def max(self) -> float:
        return max(self.times)


@dataclass
class CaseResult:
    name: str
    shape: str
    baseline_name: str
    baseline: Timing
    candidate: Timing
    baseline_peak_bytes: Optional[int]
    candidate_peak_bytes: Optional[int]
    threads: int
    target: str
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """candidate median / baseline median: below 1 is faster."""
        return self.candidate.median / self.baseline.median

    @property
    def memory_ratio(self) -> Optional[float]:
        if not self.baseline_peak_bytes or self.candidate_peak_bytes is None:
            return None
        return self.candidate_peak_bytes / self.baseline_peak_bytes

    def as_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        data["baseline"] = {"median": self.baseline.median, "min": self.baseline.min, "max": self.baseline.max,
                            "times": self.baseline.times}
        data["candidate"] = {"median": self.candidate.median, "min": self.candidate.min, "max": self.candidate.max,
                             "times": self.candidate.times}
        data["ratio"] = self.ratio
        data["memory_ratio"] = self.memory_ratio
        return data


def time_calls(fn: Callable[[Any], Any], prepare: Callable[[], Any], repeats: int, warmup: int = 1) -> Timing:
    for _ in range(warmup):
        fn(prepare())
    times = []
    for _ in range(repeats):
        args = prepare()
        start = time.perf_counter()
        fn(args)
        times.append(time.perf_counter() - start)
        del args
    return Timing(times)


def _peak_in_process(fn: Callable[[Any], Any], prepare: Callable[[], Any], unavoidable: int) -> Optional[int]:
    args = prepare()
    peak = memory.peak_bytes(lambda: fn(args))
    return None if peak is None else max(0, peak - unavoidable)


def _peak(case: BenchCase, side: str, quick: bool, prepare: Callable[[], Any], unavoidable: int) -> Optional[int]:
    """Peak of one side: in a process of its own for registered cases (so that the malloc setting the
    measurement needs never touches the timings), in this process for ad-hoc cases."""
    from .registry import all_cases

    if not any(c.name == case.name for c in all_cases()):
        return _peak_in_process(getattr(case, side), prepare, unavoidable)
    command = [sys.executable, "-m", "apt_fast.benchmarking.peak_probe", case.name, side, "1" if quick else "0",
               str(torch.get_num_threads())]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"measuring the peak memory of {case.name} ({side}) failed:\n{result.stderr[-2000:]}")
    return int(result.stdout) if result.stdout.strip() else None


def run_case(case: BenchCase, quick: bool = False, repeats: Optional[int] = None,
             candidate_timer: Optional[Callable[[Callable[[Any], Any], Callable[[], Any]], Timing]] = None) -> CaseResult:
    """Checks agreement, then times baseline and candidate (the candidate through `candidate_timer` when
    given, e.g. pytest-benchmark) and measures each one's peak memory."""
    inputs = case.make_inputs(quick)
    prepare = lambda: case.prepare(inputs)  # noqa: E731
    case.check(case.baseline(prepare()), case.candidate(prepare()))
    repeats = repeats or (3 if quick else 7)
    unavoidable = case.unavoidable_bytes(inputs)
    baseline_peak = _peak(case, "baseline", quick, prepare, unavoidable)
    candidate_peak = _peak(case, "candidate", quick, prepare, unavoidable)
    heap.keep_freed_memory()  # for both sides' timings (heap.py says why)
    baseline = time_calls(case.baseline, prepare, repeats)
    if candidate_timer is not None:
        candidate = candidate_timer(case.candidate, prepare)
    else:
        candidate = time_calls(case.candidate, prepare, repeats)
    return CaseResult(case.name, case.shape(inputs), case.baseline_name, baseline, candidate, baseline_peak,
                      candidate_peak, torch.get_num_threads(), case.target)
