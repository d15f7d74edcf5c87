"""A fixed set of worker threads in front of the models, with a bounded queue: a request beyond
``parallel + max_queue`` pending ones is refused with 503. Each job streams its events to the event loop
and stops at its next step once cancelled (also while still queued)."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import torch

from .errors import ServeError

BUSY = "server busy, please try again.  maximum pending requests exceeded"
POLL_SECONDS = 0.1  # how often a waiting request checks that its client is still there


class ClientGone(Exception):
    """The client disconnected; its job was cancelled."""


class Job:
    """One request's work: ``emit`` (from the worker thread) queues an event for the loop; ``cancelled`` is set
    when the client goes away."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.events: asyncio.Queue = asyncio.Queue()
        self.cancelled = threading.Event()

    def emit(self, event: tuple) -> None:
        self.loop.call_soon_threadsafe(self.events.put_nowait, event)

    async def next_event(self, request) -> tuple:
        """The next event; raises :class:`ClientGone` (after cancelling) if the client disconnects first."""
        while True:
            try:
                return await asyncio.wait_for(self.events.get(), POLL_SECONDS)
            except asyncio.TimeoutError:
                if await request.is_disconnected():
                    self.cancelled.set()
                    raise ClientGone() from None


def threads_per_worker(parallel: int, threads: int) -> int:
    """Each worker's intra-op threads: the process's ``threads`` shared among the ``parallel`` workers, at least one,
    so that concurrent requests split the cores instead of oversubscribing them."""
    return max(1, threads // parallel)


class WorkerPool:
    """``parallel`` worker threads, each running torch and apt_fast's kernels on its share of the process's threads
    (``torch.set_num_threads`` in a worker sets its own OpenMP thread count; the thread that made the pool keeps
    its own)."""

    def __init__(self, parallel: int, max_queue: int):
        if parallel < 1:
            raise ValueError(f"--parallel must be >= 1, got {parallel}")
        if max_queue < 0:
            raise ValueError(f"--max-queue must be >= 0, got {max_queue}")
        self.threads_per_worker = threads_per_worker(parallel, torch.get_num_threads())
        self.executor = ThreadPoolExecutor(parallel, thread_name_prefix="apt-serve", initializer=torch.set_num_threads,
                                           initargs=(self.threads_per_worker,))
        self.capacity = parallel + max_queue
        self.pending = 0
        self.lock = threading.Lock()

    def start(self, work: Callable[[Job], None]) -> Job:
        """Queue ``work(job)``; a ServeError 503 when ``parallel + max_queue`` requests are already pending."""
        with self.lock:
            if self.pending >= self.capacity:
                raise ServeError(503, BUSY)
            self.pending += 1
        job = Job(asyncio.get_running_loop())
        self.executor.submit(self._run, work, job)
        return job

    def _run(self, work: Callable[[Job], None], job: Job) -> None:
        try:
            if not job.cancelled.is_set():
                work(job)
        finally:
            with self.lock:
                self.pending -= 1

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
