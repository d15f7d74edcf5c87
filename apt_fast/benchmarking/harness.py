"""Runs one benchmark case: agreement check, then timings and peak memory of baseline and candidate."""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional

import torch

from . import heap, memory
from .peaks import Work, describe
from .targets import Targets, Verdict, judge


@dataclass(frozen=True)
class BenchCase:
    """A benchmark: `make_inputs(quick)` builds the shared inputs; `prepare(inputs)` makes fresh per-run
    arguments (untimed, e.g. leaf tensors that require grad); `baseline` and `candidate` take them and
    return outputs that `check(baseline_out, candidate_out)` compares (it raises on disagreement; a dict it
    returns is kept in the result's `extra`, e.g. how far two greedy generations agree).
    `unavoidable_bytes(inputs)` is subtracted from both peaks (e.g. the input gradient both must return).
    `targets` is what the candidate should achieve against the baseline (targets.py). `work(inputs)` is what one
    candidate call does (peaks.Work), reported as a rate and a fraction of this machine's measured peak.
    `repeats` overrides the timed runs per side (a baseline that takes seconds). `report(inputs)` gives figures for
    the result's `extra` after the timings (e.g. what a load generator measured). `measure_peak` is False where a
    side's peak memory is not in this process (a server's). `requires` names the modules the case imports beyond
    apt_fast's own dependencies, with `requires_hint` saying how to install them; `apt-fast bench` skips the case
    when one is missing."""

    name: str
    family: str
    shape: Callable[[Any], str]
    make_inputs: Callable[[bool], Any]
    prepare: Callable[[Any], Any]
    baseline: Callable[[Any], Any]
    candidate: Callable[[Any], Any]
    check: Callable[[Any, Any], None]
    baseline_name: str
    targets: Targets
    unavoidable_bytes: Callable[[Any], int] = lambda inputs: 0
    quick: bool = True  # part of `apt-fast bench --quick`
    work: Optional[Callable[[Any], Work]] = None
    repeats: Optional[int] = None
    report: Optional[Callable[[Any], Dict[str, Any]]] = None
    measure_peak: bool = True
    requires: tuple = ()
    requires_hint: str = ""


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
    targets: Targets
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

    @property
    def memory_unmeasured_reason(self) -> str:
        """Why memory_ratio is None ('' when it is not)."""
        if self.baseline_peak_bytes is None or self.candidate_peak_bytes is None:
            return "no peak memory: /proc/self/clear_refs is unavailable"
        if self.baseline_peak_bytes == 0:
            return "the baseline's peak memory is 0 bytes"
        return ""

    @property
    def verdicts(self) -> List[Verdict]:
        return judge(self.targets, self.ratio, self.memory_ratio, self.memory_unmeasured_reason)

    def as_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        data["baseline"] = {"median": self.baseline.median, "min": self.baseline.min, "max": self.baseline.max,
                            "times": self.baseline.times}
        data["candidate"] = {"median": self.candidate.median, "min": self.candidate.min, "max": self.candidate.max,
                             "times": self.candidate.times}
        data["ratio"] = self.ratio
        data["memory_ratio"] = self.memory_ratio
        data["verdicts"] = [v.as_dict() for v in self.verdicts]
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


# Measures the resident bytes one call of a case's side ("baseline" or "candidate") adds at its peak, given
# (case, side, quick, prepare), or None where it cannot tell: peak_in_process below, or
# peak_probe.peak_in_subprocess for registered cases.
PeakMeter = Callable[[BenchCase, str, bool, Callable[[], Any]], Optional[int]]


def peak_in_process(case: BenchCase, side: str, quick: bool, prepare: Callable[[], Any]) -> Optional[int]:
    """In this process: for ad-hoc cases. The malloc setting it needs (memory.py) stays in force for the
    process, which slows allocation-heavy timings afterwards; registered cases use peak_in_subprocess."""
    args = prepare()
    run = getattr(case, side)
    return memory.peak_bytes(lambda: run(args))


def run_case(case: BenchCase, quick: bool = False, repeats: Optional[int] = None,
             candidate_timer: Optional[Callable[[Callable[[Any], Any], Callable[[], Any]], Timing]] = None,
             peak: PeakMeter = peak_in_process) -> CaseResult:
    """Checks agreement, then measures each side's peak memory through `peak` (minus the case's unavoidable
    bytes) and times baseline and candidate (the candidate through `candidate_timer` when given, e.g.
    pytest-benchmark)."""
    inputs = case.make_inputs(quick)
    prepare = lambda: case.prepare(inputs)
    agreement = case.check(case.baseline(prepare()), case.candidate(prepare()))
    repeats = case.repeats or repeats or (3 if quick else 7)
    unavoidable = case.unavoidable_bytes(inputs)
    baseline_peak, candidate_peak = ((_minus(peak(case, side, quick, prepare), unavoidable) if case.measure_peak
                                      else None) for side in ("baseline", "candidate"))
    heap.keep_freed_memory()  # for both sides' timings (heap.py says why)
    baseline = time_calls(case.baseline, prepare, repeats)
    if candidate_timer is not None:
        candidate = candidate_timer(case.candidate, prepare)
    else:
        candidate = time_calls(case.candidate, prepare, repeats)
    extra = dict(agreement or {})
    if case.work is not None:
        extra["throughput"] = describe(case.work(inputs), candidate.median)
    if case.report is not None:
        extra.update(case.report(inputs))
    return CaseResult(case.name, case.shape(inputs), case.baseline_name, baseline, candidate, baseline_peak,
                      candidate_peak, torch.get_num_threads(), case.targets, extra)


def _minus(peak: Optional[int], unavoidable: int) -> Optional[int]:
    return None if peak is None else max(0, peak - unavoidable)
