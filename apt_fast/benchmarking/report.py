"""Table, target summary and JSON output of benchmark results."""

from __future__ import annotations

import platform
from typing import Iterable, List, Optional, Sequence

import torch

from ..atomic import atomic_write_json
from .harness import CaseResult
from .targets import Verdict


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}"


def _mib(num_bytes: Optional[int]) -> str:
    return "n/a" if num_bytes is None else f"{num_bytes / 2**20:.2f}"


def _verdict_cell(verdict: Verdict) -> str:
    """time<=0.35 ✓, mem<=0.0625 ✗, mem<=0.25 ? (why it was not measured)."""
    cell = f"{verdict.label} {verdict.mark}"
    return cell if verdict.met is not None else f"{cell} ({verdict.reason})"


def _throughput_cell(result: CaseResult) -> str:
    """12.3 GB/s (45% of peak), 1.20 Top/s (9% of amx_int8), or '' when the case states no work."""
    t = result.extra.get("throughput")
    if not t:
        return ""
    scale, prefix = (1e9, "GB/s") if t["unit"] == "B/s" else (1e12, "Top/s")
    cell = f"{t['rate'] / scale:.2f} {prefix}"
    if t["peak_fraction"] is not None:
        cell += f" ({100 * t['peak_fraction']:.0f}% of {t['peak_kind']} peak)"
    return cell


def _notes_cell(result: CaseResult) -> str:
    """What the case's check and report gave (e.g. greedy_tokens_equal=61/64, load: requests=480, ...), throughput
    aside."""
    return ", ".join(f"{k}: {_notes(v)}" if isinstance(v, dict) else _notes({k: v})
                     for k, v in result.extra.items() if k != "throughput")


def _notes(values: dict) -> str:
    return ", ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


def format_table(results: Iterable[CaseResult]) -> str:
    header = ("case", "shape", "baseline", "base ms (min-max)", "apt_fast ms (min-max)", "ratio",
              "base MiB", "apt MiB", "mem ratio", "apt_fast rate", "targets", "notes")
    rows: List[tuple] = []
    for r in results:
        mem = "n/a" if r.memory_ratio is None else f"{r.memory_ratio:.4f}"
        rows.append((
            r.name, r.shape, r.baseline_name,
            f"{_ms(r.baseline.median)} ({_ms(r.baseline.min)}-{_ms(r.baseline.max)})",
            f"{_ms(r.candidate.median)} ({_ms(r.candidate.min)}-{_ms(r.candidate.max)})",
            f"{r.ratio:.3f}", _mib(r.baseline_peak_bytes), _mib(r.candidate_peak_bytes), mem, _throughput_cell(r),
            " ".join(_verdict_cell(v) for v in r.verdicts), _notes_cell(r),
        ))
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([line(header), line("-" * w for w in widths), *(line(r) for r in rows)])


def any_missed(results: Iterable[CaseResult]) -> bool:
    """True when some target was measured and missed (not-measured targets do not count)."""
    return any(v.met is False for r in results for v in r.verdicts)


def summary_line(results: Sequence[CaseResult]) -> str:
    """targets: 9 met, 2 missed (case X: time ratio 0.370 > 0.2; ...), 1 not measured (case Y: mem<=0.25: why)."""
    met = [v for r in results for v in r.verdicts if v.met]
    missed = [f"{r.name}: {v.shortfall()}" for r in results for v in r.verdicts if v.met is False]
    unmeasured = [f"{r.name}: {v.label}: {v.reason}" for r in results for v in r.verdicts if v.met is None]
    parts = [f"{len(met)} met", _counted(missed, "missed"), _counted(unmeasured, "not measured")]
    return "targets: " + ", ".join(parts)


def _counted(items: List[str], what: str) -> str:
    return f"{len(items)} {what}" + (f" ({'; '.join(items)})" if items else "")


def environment() -> dict:
    """The machine and build the figures come from."""
    from .. import __version__, backends

    info = backends.available()  # simd, simd_detected and cpu_features only with the native build
    return {
        "cpu_model": backends.cpu_model(),
        "cpu_features": info.get("cpu_features"),
        "simd": info.get("simd"),
        "simd_detected": info.get("simd_detected"),
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "apt_fast": __version__,
        "backend": info["backend"],
        "native": info["native"],
        "triton": info["triton"],
    }


def write_json(results: Iterable[CaseResult], path: str) -> None:
    """Writes {environment, results} atomically (temporary file, then rename)."""
    payload = {"environment": environment(), "results": [r.as_dict() for r in results]}
    atomic_write_json(path, payload)
