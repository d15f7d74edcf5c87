"""Progress of a run: a tqdm bar (loss, learning rate, tokens/s), log lines, and TensorBoard event logs
when tensorboard is installed (imported lazily; skipped otherwise)."""

from __future__ import annotations

import logging
import os
import sys
import time

from tqdm.auto import tqdm

logger = logging.getLogger("apt_fast.train")


def _summary_writer(log_dir: str):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        logger.info("tensorboard is not installed: no event logs (pip install tensorboard)")
        return None
    logger.info("TensorBoard event logs: %s", log_dir)
    return SummaryWriter(log_dir=log_dir)


class Monitor:
    """Only the main process shows a bar and writes events; ``enabled=False`` makes every call a no-op;
    ``progress_bar=False`` hides the bar only (log lines and events stay), None shows it when stderr is a
    terminal."""

    def __init__(self, *, total_steps: int, initial_step: int, desc: str, log_dir: str | None, enabled: bool,
                 progress_bar: bool | None = None):
        self.enabled = enabled
        shown = sys.stderr.isatty() if progress_bar is None else progress_bar
        self.bar = tqdm(total=total_steps, initial=initial_step, desc=desc, unit="step", dynamic_ncols=True,
                        disable=not (enabled and shown))
        self.writer = _summary_writer(log_dir) if enabled and log_dir else None
        self._window_start = time.perf_counter()
        self._window_tokens = 0

    def step(self, step: int, loss: float, lr: float, tokens: int) -> float:
        """Record one optimizer step; returns the tokens/s since the previous bar refresh window."""
        self._window_tokens += tokens
        elapsed = max(time.perf_counter() - self._window_start, 1e-9)
        rate = self._window_tokens / elapsed
        if elapsed > 2.0:
            self._window_start, self._window_tokens = time.perf_counter(), 0
        if self.enabled:
            self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", tok_s=f"{rate:,.0f}", refresh=False)
            self.bar.update(1)
            if self.writer is not None:
                self.writer.add_scalar("train/loss", loss, step)
                self.writer.add_scalar("train/lr", lr, step)
                self.writer.add_scalar("train/tokens_per_s", rate, step)
        return rate

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(name, value, step)

    def log(self, message: str) -> None:
        """A log line that does not break the bar."""
        if self.enabled:
            self.bar.clear()
            logger.info(message)
            self.bar.refresh()

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()


def tensorboard_dir(save_path: str) -> str:
    return os.path.join(save_path, "runs")
