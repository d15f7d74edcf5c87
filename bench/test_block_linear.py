"""block_linear benchmarks: targets and measured figures in apt_fast/benchmarking/cases/block_linear.py."""

import pytest

from apt_fast.benchmarking import select_cases

CASES = select_cases(name_filter="block_linear")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_block_linear(compare, case):
    compare(case)  # fails when the outputs disagree; the targets' verdicts go to extra_info
