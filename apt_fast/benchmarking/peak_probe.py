"""Measures one side of a registered benchmark case's peak memory in a process of its own, so that the
malloc setting the measurement needs (memory.py) never touches the timings of the process that runs it.

`peak_in_subprocess` is the harness's PeakMeter for registered cases (`apt-fast bench`, bench/); it runs

    python -m apt_fast.benchmarking.peak_probe CASE_NAME baseline|candidate QUICK THREADS

which prints the peak in bytes (or nothing where /proc cannot tell). A first call warms up lazy
initialisation; the second call is measured.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any, Callable, Optional

import torch

from . import memory
from .harness import BenchCase
from .registry import all_cases


def peak_in_subprocess(case: BenchCase, side: str, quick: bool, prepare: Callable[[], Any]) -> Optional[int]:
    """The case is rebuilt from the registry by name in the child (`prepare` belongs to this process)."""
    command = [sys.executable, "-m", "apt_fast.benchmarking.peak_probe", case.name, side, "1" if quick else "0",
               str(torch.get_num_threads())]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"measuring the peak memory of {case.name} ({side}) failed:\n{result.stderr[-2000:]}")
    return int(result.stdout) if result.stdout.strip() else None


def main(argv) -> int:
    name, side, quick, threads = argv[0], argv[1], argv[2] == "1", int(argv[3])
    torch.set_num_threads(threads)
    cases = [c for c in all_cases() if c.name == name]
    if not cases:
        print(f"peak_probe: no registered benchmark case is named {name!r} (ad-hoc cases: harness.peak_in_process)",
              file=sys.stderr)
        return 2
    (case,) = cases
    inputs = case.make_inputs(quick)
    run = getattr(case, side)
    run(case.prepare(inputs))
    args = case.prepare(inputs)
    peak = memory.peak_bytes(lambda: run(args))
    if peak is not None:
        print(peak)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
