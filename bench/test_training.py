"""Training: the patched APT model's training step with AdamW vs unpatched (>= 5x), vs use_autopoietic=False (time
<= 1.15x), and under bf16 autocast vs fp32 (>= 2.5x with AMX-BF16, >= 1.4x without), on the benchmark model and a
wide one; fine-tuning throughput through the trainer vs --no-fast (>= 4x tokens/s) and with --bf16 vs fp32 (>= 2x
with AMX-BF16, >= 1.4x without). Outputs checked first (losses, a gradient). Run:
pytest bench/test_training.py --benchmark-only."""

import pytest

from apt_fast.benchmarking import select_cases

CASES = select_cases(name_filter="training")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_training(compare, case):
    compare(case)  # fails when the outputs disagree; the targets' verdicts go to extra_info
