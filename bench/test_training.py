"""Fine-tuning throughput: the Trainer with apt_fast's kernels vs --no-fast on the APT benchmark
configuration, losses of the same steps checked equal first (target: time <= 0.25, i.e. >= 4x tokens/s).
Run: pytest bench/test_training.py --benchmark-only."""

import pytest

from apt_fast.benchmarking import select_cases

CASES = select_cases(name_filter="training")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_training(compare, case):
    compare(case)  # fails when the outputs disagree; the targets' verdicts go to extra_info
