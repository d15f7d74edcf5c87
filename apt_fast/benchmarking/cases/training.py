"""Fine-tuning throughput: the training engine with apt_fast's kernels against ``--no-fast`` (the plain
PyTorch modules), same initial weights, batches and settings (see :mod:`apt_fast.train.throughput`).

One timed call is a fresh fine-tuning run of 3 steps (2 with --quick) on the APT benchmark configuration
(B=4, T=S=128, D=256, 4 heads, 2+2 layers, d_ff 1024, vocab 1000, dropout 0, no gradient hooks); the
outputs checked before timing are the losses of every step. tokens/s = the tokens in the shape column /
the time per call. Target: >= 4x the tokens/s (min_speedup=4, i.e. time <= 0.25).
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

from ...train.throughput import BENCHMARK_MODEL, FineTuneShape, check_losses, fresh_model, make_workload, run_fine_tune
from ..harness import BenchCase
from ..targets import Targets


def _workload(shape: FineTuneShape, quick_steps: int, quick: bool):
    return make_workload(replace(shape, steps=quick_steps) if quick else shape)


def _prepare(workload):
    return workload, fresh_model(workload)


def _run(fast: bool, args):
    workload, model = args
    return run_fine_tune(workload, model, fast)


def fine_tune_case(shape: FineTuneShape, quick_steps: int = 2, quick: bool = True) -> BenchCase:
    m = shape.model
    return BenchCase(
        name=f"fine_tune_throughput[B={shape.batch},T=S={shape.length},D={m['d_model']},"
             f"{m['num_encoder_layers']}+{m['num_decoder_layers']}]",
        family="training",
        shape=lambda workload: workload.shape.describe(),
        make_inputs=partial(_workload, shape, quick_steps),
        prepare=_prepare,
        baseline=partial(_run, False),
        candidate=partial(_run, True),
        check=check_losses,
        baseline_name="Trainer --no-fast (plain PyTorch)",
        targets=Targets(min_speedup=4),
        quick=quick,
    )


CASES = [fine_tune_case(FineTuneShape(BENCHMARK_MODEL))]
