"""The benchmark harness: agreement is checked before timing, ratios and JSON are reported."""

import json

import pytest
import torch

from apt_fast.benchmarking import BenchCase, run_case
from apt_fast.benchmarking.report import format_table, write_json


def make_case(candidate_offset=0.0):
    def check(expected, actual):
        if not torch.allclose(expected, actual):
            raise AssertionError("outputs disagree")

    return BenchCase(
        name="toy", family="toy", shape=lambda x: f"n={x.numel()}", make_inputs=lambda quick: torch.randn(1000),
        prepare=lambda x: x, baseline=lambda x: x.exp(), candidate=lambda x: x.exp() + candidate_offset,
        check=check, baseline_name="torch.exp")


def test_run_case_reports_ratio_and_table(tmp_path):
    result = run_case(make_case(), quick=True, repeats=2)
    assert len(result.baseline.times) == 2 and result.ratio > 0
    table = format_table([result])
    assert "toy" in table and "torch.exp" in table
    path = tmp_path / "out.json"
    write_json([result], str(path))
    data = json.loads(path.read_text())
    assert data["results"][0]["name"] == "toy" and "threads" in data["environment"]
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temporary file left behind


def test_disagreeing_outputs_stop_before_timing():
    with pytest.raises(AssertionError, match="outputs disagree"):
        run_case(make_case(candidate_offset=1.0), quick=True)
