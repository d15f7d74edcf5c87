"""Serving behaviour: seeded requests give the same text alone or side by side (on one worker process or two), a full
queue gives 503, a client that disconnects mid-stream stops its generation within one decode step and frees its
worker, a worker process that dies is replaced, and the workers share the server's threads.

The decode steps of the worker processes are held at a gate (worker_hooks.Gate) so the tests control when a worker
is busy."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from worker_hooks import MODULE, Gate

httpx = pytest.importorskip("httpx")
ollama = pytest.importorskip("ollama")


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def recorded_jobs(server, monkeypatch) -> list:
    """The server's jobs, in the order they were queued."""
    pool, jobs = server.app.state.pool, []
    start = pool.start
    monkeypatch.setattr(pool, "start", lambda task, finished: jobs.append(start(task, finished)) or jobs[-1])
    return jobs


def test_seeded_requests_give_the_same_text_alone_and_concurrently(serve):
    client = ollama.Client(host=serve(parallel=2).url)
    options = [{"seed": s, "num_predict": 16} for s in (11, 12, 13, 14)]
    alone = [client.generate(model="tiny", prompt="same", options=o).response for o in options]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda o: client.generate(model="tiny", prompt="same", options=o).response,
                                 options * 2))
    assert together == alone * 2 and len(set(alone)) > 1


def test_a_full_queue_is_503_and_the_queued_requests_still_finish(serve, tmp_path):
    gate = Gate(tmp_path)
    server = serve(parallel=1, max_queue=1, worker_setup=gate.setup)
    body = {"model": "tiny", "prompt": "q", "stream": False, "options": {"num_predict": 3}}
    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(httpx.post, server.url + "/api/generate", json=body, timeout=30)
        wait_until(lambda: gate.started == 1)
        queued = pool.submit(httpx.post, server.url + "/api/generate", json=body, timeout=30)
        wait_until(lambda: server.app.state.pool.pending == 2)
        refused = httpx.post(server.url + "/api/generate", json=body)
        assert (refused.status_code, refused.json()) == (
            503, {"error": "server busy, please try again.  maximum pending requests exceeded"})
        openai_refused = httpx.post(server.url + "/v1/completions", json={"model": "tiny", "prompt": "q"})
        assert openai_refused.status_code == 503 and openai_refused.json()["error"]["type"] == "api_error"
        gate.open()
        assert running.result().status_code == queued.result().status_code == 200
    assert queued.result().json()["eval_count"] == 3


def test_a_disconnect_mid_stream_cancels_within_one_step_and_frees_the_worker(serve, tmp_path, monkeypatch):
    gate = Gate(tmp_path)
    server = serve(parallel=1, max_queue=0, worker_setup=gate.setup)
    jobs = recorded_jobs(server, monkeypatch)
    body = {"model": "tiny", "prompt": "q", "options": {"num_predict": 40}}
    with httpx.stream("POST", server.url + "/api/generate", json=body) as response:
        assert response.status_code == 200  # the stream began; no token has been generated yet
    wait_until(lambda: jobs[0].cancelled.is_set())
    gate.open()
    wait_until(lambda: server.app.state.pool.pending == 0)
    assert gate.steps <= 1
    reply = ollama.Client(host=server.url).generate(model="tiny", prompt="q", options={"num_predict": 4})
    assert reply.eval_count == 4


def test_a_queued_request_whose_client_leaves_never_runs(serve, tmp_path, monkeypatch):
    gate = Gate(tmp_path)
    server = serve(parallel=1, max_queue=1, worker_setup=gate.setup)
    jobs = recorded_jobs(server, monkeypatch)
    body = {"model": "tiny", "prompt": "q", "stream": False, "options": {"num_predict": 2}}
    with ThreadPoolExecutor(1) as threads:
        running = threads.submit(httpx.post, server.url + "/api/generate", json=body, timeout=30)
        wait_until(lambda: gate.started == 1)
        with pytest.raises(httpx.TimeoutException):
            httpx.post(server.url + "/api/generate", json=body, timeout=0.3)  # queued, then gone
        wait_until(lambda: jobs[1].cancelled.is_set())
        wait_until(lambda: server.app.state.pool.pending == 1)  # it left the queue at once
        gate.open()
        assert running.result().status_code == 200
    wait_until(lambda: server.app.state.pool.pending == 0)
    assert gate.started == 1  # the queued job never started


