"""pytest-benchmark glue: each case times its candidate through the `benchmark` fixture and its
baseline in the same process, and records the ratio and peak memory in extra_info."""

import pytest

from apt_fast.benchmarking import Timing, run_case
from apt_fast.benchmarking.report import format_table


def pytest_addoption(parser):
    parser.addoption("--quick-bench", action="store_true", help="smaller shapes and fewer repeats")


@pytest.fixture
def compare(benchmark, request):
    quick = request.config.getoption("--quick-bench")

    def run(case):
        def timer(candidate, prepare):
            rounds = 3 if quick else 7
            benchmark.pedantic(candidate, setup=lambda: ((prepare(),), {}), rounds=rounds, warmup_rounds=1)
            return Timing(list(benchmark.stats.stats.data))

        result = run_case(case, quick=quick, candidate_timer=timer)
        benchmark.extra_info.update({k: v for k, v in result.as_dict().items() if k not in ("baseline", "candidate")})
        benchmark.extra_info["baseline_median_s"] = result.baseline.median
        print("\n" + format_table([result]))
        return result

    return run
