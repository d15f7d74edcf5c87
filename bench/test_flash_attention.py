"""flash_attention vs torch SDPA, forward + backward (bias: time <= 0.5x torch's math SDPA; causal: time
<= 1.0x torch's CPU flash). Run one case at a time: pytest bench/test_flash_attention.py -k NAME."""

import pytest

from apt_fast.benchmarking import select_cases

CASES = select_cases(name_filter="flash_attention")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_flash_attention(compare, case):
    compare(case)  # fails when the outputs disagree; the targets' verdicts go to extra_info
