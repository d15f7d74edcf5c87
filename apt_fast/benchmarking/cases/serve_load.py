"""`apt-fast serve` under load: 8 concurrent streaming clients (load_generator.py) against the server, run as a user
runs it (`apt-fast serve` in a process of its own, default settings: one worker process per core, at most 4),
against a one-request-at-a-time loop calling ``model.generate`` directly on the same model in this process. Both
sides decode the same requests greedily (the benchmark model's shape with the byte tokenizer, each request a raw
prompt of about 60 bytes and up to 32 new tokens), and the check requires every served text to equal the direct
one. Target: aggregate tokens/s >= 1.0x the direct loop's, i.e. time ratio <= 1.0. The extra figures pool every
load run of the case: requests/s, tokens/s, p50/p99 time to first token and total latency, errors (which must be
0)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from dataclasses import dataclass, field

import torch

from ..harness import BenchCase
from ..load_generator import LoadReport, run_load
from ..targets import Targets

CLIENTS = 8
SHAPE = dict(d_model=256, num_heads=4, num_encoder_layers=2, num_decoder_layers=2, d_ff=1024, max_seq_len=128,
             dropout=0.0)
MODEL_NAME = "apt-bench"
START_SECONDS = 120.0  # for the server to import torch and listen


@dataclass
class ServedModel:
    """The benchmark model saved to ``path``, loaded here for the direct loop, and served by ``apt-fast serve`` at
    ``url``; ``reports`` collects every load run."""

    path: str
    model: object
    tokenizer: object
    prompts: list
    requests: int
    new_tokens: int
    url: str = ""
    reports: list = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_server(path: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    environment = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()))
    process = subprocess.Popen([sys.executable, "-m", "apt_fast", "--quiet", "serve", "--port", str(port), "--model",
                                f"{MODEL_NAME}={path}", "--keep-alive", "-1"], env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"apt-fast serve exited with code {process.returncode}:\n"
                               f"{process.stderr.read()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"apt-fast serve did not listen on port {port} within {START_SECONDS:.0f} s")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


def _served_model(quick: bool) -> ServedModel:
    from ... import save
    from ...models.apt import APTConfig, APTModel
    from ...models.apt.tokenization_byte import APTByteTokenizer
    from ...serve.models import load_for_serving

    tokenizer = APTByteTokenizer()
    torch.manual_seed(0)
    config = APTConfig(vocab_size=tokenizer.vocab_size, pad_token_id=0, bos_token_id=1, eos_token_id=2, **SHAPE)
    path = os.path.join(tempfile.mkdtemp(prefix="apt-fast-bench-serve-"), MODEL_NAME)
    save(APTModel(config).eval(), path, tokenizer)
    loaded = load_for_serving(path)  # the model exactly as the server prepares it
    prompts = [f"Request {i}: the quick brown fox jumps over the lazy dog." for i in range(CLIENTS)]
    served = ServedModel(path, loaded.model, loaded.tokenizer, prompts, requests=CLIENTS * (3 if quick else 32),
                         new_tokens=16 if quick else 32)
    process, served.url = _start_server(path)
    weakref.finalize(served, _stop, process)
    _preload(served.url)
    return served


def _preload(url: str) -> None:
    """Ollama's preload (an empty prompt), so that no timed request pays for loading the model."""
    import httpx

    response = httpx.post(f"{url}/api/generate", json={"model": MODEL_NAME, "prompt": ""}, timeout=START_SECONDS)
    if response.status_code != 200:
        raise RuntimeError(f"loading {MODEL_NAME} in apt-fast serve failed: HTTP {response.status_code} "
                           f"{response.text}")


def _default_workers() -> int:
    from ...commands.serve import default_parallel

    return default_parallel(os.environ.get("OLLAMA_NUM_PARALLEL"))


def _direct_loop(served: ServedModel) -> list[tuple[str, str]]:
    """The baseline: each request in turn through ``model.generate`` (greedy); (prompt, text decoded as the server
    decodes it) per request."""
    results = []
    for index in range(served.requests):
        prompt = served.prompts[index % len(served.prompts)]
        ids = torch.tensor([served.tokenizer.encode(prompt)])  # [1, S]
        with torch.no_grad():
            generated = served.model.generate(ids, max_length=served.new_tokens, do_sample=False)  # [1, <= N]
        results.append((prompt, served.tokenizer.decode(generated[0].tolist(), skip_special_tokens=True)))
    return results


def _load_run(served: ServedModel) -> LoadReport:
    """The candidate: CLIENTS concurrent clients send the same requests to the server."""
    report = run_load(served.url, MODEL_NAME, served.prompts, {"temperature": 0, "num_predict": served.new_tokens},
                      clients=CLIENTS, requests=served.requests, time_limit=600.0)
    served.reports.append(report)
    if len(report.records) < served.requests:
        raise RuntimeError(f"the load run hit its time limit after {len(report.records)} of {served.requests} "
                           f"requests")
    return report


def _check_served_texts(direct: list[tuple[str, str]], report: LoadReport) -> dict:
    """No request failed, and every served text equals the direct loop's for its prompt."""
    if report.errors:
        raise AssertionError(f"{len(report.errors)} of {len(report.records)} requests failed, the first: "
                             f"{report.errors[0]}")
    expected = dict(direct)
    differing = [r.prompt for r in report.records if r.text != expected[r.prompt]]
    if differing:
        raise AssertionError(f"{len(differing)} of {len(report.records)} served texts differ from model.generate's, "
                             f"the first for the prompt {differing[0]!r}")
    return {"served_texts_equal": f"{len(report.records)}/{len(report.records)}"}


def _pooled_load_figures(served: ServedModel) -> dict:
    """Every load run of the case pooled: the figures of the load generator's report."""
    pooled = LoadReport(CLIENTS, sum(r.wall for r in served.reports), [x for r in served.reports for x in r.records])
    figures = pooled.summary()
    figures["load_runs"] = len(served.reports)
    return {"load": figures}


CASES = [
    BenchCase(
        name=f"serve_load[{CLIENTS} clients]",
        family="serve",
        shape=lambda served: f"{served.requests} requests x <= {served.new_tokens} greedy tokens, {CLIENTS} streaming "
                             f"clients, {_default_workers()} workers; D=256, 2+2 layers, d_ff 1024, byte vocab "
                             f"{served.tokenizer.vocab_size}",
        make_inputs=_served_model,
        prepare=lambda served: served,
        baseline=_direct_loop,
        candidate=_load_run,
        check=_check_served_texts,
        baseline_name="model.generate, one request at a time",
        targets=Targets(max_time_ratio=1.0),
        report=_pooled_load_figures,
        measure_peak=False,  # the candidate's memory is in the server's process
        requires=("fastapi", "uvicorn", "httpx"),
        requires_hint="pip install 'apt-fast[serve]'",
        repeats=3,
    ),
]
