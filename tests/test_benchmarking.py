"""The benchmark harness: agreement is checked before timing; targets give verdicts (met, missed, not
measured) that the table, the summary line, `apt-fast bench --check` and the JSON report. No timing is
asserted: the toy cases' targets are either absent from the checks or impossible to meet."""

import dataclasses
import json
import math
import re

import pytest
import torch

import apt_fast.benchmarking
from apt_fast.benchmarking import BenchCase, CaseResult, Targets, Timing, peak_probe, run_case
from apt_fast.benchmarking.report import format_table, summary_line, write_json
from apt_fast.cli import main

TOY_TARGETS = Targets(max_time_ratio=1.0)


def make_case(candidate_offset=0.0, targets=TOY_TARGETS):
    def check(expected, actual):
        if not torch.allclose(expected, actual):
            raise AssertionError("outputs disagree")

    return BenchCase(
        name="toy", family="toy", shape=lambda x: f"n={x.numel()}", make_inputs=lambda quick: torch.randn(1000),
        prepare=lambda x: x, baseline=lambda x: x.exp(), candidate=lambda x: x.exp() + candidate_offset,
        check=check, baseline_name="torch.exp", targets=targets)


def fake_result(name, baseline_s, candidate_s, targets, baseline_peak=1000, candidate_peak=100):
    return CaseResult(name, "n=1", "base", Timing([baseline_s]), Timing([candidate_s]), baseline_peak,
                      candidate_peak, 1, targets)


def test_run_case_reports_ratio_and_table(tmp_path):
    result = run_case(make_case(), quick=True, repeats=2)
    assert len(result.baseline.times) == 2 and result.ratio > 0
    table = format_table([result])
    assert "toy" in table and "torch.exp" in table and "time<=1" in table
    path = tmp_path / "out.json"
    write_json([result], str(path))
    data = json.loads(path.read_text())
    assert data["results"][0]["name"] == "toy" and "threads" in data["environment"]
    assert data["results"][0]["targets"] == {"max_time_ratio": 1.0, "max_mem_ratio": None, "min_speedup": None}
    assert [v["target"] for v in data["results"][0]["verdicts"]] == ["max_time_ratio"]
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temporary file left behind


def test_disagreeing_outputs_stop_before_timing():
    with pytest.raises(AssertionError, match="outputs disagree"):
        run_case(make_case(candidate_offset=1.0), quick=True)


def test_run_case_measures_peaks_through_the_given_meter():
    calls = []

    def meter(case, side, quick, prepare):
        calls.append((case.name, side, quick, prepare().shape))
        return 4096

    result = run_case(make_case(), quick=True, repeats=1, peak=meter)
    assert calls == [("toy", "baseline", True, (1000,)), ("toy", "candidate", True, (1000,))]
    assert result.baseline_peak_bytes == 4096 and result.memory_ratio == 1.0


def test_subprocess_probe_names_an_unregistered_case():
    with pytest.raises(RuntimeError, match="no registered benchmark case is named 'toy'"):
        run_case(make_case(), quick=True, repeats=1, peak=peak_probe.peak_in_subprocess)


