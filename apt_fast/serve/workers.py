"""A fixed set of worker processes (worker_process.py) in front of the models, with a bounded queue: a request beyond
``parallel + max_queue`` pending ones is refused with 503. Each job streams its events to the event loop and stops at
its next step once cancelled; a cancelled job still in the queue leaves it at once. A worker process that dies fails
its job with a 500 and is replaced."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from collections import deque
from typing import Callable

import torch

from . import worker_process
from .errors import ServeError

BUSY = "server busy, please try again.  maximum pending requests exceeded"
POLL_SECONDS = 0.1  # how often a waiting request checks that its client is still there
STOP_SECONDS = 5.0  # for a worker to stop before it is killed


class ClientGone(Exception):
    """The client disconnected; its job was cancelled."""


def threads_per_worker(parallel: int, threads: int) -> int:
    """Each worker's intra-op threads: the server's ``threads`` shared among the ``parallel`` workers, at least one,
    so that concurrent requests split the cores instead of oversubscribing them."""
    return max(1, threads // parallel)


class Job:
    """One request's work on the server's side: ``task`` (run by a worker), the events it sent (``events``, filled
    by ``emit`` from any thread), ``cancel()`` when the client goes away, and ``finished`` called once when it has
    ended, or left the queue without running."""

    def __init__(self, loop: asyncio.AbstractEventLoop, task, finished: Callable[[], None]):
        self.loop = loop
        self.task = task
        self.events: asyncio.Queue = asyncio.Queue()
        self.cancelled = threading.Event()
        self._finished = finished
        self._lock = threading.Lock()
        self._on_cancel: Callable[[], None] | None = None

    def emit(self, event: tuple) -> None:
        self.loop.call_soon_threadsafe(self.events.put_nowait, event)

    def cancel(self) -> None:
        with self._lock:
            self.cancelled.set()
            on_cancel = self._on_cancel
        if on_cancel is not None:
            on_cancel()

    def on_cancel(self, action: Callable[[], None]) -> bool:
        """Run ``action`` when the job is cancelled; False (and ``action`` is not kept) if it already is."""
        with self._lock:
            if self.cancelled.is_set():
                return False
            self._on_cancel = action
            return True

    def finish(self) -> None:
        finished, self._finished = self._finished, None
        if finished is not None:
            finished()

    async def next_event(self, request) -> tuple:
        """The next event; raises :class:`ClientGone` (after cancelling) if the client disconnects first."""
        while True:
            try:
                return await asyncio.wait_for(self.events.get(), POLL_SECONDS)
            except asyncio.TimeoutError:
                if await request.is_disconnected():
                    self.cancel()
                    raise ClientGone() from None


class Worker:
    """One worker process, its pipe, its cancel flag and the job it runs (None when idle)."""

    def __init__(self, context, paths: dict[str, str], threads: int, setup: tuple | None):
        self.connection, child = context.Pipe()
        self.cancelled = context.Event()
        self.process = context.Process(target=worker_process.worker_main, daemon=True, name="apt-serve-worker",
                                       args=(child, self.cancelled, paths, threads, setup))
        self.process.start()
        child.close()
        self.job: Job | None = None


class WorkerPool:
    """``parallel`` worker processes, each running torch and apt_fast's kernels on its share of the server's threads
    and holding its own copy of the models it serves (memory: ``parallel`` x each model). ``loaded(name, size,
    context_length)`` is told when a worker has loaded a model. ``setup`` is passed to each worker
    (worker_process.worker_main)."""

    def __init__(self, paths: dict[str, str], parallel: int, max_queue: int,
                 loaded: Callable[[str, int, int], None] = lambda name, size, context_length: None,
                 setup: tuple | None = None):
        if parallel < 1:
            raise ValueError(f"--parallel must be >= 1, got {parallel}")
        if max_queue < 0:
            raise ValueError(f"--max-queue must be >= 0, got {max_queue}")
        self.paths, self.setup, self.loaded = dict(paths), setup, loaded
        self.threads_per_worker = threads_per_worker(parallel, torch.get_num_threads())
        self.context = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload(list(worker_process.PRELOAD))
        self.capacity = parallel + max_queue
        self.pending = 0
        self.queue: deque[Job] = deque()
        self.lock = threading.Lock()
        self.closed = False
        self.workers = [self._spawn() for _ in range(parallel)]
        self.idle = deque(self.workers)

    def _spawn(self) -> Worker:
        worker = Worker(self.context, self.paths, self.threads_per_worker, self.setup)
        threading.Thread(target=self._read, args=(worker,), daemon=True, name="apt-serve-reader").start()
        return worker

    def start(self, task, finished: Callable[[], None] = lambda: None) -> Job:
        """Queue ``task``; a ServeError 503 when ``parallel + max_queue`` requests are already pending."""
        with self.lock:
            if self.pending >= self.capacity:
                raise ServeError(503, BUSY)
            self.pending += 1
            job = Job(asyncio.get_running_loop(), task, finished)
            self.queue.append(job)
        job.on_cancel(lambda: self._leave_queue(job))
        self._dispatch()
        return job

    def preload(self, name: str) -> None:
        """Every worker loads ``name`` when it is next idle (Ollama's empty-prompt load)."""
        self._broadcast(("load", name))

    def unload(self, name: str) -> None:
        """Every worker drops ``name`` (after the task it is running, if any)."""
        self._broadcast(("unload", name))

    def _broadcast(self, message: tuple) -> None:
        with self.lock:
            for worker in self.workers:
                _send(worker, message)

    def _dispatch(self) -> None:
        with self.lock:
            while self.idle and self.queue:
                job, worker = self.queue.popleft(), self.idle.popleft()
                worker.job = job
                worker.cancelled.clear()
                job.on_cancel(lambda worker=worker, job=job: self._cancel_running(worker, job))
                _send(worker, ("run", job.task))

    def _leave_queue(self, job: Job) -> None:
        with self.lock:
            if job not in self.queue:
                return
            self.queue.remove(job)
            self.pending -= 1
        job.finish()

    def _cancel_running(self, worker: Worker, job: Job) -> None:
        with self.lock:
            if worker.job is job:
                worker.cancelled.set()

    def _read(self, worker: Worker) -> None:
        """The worker's messages, in order: a job's events to the job, a loaded model to ``loaded``. A job's final
        event ("done" or "error") is held until the worker has finished, so that a client that has its reply finds
        the worker free and the model's keep_alive set."""
        final = None
        while True:
            try:
                message = worker.connection.recv()
            except (EOFError, OSError):
                if not self.closed:
                    self._replace(worker)
                return
            if message[0] == "finished":
                job = self._finished(worker, None)
                if job is not None and final is not None:
                    job.emit(final)
                final = None
            elif message[0] == "loaded":
                self.loaded(*message[1:])
            elif message[0] in ("done", "error"):
                final = message
            else:
                worker.job.emit(message)

    def _finished(self, worker: Worker, replacement: Worker | None) -> Job | None:
        """Free ``worker`` (or put ``replacement`` in its place), end its job and dispatch the next; its job."""
        with self.lock:
            job, worker.job = worker.job, None
            if replacement is not None:
                self.workers[self.workers.index(worker)] = replacement
                if worker in self.idle:
                    self.idle.remove(worker)
            self.idle.append(replacement or worker)
            self.pending -= job is not None
        if job is not None:
            job.finish()
        self._dispatch()
        return job

    def _replace(self, worker: Worker) -> None:
        """A worker process died: its job fails with a 500, a new process takes its place."""
        worker.process.join(STOP_SECONDS)
        if worker.job is not None:
            worker.job.emit(("error", 500, f"the worker process exited unexpectedly (exit code "
                                           f"{worker.process.exitcode})"))
        self._finished(worker, self._spawn())

    def shutdown(self) -> None:
        """Stop the workers (those still busy after STOP_SECONDS are killed); queued jobs fail with 503."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            for worker in self.workers:
                _send(worker, ("stop",))
            queued, self.queue = list(self.queue), deque()
        for job in queued:
            job.emit(("error", 503, "the server is shutting down"))
        for worker in self.workers:
            worker.process.join(STOP_SECONDS)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.connection.close()


def _send(worker: Worker, message: tuple) -> None:
    """Send to a worker; one that has died is replaced by its reader, and the replacement needs no message."""
    try:
        worker.connection.send(message)
    except OSError:
        pass