def test_a_failure_after_the_stream_began_is_a_final_error_line(serve):
    server = serve(worker_setup=(MODULE, "fail_after_one_token"))
    with httpx.stream("POST", server.url + "/api/generate", json={"model": "tiny", "prompt": "q"}) as response:
        lines = [line for line in response.iter_lines() if line]
    assert response.status_code == 200
    assert lines[-1] == '{"error": "generation failed: RuntimeError: the decoder broke"}'
    chunks = []
    with pytest.raises(ollama.ResponseError) as raised:
        for chunk in ollama.Client(host=server.url).generate(model="tiny", prompt="q", stream=True):
            chunks.append(chunk.response)
    assert chunks == ["o"] and raised.value.error == "generation failed: RuntimeError: the decoder broke"


def test_cancelling_one_request_leaves_the_other_unchanged(serve, tmp_path, monkeypatch):
    gate = Gate(tmp_path)
    server = serve(parallel=2, max_queue=0, worker_setup=gate.setup)
    jobs = recorded_jobs(server, monkeypatch)
    body = {"model": "tiny", "prompt": "q", "stream": False, "options": {"seed": 5, "num_predict": 12}}
    gate.open()
    alone = httpx.post(server.url + "/api/generate", json=body).json()["response"]
    gate.close()
    with ThreadPoolExecutor(1) as threads:
        other = threads.submit(httpx.post, server.url + "/api/generate", json=body, timeout=30)
        wait_until(lambda: gate.started == 2)
        with httpx.stream("POST", server.url + "/api/generate", json={**body, "stream": True}):
            pass  # disconnect at once
        wait_until(lambda: jobs[2].cancelled.is_set())
        gate.open()
        assert other.result().json()["response"] == alone
    assert not jobs[1].cancelled.is_set()


def test_a_worker_process_that_dies_fails_its_request_and_is_replaced(serve):
    server = serve(parallel=1, worker_setup=(MODULE, "exit_on_prompt", "die", 3))
    client = ollama.Client(host=server.url)
    with pytest.raises(ollama.ResponseError) as raised:
        client.generate(model="tiny", prompt="die")
    assert (raised.value.status_code, raised.value.error) == (
        500, "the worker process exited unexpectedly (exit code 3)")
    assert client.generate(model="tiny", prompt="q", options={"num_predict": 2}).eval_count == 2
    wait_until(lambda: server.app.state.pool.pending == 0)  # the worker's "finished" follows the reply


@pytest.mark.parametrize("threads, parallel, per_worker", [(2, 1, 2), (2, 2, 1), (2, 3, 1), (8, 3, 2)])
def test_workers_share_the_threads_and_leave_the_callers_alone(threads, parallel, per_worker, tmp_path):
    from apt_fast.serve.workers import WorkerPool

    torch.set_num_threads(threads)
    pool = WorkerPool({}, parallel, max_queue=0, setup=(MODULE, "record_threads", str(tmp_path)))
    try:
        wait_until(lambda: len(list(tmp_path.glob("threads-*"))) == parallel)
    finally:
        pool.shutdown()
    assert pool.threads_per_worker == per_worker
    assert {p.read_text() for p in tmp_path.glob("threads-*")} == {str(per_worker)}
    assert torch.get_num_threads() == threads


def test_an_empty_prompt_loads_the_model_in_every_worker(serve):
    server = serve(parallel=2)
    registry, loads = server.app.state.registry, []
    report = registry.worker_loaded
    server.app.state.pool.loaded = lambda *args: loads.append(args[0]) or report(*args)
    client = ollama.Client(host=server.url)
    assert client.generate(model="tiny", prompt="").done_reason == "load"
    wait_until(lambda: loads == ["tiny:latest"] * 2)
    with ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(lambda _: client.generate(model="tiny", prompt="q", options={"num_predict": 2}),
                                range(4)))
    assert [r.load_duration for r in replies] == [0] * 4 and len(loads) == 2
