"""nm_linear benchmarks: targets and measured figures in apt_fast/benchmarking/cases/nm_linear.py."""

import pytest

from apt_fast.benchmarking import select_cases

CASES = select_cases(name_filter="nm_linear")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_nm_linear(compare, case):
    compare(case)  # fails when the outputs disagree; the targets' verdicts go to extra_info
