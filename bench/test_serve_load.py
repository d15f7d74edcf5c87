"""`apt-fast serve` under load: 8 concurrent streaming clients against the server in its own process vs a
one-request-at-a-time model.generate loop on the same model (target: tokens/s >= 1.0x, i.e. time ratio <= 1.0;
2 threads). The load figures (requests/s, tokens/s, p50/p99 TTFT and latency, errors) go to extra_info."""

import pytest

from apt_fast.benchmarking import select_cases
from apt_fast.benchmarking.registry import missing_modules

CASES = select_cases(name_filter="serve")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_serve_load(compare, case):
    if missing_modules(case):
        pytest.skip(f"needs {', '.join(missing_modules(case))} ({case.requires_hint})")
    compare(case)  # fails when a request fails or a served text differs from model.generate's
