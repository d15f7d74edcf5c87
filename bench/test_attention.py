"""Attention: flash_attention vs torch SDPA (bias: <= 0.5x math SDPA; causal: <= 1.0x torch's CPU flash),
apt_attention vs the reference (<= 0.1x, memory <= 1/4), the patched APT model vs unpatched (<= 0.2x) and vs
use_autopoietic=False (<= 1.3x). Run one case at a time: pytest bench/test_attention.py -k NAME.

The apt_attention case times the three stage ops together (their references: reference/apt_attention_ops.py
and the statistics in reference/apt_attention.py). Dropout (reference/dropout_hash.py) is not benchmarked on
its own: every case runs at dropout 0, like the issue's figures."""

import pytest

from apt_fast.benchmarking import select_cases

CASES = select_cases(name_filter="attention")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_attention(compare, case):
    result = compare(case)
    assert result.ratio > 0
