"""APT attention: apt_attention vs the reference (>= 10x faster, memory <= 1/4), apt_attention in bf16 vs its own fp32
path (time <= 0.6x), the patched APT model's forward vs unpatched (time <= 0.2x) and vs use_autopoietic=False
(time <= 1.3x); the training steps are in bench/test_training.py. Run one case at a time:
pytest bench/test_apt_attention.py -k NAME.

The apt_attention cases time the three stage ops together (their references: reference/apt_attention_ops.py
and the statistics in reference/apt_attention.py). Dropout (reference/dropout_hash.py) is not benchmarked on
its own: every case runs at dropout 0, like the issue's figures."""

import pytest

from apt_fast.benchmarking import select_cases

CASES = select_cases(name_filter="apt_attention")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_apt_attention(compare, case):
    compare(case)  # fails when the outputs disagree; the targets' verdicts go to extra_info
