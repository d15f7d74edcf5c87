"""Table and JSON output of benchmark results."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from typing import Iterable, List, Optional

import torch

from .harness import CaseResult


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}"


def _mib(num_bytes: Optional[int]) -> str:
    return "n/a" if num_bytes is None else f"{num_bytes / 2**20:.2f}"


def format_table(results: Iterable[CaseResult]) -> str:
    header = ("case", "shape", "baseline", "base ms (min-max)", "apt_fast ms (min-max)", "ratio",
              "base MiB", "apt MiB", "mem ratio", "target")
    rows: List[tuple] = []
    for r in results:
        mem = "n/a" if r.memory_ratio is None else f"{r.memory_ratio:.4f}"
        rows.append((
            r.name, r.shape, r.baseline_name,
            f"{_ms(r.baseline.median)} ({_ms(r.baseline.min)}-{_ms(r.baseline.max)})",
            f"{_ms(r.candidate.median)} ({_ms(r.candidate.min)}-{_ms(r.candidate.max)})",
            f"{r.ratio:.3f}", _mib(r.baseline_peak_bytes), _mib(r.candidate_peak_bytes), mem, r.target,
        ))
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(header), line("-" * w for w in widths), *(line(r) for r in rows)])


def environment() -> dict:
    from .. import __version__, backends

    return {"apt_fast": __version__, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "machine": platform.machine(), "python": platform.python_version(), **backends.available()}


def write_json(results: Iterable[CaseResult], path: str) -> None:
    """Writes {environment, results} atomically (temporary file, then rename)."""
    payload = {"environment": environment(), "results": [r.as_dict() for r in results]}
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".bench-", suffix=".json", dir=directory)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=2)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
