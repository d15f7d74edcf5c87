"""Serving behaviour: seeded requests give the same text alone or side by side, a full queue gives 503, and a
client that disconnects mid-stream stops its generation within one decode step and frees its worker.

The decode steps are held at a gate (the server runs in this process) so the tests control when a worker is busy."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

httpx = pytest.importorskip("httpx")
ollama = pytest.importorskip("ollama")


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


class GatedDecoding:
    """Replaces the server's decode_steps: each generated token waits for ``gate``; ``steps`` counts them,
    ``jobs`` records every started job."""

    def __init__(self, monkeypatch):
        from apt_fast.serve import generation, handling

        self.gate = threading.Event()
        self.steps = 0
        self.jobs = []
        real_steps, real_run = generation.decode_steps, handling.run_generation

        def gated_steps(*args, **kwargs):
            steps = real_steps(*args, **kwargs)
            yield next(steps)  # the encoder
            for token in steps:
                self.gate.wait()
                self.steps += 1
                yield token

        def recorded_run(registry, request, job):
            self.jobs.append(job)
            return real_run(registry, request, job)

        monkeypatch.setattr(generation, "decode_steps", gated_steps)
        monkeypatch.setattr(handling, "run_generation", recorded_run)


def test_seeded_requests_give_the_same_text_alone_and_concurrently(serve):
    client = ollama.Client(host=serve(parallel=2).url)
    options = [{"seed": s, "num_predict": 16} for s in (11, 12, 13, 14)]
    alone = [client.generate(model="tiny", prompt="same", options=o).response for o in options]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda o: client.generate(model="tiny", prompt="same", options=o).response,
                                 options * 2))
    assert together == alone * 2 and len(set(alone)) > 1


def test_a_full_queue_is_503_and_the_queued_requests_still_finish(serve, monkeypatch):
    gated = GatedDecoding(monkeypatch)
    server = serve(parallel=1, max_queue=1)
    body = {"model": "tiny", "prompt": "q", "stream": False, "options": {"num_predict": 3}}
    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(httpx.post, server.url + "/api/generate", json=body, timeout=30)
        wait_until(lambda: len(gated.jobs) == 1)
        queued = pool.submit(httpx.post, server.url + "/api/generate", json=body, timeout=30)
        wait_until(lambda: server.app.state.pool.pending == 2)
        refused = httpx.post(server.url + "/api/generate", json=body)
        assert (refused.status_code, refused.json()) == (
            503, {"error": "server busy, please try again.  maximum pending requests exceeded"})
        openai_refused = httpx.post(server.url + "/v1/completions", json={"model": "tiny", "prompt": "q"})
        assert openai_refused.status_code == 503 and openai_refused.json()["error"]["type"] == "api_error"
        gated.gate.set()
        assert running.result().status_code == queued.result().status_code == 200
    assert queued.result().json()["eval_count"] == 3


def test_a_disconnect_mid_stream_cancels_within_one_step_and_frees_the_worker(serve, monkeypatch):
    gated = GatedDecoding(monkeypatch)
    server = serve(parallel=1, max_queue=0)
    body = {"model": "tiny", "prompt": "q", "options": {"num_predict": 40}}
    with httpx.stream("POST", server.url + "/api/generate", json=body) as response:
        assert response.status_code == 200  # the stream began; no token has been generated yet
    wait_until(lambda: gated.jobs[0].cancelled.is_set())
    gated.gate.set()
    wait_until(lambda: server.app.state.pool.pending == 0)
    assert gated.steps <= 1
    reply = ollama.Client(host=server.url).generate(model="tiny", prompt="q", options={"num_predict": 4})
    assert reply.eval_count == 4


def test_a_queued_request_whose_client_leaves_never_runs(serve, monkeypatch):
    gated = GatedDecoding(monkeypatch)
    server = serve(parallel=1, max_queue=1)
    pool, started = server.app.state.pool, []
    start = pool.start
    monkeypatch.setattr(pool, "start", lambda work: started.append(start(work)) or started[-1])
    body = {"model": "tiny", "prompt": "q", "stream": False, "options": {"num_predict": 2}}
    with ThreadPoolExecutor(1) as threads:
        running = threads.submit(httpx.post, server.url + "/api/generate", json=body, timeout=30)
        wait_until(lambda: len(gated.jobs) == 1)
        with pytest.raises(httpx.TimeoutException):
            httpx.post(server.url + "/api/generate", json=body, timeout=0.3)  # queued, then gone
        wait_until(lambda: started[1].cancelled.is_set())
        gated.gate.set()
        assert running.result().status_code == 200
    wait_until(lambda: pool.pending == 0)
    assert len(gated.jobs) == 1  # the queued job was dropped before it started


def test_a_failure_after_the_stream_began_is_a_final_error_line(serve, monkeypatch):
    from apt_fast.serve import generation

    real_steps = generation.decode_steps

    def failing_steps(*args, **kwargs):
        steps = real_steps(*args, **kwargs)
        yield next(steps)  # the encoder
        yield ord("o") + 3  # byte "o" in the byte tokenizer
        raise RuntimeError("the decoder broke")

    monkeypatch.setattr(generation, "decode_steps", failing_steps)
    server = serve()
    with httpx.stream("POST", server.url + "/api/generate", json={"model": "tiny", "prompt": "q"}) as response:
        lines = [line for line in response.iter_lines() if line]
    assert response.status_code == 200
    assert lines[-1] == '{"error": "generation failed: RuntimeError: the decoder broke"}'
    chunks = []
    with pytest.raises(ollama.ResponseError) as raised:
        for chunk in ollama.Client(host=server.url).generate(model="tiny", prompt="q", stream=True):
            chunks.append(chunk.response)
    assert chunks == ["o"] and raised.value.error == "generation failed: RuntimeError: the decoder broke"


def test_cancelling_one_request_leaves_the_other_unchanged(serve, monkeypatch):
    gated = GatedDecoding(monkeypatch)
    server = serve(parallel=2, max_queue=0)
    body = {"model": "tiny", "prompt": "q", "stream": False, "options": {"seed": 5, "num_predict": 12}}
    gated.gate.set()
    alone = httpx.post(server.url + "/api/generate", json=body).json()["response"]
    gated.gate.clear()
    with ThreadPoolExecutor(1) as threads:
        other = threads.submit(httpx.post, server.url + "/api/generate", json=body, timeout=30)
        wait_until(lambda: len(gated.jobs) == 2)
        with httpx.stream("POST", server.url + "/api/generate", json={**body, "stream": True}):
            pass  # disconnect at once
        wait_until(lambda: gated.jobs[2].cancelled.is_set())
        gated.gate.set()
        assert other.result().json()["response"] == alone
    assert not gated.jobs[1].cancelled.is_set()


@pytest.mark.parametrize("threads, parallel, per_worker", [(2, 1, 2), (2, 2, 1), (2, 3, 1), (8, 3, 2)])
def test_workers_share_the_threads_and_leave_the_callers_alone(threads, parallel, per_worker):
    from apt_fast.serve.workers import WorkerPool

    torch.set_num_threads(threads)
    pool = WorkerPool(parallel, max_queue=0)
    try:
        seen = {pool.executor.submit(torch.get_num_threads).result() for _ in range(parallel)}
    finally:
        pool.shutdown()
    assert pool.threads_per_worker == per_worker and seen == {per_worker}
    assert torch.get_num_threads() == threads
