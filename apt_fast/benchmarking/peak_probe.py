"""Measures one side of a registered benchmark case's peak memory in a process of its own:

    python -m apt_fast.benchmarking.peak_probe CASE_NAME baseline|candidate QUICK THREADS

prints the peak in bytes minus the case's unavoidable bytes (or nothing where /proc cannot tell). A first
call warms up lazy initialisation; the second call is measured.
"""

from __future__ import annotations

import sys

import torch

from . import memory
from .registry import all_cases


def main(argv) -> int:
    name, side, quick, threads = argv[0], argv[1], argv[2] == "1", int(argv[3])
    torch.set_num_threads(threads)
    (case,) = [c for c in all_cases() if c.name == name]
    inputs = case.make_inputs(quick)
    run = getattr(case, side)
    run(case.prepare(inputs))
    args = case.prepare(inputs)
    peak = memory.peak_bytes(lambda: run(args))
    if peak is not None:
        print(max(0, peak - case.unavoidable_bytes(inputs)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
