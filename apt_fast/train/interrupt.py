"""Ctrl-C and SIGTERM (the preemption signal of SLURM and Kubernetes) during training.

The first signal only raises a flag: the loop finishes the current step, writes a resumable checkpoint and
stops with :class:`TrainingInterrupted`. A second one stops the run at once (a KeyboardInterrupt from the
handler, ``forced`` set), which the trainer turns into a TrainingInterrupted naming the last complete
checkpoint; the checkpoint it was writing is discarded. The previous handlers are restored when the loop ends.
"""

from __future__ import annotations

import signal
import threading

SIGNAL_NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}


class TrainingInterrupted(KeyboardInterrupt):
    """A signal or :meth:`Trainer.request_stop` stopped the run after ``step`` steps.

    ``checkpoint``: the newest complete resumable checkpoint (None: none was written); ``signal``:
    "Ctrl-C", "SIGTERM" or None (request_stop); ``signum``: the signal's number or None; ``at_once``: a
    second signal stopped the run without writing a checkpoint.
    """

    def __init__(self, checkpoint: str | None, step: int, *, signum: int | None = None, at_once: bool = False):
        self.checkpoint = checkpoint
        self.step = step
        self.signum = signum
        self.signal = SIGNAL_NAMES.get(signum) if signum is not None else None
        self.at_once = at_once
        by = f" by {self.signal}" if self.signal else ""
        if at_once:
            last = (f"the last complete checkpoint is {checkpoint}" if checkpoint is not None
                    else "no checkpoint was written")
            message = f"interrupted again{by}: stopped at once, without a checkpoint of step {step}; {last}"
        else:
            message = f"interrupted{by} at step {step}; resumable checkpoint: {checkpoint}"
        super().__init__(message)


class InterruptFlag:
    """Context manager that turns the first SIGINT or SIGTERM into ``requested = True`` (``signum``: which)
    and a second one into a KeyboardInterrupt with ``forced = True``. Signal handlers can only be set in the
    main thread; elsewhere it does nothing."""

    def __init__(self) -> None:
        self.requested = False
        self.forced = False
        self.signum: int | None = None
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.requested:
            self.forced = True
            self.signum = signum
            raise KeyboardInterrupt
        self.requested = True
        self.signum = signum

    def __enter__(self) -> "InterruptFlag":
        self.requested, self.forced, self.signum = False, False, None
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNAL_NAMES:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():
            # None: the previous handler was not installed from Python; the default is what there is to restore.
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}
