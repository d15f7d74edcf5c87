"""flash_attention vs torch SDPA, forward + backward, fp32 and bf16 (baselines in the same dtype). bias: time <= 0.5x
torch's math SDPA in fp32, <= 0.3x in bf16; causal: time <= 1.0x torch's CPU flash SDPA in fp32, <= 0.8x in bf16.
Run one case at a time: pytest bench/test_flash_attention.py -k NAME."""

import pytest

from apt_fast.benchmarking import select_cases

CASES = select_cases(name_filter="flash_attention")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_flash_attention(compare, case):
    compare(case)  # fails when the outputs disagree; the targets' verdicts go to extra_info
