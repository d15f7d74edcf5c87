"""The demo's timing: the same fine-tuning steps with apt_fast's kernels and with ``--no-fast``."""

from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class TimedRun:
    losses: list[float]  # [steps]
    step_seconds: list[float]  # [steps], from the end of the previous step (the first includes set-up)

    @property
    def median_step(self) -> float:
        """Median step time without the first step (warm-up)."""
        return statistics.median(self.step_seconds[1:])


def timed_fine_tune(base: str, data: str, save_path: str, steps: int, batch_size: int, fast: bool,
                    bf16: bool = False) -> TimedRun:
    """``steps`` fine-tuning steps from ``base`` on ``data``, each timed (``bf16``: under bfloat16 autocast)."""
    from ..train import fine_tune_model

    stamps = [time.perf_counter()]
    fine_tune_model(base, data, save_path=save_path, overwrite=True, max_steps=steps, batch_size=batch_size,
                    learning_rate=1e-3, fast=fast, bf16=bf16, tensorboard=False, save_steps=10**6,
                    callbacks=[lambda trainer, state, loss: stamps.append(time.perf_counter())])
    with open(os.path.join(save_path, "training_log.json"), encoding="utf-8") as f:
        losses = [h["loss"] for h in json.load(f)["history"]]
    return TimedRun(losses, [b - a for a, b in zip(stamps, stamps[1:])])


def compare(base: str, data: str, workdir: str, steps: int, batch_size: int, bf16: bool = False) -> list[str]:
    """Lines reporting ms/step of both paths, the speedup and the largest loss difference."""
    fast = timed_fine_tune(base, data, os.path.join(workdir, "timing_fast"), steps, batch_size, True, bf16)
    slow = timed_fine_tune(base, data, os.path.join(workdir, "timing_nofast"), steps, batch_size, False, bf16)
    diff = max(abs(a - b) for a, b in zip(fast.losses, slow.losses))
    return [
        f"{steps} fine-tuning steps, batch {batch_size}, {'bf16 autocast' if bf16 else 'float32'}, same data and "
        f"start (median step, first excluded):",
        f"  --no-fast   {1000 * slow.median_step:8.1f} ms/step",
        f"  apt_fast    {1000 * fast.median_step:8.1f} ms/step   speedup {slow.median_step / fast.median_step:.2f}x",
        f"  losses      max |fast - no-fast| = {diff:.2e} over {steps} steps (first {fast.losses[0]:.4f} vs "
        f"{slow.losses[0]:.4f}, last {fast.losses[-1]:.4f} vs {slow.losses[-1]:.4f})",
    ]



def _timed(workload, fast: bool, repeats: int) -> float:
    """Median seconds of ``repeats`` runs (the model copy made before each clock starts)."""
    from ..train.throughput import fresh_model, run_fine_tune

    times = []
    for _ in range(repeats):
        model = fresh_model(workload)
        start = time.perf_counter()
        run_fine_tune(workload, model, fast)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def benchmark_configuration(repeats: int = 3) -> list[str]:
    """The fine-tuning throughput workload of ``apt-fast bench --filter training`` (the APT benchmark
    configuration, 2 steps a run), timed in this process without the benchmark harness's malloc settings;
    a first run of each path (the loss check) is the warm-up."""
    from ..train.throughput import (
        BENCHMARK_MODEL,
        FineTuneShape,
        check_losses,
        fresh_model,
        make_workload,
        run_fine_tune,
    )

    workload = make_workload(FineTuneShape(BENCHMARK_MODEL, steps=2))
    slow_losses = run_fine_tune(workload, fresh_model(workload), False)
    fast_losses = run_fine_tune(workload, fresh_model(workload), True)
    check_losses(slow_losses, fast_losses)
    slow, fast = _timed(workload, False, repeats), _timed(workload, True, repeats)
    tokens = workload.shape.tokens
    return [
        f"the APT benchmark configuration ({workload.shape.describe()} a run), median of {repeats}:",
        f"  --no-fast   {tokens / slow:8.0f} tokens/s",
        f"  apt_fast    {tokens / fast:8.0f} tokens/s   speedup {slow / fast:.2f}x",
        f"  losses      max |fast - no-fast| = {float((fast_losses - slow_losses).abs().max()):.2e} "
        f"over {len(fast_losses)} steps",
    ]