@pytest.mark.parametrize("kwargs, message", [
    (dict(max_time_ratio=-0.5), "Targets.max_time_ratio must be a positive finite number or None, got -0.5"),
    (dict(max_mem_ratio=0), "Targets.max_mem_ratio must be a positive finite number or None, got 0"),
    (dict(min_speedup=math.inf), "Targets.min_speedup must be a positive finite number or None, got inf"),
    (dict(max_time_ratio="0.35"), "Targets.max_time_ratio must be a positive finite number or None, got '0.35'"),
    (dict(min_speedup=True), "Targets.min_speedup must be a positive finite number or None, got True"),
    (dict(), "Targets needs at least one of max_time_ratio, max_mem_ratio, min_speedup, got none"),
    (dict(max_time_ratio=0.1, min_speedup=10), "Targets takes max_time_ratio or min_speedup (the same measurement), "
                                               "not both: got max_time_ratio=0.1, min_speedup=10"),
])
def test_targets_validation_names_the_field_and_value(kwargs, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Targets(**kwargs)


def test_verdicts_met_missed_and_not_measured():
    targets = Targets(max_time_ratio=0.5, max_mem_ratio=0.25)
    met = fake_result("fast", 1.0, 0.25, targets, baseline_peak=1000, candidate_peak=100)
    missed = fake_result("slow", 1.0, 0.75, targets, baseline_peak=1000, candidate_peak=500)
    unmeasured = fake_result("no-proc", 1.0, 0.25, targets, baseline_peak=None, candidate_peak=None)
    assert [(v.target, v.wanted, v.measured, v.met) for v in met.verdicts] == [
        ("max_time_ratio", 0.5, 0.25, True), ("max_mem_ratio", 0.25, 0.1, True)]
    assert [(v.target, v.measured, v.met) for v in missed.verdicts] == [
        ("max_time_ratio", 0.75, False), ("max_mem_ratio", 0.5, False)]
    (time, memory) = unmeasured.verdicts
    assert time.met is True and (memory.measured, memory.met) == (None, None)
    assert memory.reason == "no peak memory: /proc/self/clear_refs is unavailable"
    zero = fake_result("zero", 1.0, 0.25, targets, baseline_peak=0, candidate_peak=0).verdicts[1]
    assert zero.met is None and zero.reason == "the baseline's peak memory is 0 bytes"


def test_speedup_is_baseline_over_candidate():
    (fast,) = fake_result("q", 1.0, 0.04, Targets(min_speedup=20)).verdicts
    (slow,) = fake_result("q", 1.0, 0.1, Targets(min_speedup=20)).verdicts
    assert (fast.measured, fast.met, fast.label) == (pytest.approx(25.0), True, "speedup>=20")
    assert (slow.measured, slow.met) == (pytest.approx(10.0), False)
    assert slow.shortfall() == "speedup 10.00x < 20x"


def test_table_marks_each_target():
    targets = Targets(max_time_ratio=0.35, max_mem_ratio=0.0625)
    table = format_table([
        fake_result("a", 1.0, 0.3, targets, baseline_peak=1000, candidate_peak=100),
        fake_result("b", 1.0, 0.3, targets, baseline_peak=None, candidate_peak=None),
    ])
    header, _, row_a, row_b = table.splitlines()
    assert "targets" in header
    assert row_a.endswith("time<=0.35 ✓ mem<=0.0625 ✗")
    assert row_b.endswith("time<=0.35 ✓ mem<=0.0625 ? (no peak memory: /proc/self/clear_refs is unavailable)")


def test_summary_line_counts_and_explains():
    results = [
        fake_result("A", 1.0, 0.1, Targets(max_time_ratio=0.2, max_mem_ratio=0.25)),
        fake_result("B", 1.0, 0.37, Targets(max_time_ratio=0.2)),
        fake_result("C", 1.0, 0.25, Targets(min_speedup=5, max_mem_ratio=0.5), baseline_peak=None),
    ]
    assert summary_line(results) == (
        "targets: 2 met, 2 missed (B: time ratio 0.370 > 0.2; C: speedup 4.00x < 5x), "
        "1 not measured (C: mem<=0.5: no peak memory: /proc/self/clear_refs is unavailable)")
    assert summary_line(results[:1]) == "targets: 2 met, 0 missed, 0 not measured"


@pytest.fixture
def toy_bench(monkeypatch):
    """`apt-fast bench` on one in-process toy case whose target cannot be met (a million times faster)."""
    case = make_case(targets=Targets(min_speedup=1e6))
    monkeypatch.setattr(apt_fast.benchmarking, "select_cases", lambda quick, name_filter: [case])
    monkeypatch.setattr(peak_probe, "peak_in_subprocess", apt_fast.benchmarking.peak_in_process)


@pytest.mark.parametrize("check, code", [(True, 1), (False, 0)])
def test_bench_check_exits_1_on_a_missed_target(toy_bench, check, code, capsys):
    assert main(["bench", "--quick", "--repeats", "1", *(["--check"] if check else [])]) == code
    out = capsys.readouterr().out
    assert "speedup>=1e+06 ✗" in out
    assert out.splitlines()[-1].startswith("targets: 0 met, 1 missed (toy: speedup ")


def test_bench_json_records_the_machine(toy_bench, tmp_path, capsys):
    from apt_fast import _native, backends

    path = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--repeats", "1", "--json", str(path)]) == 0
    environment = json.loads(path.read_text())["environment"]
    assert environment["cpu_model"] == backends.cpu_model() and environment["cpu_model"]
    assert environment["threads"] == torch.get_num_threads() and environment["torch"] == torch.__version__
    assert {"python", "apt_fast", "simd", "simd_detected", "cpu_features"} <= set(environment)
    if _native.is_available():
        assert environment["simd"] == _native.native().simd_level()
        assert environment["cpu_features"] == _native.native().cpu_features()
    assert f"wrote {path}" in capsys.readouterr().out


def test_report_hook_adds_figures_and_no_peak_is_measured_when_told_not_to():
    def meter(case, side, quick, prepare):
        raise AssertionError("the peak meter must not run")

    case = dataclasses.replace(make_case(), report=lambda x: {"load": {"requests": 3, "tokens_per_s": 12.5}},
                               measure_peak=False)
    result = run_case(case, quick=True, repeats=1, peak=meter)
    assert result.extra["load"] == {"requests": 3, "tokens_per_s": 12.5}
    assert result.baseline_peak_bytes is None and result.candidate_peak_bytes is None
    assert "load: requests=3, tokens_per_s=12.5" in format_table([result])


def test_bench_skips_a_case_whose_modules_are_missing(monkeypatch, capsys):
    case = dataclasses.replace(make_case(), requires=("apt_fast_no_such_module",), requires_hint="pip install it")
    monkeypatch.setattr(apt_fast.benchmarking, "select_cases", lambda quick, name_filter: [case, make_case()])
    monkeypatch.setattr(peak_probe, "peak_in_subprocess", apt_fast.benchmarking.peak_in_process)
    assert main(["bench", "--quick", "--repeats", "1"]) == 0
    captured = capsys.readouterr()
    assert "skipping toy: it needs apt_fast_no_such_module (pip install it)" in captured.err
    assert [line.split()[0] for line in captured.out.splitlines()[2:-1]] == ["toy"]  # the other case's row alone
