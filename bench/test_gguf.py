"""GGUF: apt_fast's quantizer vs gguf.quants.quantize on the same tensor (target >= 20x faster, i.e. time
<= 0.05x, 2 threads), and F16 export vs numpy tofile of the same bytes (target <= 2x)."""

import pytest

from apt_fast.benchmarking import select_cases

CASES = select_cases(name_filter="gguf")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_gguf(compare, case):
    compare(case)  # fails when the outputs disagree; the targets' verdicts go to extra_info
