"""What both APIs' routes share: reading the JSON body (capped, 400 when empty or not JSON), starting a
generation on the worker pool and waiting until it is under way, and the events that follow."""

from __future__ import annotations

import json
from typing import AsyncIterator

from .errors import ServeError
from .generation import GenerationRequest
from .workers import Job


async def read_json(request) -> dict:
    max_body = request.app.state.config.max_body
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_body:
            raise ServeError(413, f"request body too large: the limit is {max_body} bytes")
    if not body.strip():
        raise ServeError(400, "missing request body")
    try:
        value = json.loads(body)
    except ValueError as error:
        raise ServeError(400, f"invalid JSON in the request body: {error}") from None
    if not isinstance(value, dict):
        raise ServeError(400, f"the request body must be a JSON object, got {type(value).__name__}")
    return value


async def submit(request, task, keep_alive: float | None) -> tuple[Job, tuple]:
    """Queue ``task`` on the worker pool, its model counted as in use until the job ends (then idle for
    ``keep_alive`` seconds; None: the server's default), and wait (watching the client) for its first event. A
    failure before any output (unknown model, prompt too long, queue full ...) is raised as its ServeError, so it
    gets its own HTTP status. (the job, its first event)."""
    state = request.app.state
    keep_alive = state.config.keep_alive if keep_alive is None else keep_alive
    state.registry.acquire(task.model)
    try:
        job = state.pool.start(task, finished=lambda: state.registry.release(task.model, keep_alive))
    except ServeError:
        state.registry.release(task.model, None)
        raise
    event = await job.next_event(request)
    if event[0] == "error":
        raise ServeError(event[1], event[2])
    return job, event


async def start_generation(request, generation: GenerationRequest, keep_alive: float | None) -> Job:
    """Queue ``generation`` and wait until its prompt is encoded."""
    job, _ = await submit(request, generation, keep_alive)
    return job


async def events(job: Job) -> AsyncIterator[tuple]:
    """The job's events after "ready", up to and including "done" or "error"; closing the iterator early
    (the client went away) cancels the job at its next decode step."""
    try:
        while True:
            event = await job.events.get()
            yield event
            if event[0] in ("done", "error"):
                return
    finally:
        job.cancel()


async def collect(request, job: Job) -> tuple[str, dict]:
    """(the whole text, the final stats) of a request that is not streamed; a mid-generation error is raised."""
    pieces = []
    while True:
        event = await job.next_event(request)
        if event[0] == "text":
            pieces.append(event[1])
        elif event[0] == "done":
            return "".join(pieces), event[1]
        elif event[0] == "error":
            raise ServeError(event[1], event[2])
