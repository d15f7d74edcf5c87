"""pytest-benchmark glue: each case times its candidate through the `benchmark` fixture and its baseline
in the same process (peak memory in a process of its own), and records the ratio, memory ratio, targets
and verdicts in extra_info. Targets are reported, never asserted (timings are noisy): a test fails only
when the outputs disagree. The run ends with the target summary line of `apt-fast bench`."""

import pytest

from apt_fast.benchmarking import Timing, run_case
from apt_fast.benchmarking.harness import time_calls
from apt_fast.benchmarking.peak_probe import peak_in_subprocess
from apt_fast.benchmarking.report import format_table, summary_line

RESULTS = pytest.StashKey[list]()


def pytest_addoption(parser):
    parser.addoption("--quick-bench", action="store_true", help="smaller shapes and fewer repeats")


def pytest_configure(config):
    config.stash[RESULTS] = []


def pytest_terminal_summary(terminalreporter, config):
    results = config.stash[RESULTS]
    if results:
        terminalreporter.write_line(summary_line(results))


@pytest.fixture
def compare(benchmark, request):
    quick = request.config.getoption("--quick-bench")

    def run(case):
        def timer(candidate, prepare):
            rounds = case.repeats or (3 if quick else 7)
            benchmark.pedantic(candidate, setup=lambda: ((prepare(),), {}), rounds=rounds, warmup_rounds=1)
            if benchmark.stats is None:  # --benchmark-disable: one untimed call, no statistics
                return time_calls(candidate, prepare, rounds)
            return Timing(list(benchmark.stats.stats.data))

        result = run_case(case, quick=quick, candidate_timer=timer, peak=peak_in_subprocess)
        benchmark.extra_info.update({k: v for k, v in result.as_dict().items() if k not in ("baseline", "candidate")})
        benchmark.extra_info["baseline_median_s"] = result.baseline.median
        request.config.stash[RESULTS].append(result)
        print("\n" + format_table([result]))
        return result

    return run
