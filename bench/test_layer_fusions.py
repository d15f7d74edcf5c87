"""Layer fusions vs torch, forward + backward on the APT benchmark model's shapes: add_layer_norm (D=256) and
bias_gelu (F=1024), target time <= 1.0x. Run one case at a time: pytest bench/test_layer_fusions.py -k NAME."""

import pytest

from apt_fast.benchmarking import select_cases

CASES = select_cases(name_filter="layer_fusions")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_layer_fusions(compare, case):
    compare(case)  # fails when the outputs disagree; the targets' verdicts go to extra_info
