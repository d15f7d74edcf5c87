"""A worker process of `apt-fast serve`: it holds its own copy of the models it has served and runs one task at a
time (a generation, an embedding, a load, a show), sending the task's events back through its pipe. Processes, not
threads: a decode step of a small model is mostly Python-side work under the GIL, so worker threads of one process
would take turns instead of running side by side.

A task has ``run(models, job)`` and ``ACTION``, the noun an error names ("generation failed: ...").
Messages from the server: ``("run", task)``, ``("load", name)`` (a preload; a failure is left for the request that
needs the model to report), ``("unload", name)``, ``("stop",)``. To the server: the task's events,
``("loaded", name, size, context_length)`` when a model was loaded (before the task's first event) and
``("finished",)`` after each task."""

from __future__ import annotations

import importlib
import logging
import signal

import torch

from .errors import ServeError
from .models import LoadedModel, WorkerModels

logger = logging.getLogger("apt_fast.serve")

# What the worker processes import before their first task: loaded once in the process they are forked from, so
# that a new worker starts in milliseconds and its first model load pays no imports (transformers' take seconds).
PRELOAD = (__name__, "apt_fast.serve.generation", "apt_fast.serve.embedding", "apt_fast.serve.model_tasks",
           "apt_fast.train.inputs", "apt_fast.train.fast_path", "apt_fast.models.apt.loading")


class WorkerJob:
    """The running task's side of a job: ``emit`` sends an event to the server, ``cancelled`` is set by the server
    when the client went away."""

    def __init__(self, connection, cancelled):
        self.connection = connection
        self.cancelled = cancelled

    def emit(self, event: tuple) -> None:
        self.connection.send(event)


def worker_main(connection, cancelled, paths: dict[str, str], threads: int, setup: tuple | None) -> None:
    """The worker's loop. ``setup`` is ``(module, function, *args)``, called once before the first task (tests use
    it to instrument the worker)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's to handle; it stops the workers
    torch.set_num_threads(threads)
    if setup is not None:
        module, function, *args = setup
        getattr(importlib.import_module(module), function)(*args)

    def loaded(name: str, entry: LoadedModel) -> None:
        connection.send(("loaded", name, entry.size, int(entry.model.config.max_seq_len)))

    models = WorkerModels(paths, loaded)
    job = WorkerJob(connection, cancelled)
    while True:
        try:
            message = connection.recv()
        except EOFError:  # the server is gone
            return
        if message[0] == "stop":
            return
        if message[0] == "unload":
            models.drop(message[1])
        elif message[0] == "load":
            _preload(models, message[1])
        elif message[0] == "run":
            _run(message[1], models, job)
            connection.send(("finished",))


def _run(task, models: WorkerModels, job: WorkerJob) -> None:
    try:
        task.run(models, job)
    except ServeError as error:
        job.emit(("error", error.status, str(error)))
    except Exception as error:  # a failure of the model itself: reported to the client, logged here
        logger.exception("%s failed", task.ACTION)
        job.emit(("error", 500, f"{task.ACTION} failed: {type(error).__name__}: {error}"))


def _preload(models: WorkerModels, name: str) -> None:
    try:
        models.get(name)
    except Exception:  # the request that needs the model loads it again and reports the failure
        logger.debug("preloading %s failed", name, exc_info=True)
