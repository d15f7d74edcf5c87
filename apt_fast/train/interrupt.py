"""Ctrl-C during training: the first SIGINT only raises a flag, so the loop finishes the current step,
writes a resumable checkpoint and stops; a second SIGINT interrupts at once."""

from __future__ import annotations

import signal
import threading


class InterruptFlag:
    """Context manager that turns the first SIGINT into ``requested = True`` (main thread only)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> "InterruptFlag":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
