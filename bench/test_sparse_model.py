"""The sparse APT model's decoding against the same pruned model held dense in fp32, and its saved file against the
dense one (targets in apt_fast/benchmarking/cases/sparse_model.py)."""

import pytest

from apt_fast.benchmarking import select_cases

CASES = select_cases(name_filter="sparse_model")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_sparse_model(compare, case):
    compare(case)  # fails when the outputs disagree; the targets' verdicts and the file ratio go to extra_info
