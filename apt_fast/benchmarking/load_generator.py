"""A load generator for `apt-fast serve`: concurrent clients on one asyncio loop stream ``/api/generate`` requests
until a request count or a time limit is reached, and the report gives requests/s, tokens/s, time to first token,
total latency and errors (httpx, which the serve and test extras install)."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RequestRecord:
    prompt: str
    text: str
    tokens: int  # eval_count of the final chunk
    ttft: float  # seconds from sending to the first text chunk (to the final chunk when there was no text)
    latency: float  # seconds from sending to the final chunk
    error: str = ""  # empty when the request succeeded


@dataclass
class LoadReport:
    clients: int
    wall: float  # seconds from the first request sent to the last one finished
    records: list[RequestRecord] = field(default_factory=list)

    @property
    def succeeded(self) -> list[RequestRecord]:
        return [r for r in self.records if not r.error]

    @property
    def errors(self) -> list[str]:
        return [r.error for r in self.records if r.error]

    @property
    def tokens(self) -> int:
        return sum(r.tokens for r in self.succeeded)

    def summary(self) -> dict:
        done = self.succeeded
        first_error = {"first_error": self.errors[0]} if self.errors else {}
        return {"clients": self.clients, "requests": len(done), "errors": len(self.errors), **first_error,
                "seconds": round(self.wall, 3),
                "requests_per_s": len(done) / self.wall, "tokens_per_s": self.tokens / self.wall,
                "ttft_p50_ms": _percentile([r.ttft for r in done], 50) * 1e3,
                "ttft_p99_ms": _percentile([r.ttft for r in done], 99) * 1e3,
                "latency_p50_ms": _percentile([r.latency for r in done], 50) * 1e3,
                "latency_p99_ms": _percentile([r.latency for r in done], 99) * 1e3}


def _percentile(values: list[float], p: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def run_load(url: str, model: str, prompts: list[str], options: dict, clients: int = 8, requests: int = 64,
             time_limit: float = 20.0, request_timeout: float = 60.0) -> LoadReport:
    """``clients`` concurrent streams of raw ``/api/generate`` requests to the server at ``url``, taking the prompts
    in turn, until ``requests`` have been sent or ``time_limit`` seconds have passed (requests under way finish)."""
    if clients < 1 or requests < 1 or time_limit <= 0:
        raise ValueError(f"run_load needs clients >= 1, requests >= 1 and time_limit > 0, got clients={clients}, "
                         f"requests={requests}, time_limit={time_limit}")
    return asyncio.run(_run(url, model, prompts, options, clients, requests, time_limit, request_timeout))


async def _run(url, model, prompts, options, clients, requests, time_limit, request_timeout) -> LoadReport:
    import httpx

    report = LoadReport(clients, 0.0)
    sent = iter(range(requests))
    start = time.perf_counter()
    deadline = start + time_limit

    async def client(http: httpx.AsyncClient) -> None:
        for index in sent:
            if time.perf_counter() >= deadline:
                return
            prompt = prompts[index % len(prompts)]
            report.records.append(await _one_request(http, model, prompt, options))

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=request_timeout, limits=limits) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    report.wall = time.perf_counter() - start
    return report


async def _one_request(http, model: str, prompt: str, options: dict) -> RequestRecord:
    body = {"model": model, "prompt": prompt, "raw": True, "stream": True, "options": options}
    pieces, first, tokens = [], None, None
    start = time.perf_counter()
    try:
        async with http.stream("POST", "/api/generate", json=body) as response:
            if response.status_code != 200:
                detail = (await response.aread()).decode(errors="replace")
                return RequestRecord(prompt, "", 0, 0.0, time.perf_counter() - start,
                                     f"HTTP {response.status_code}: {detail}")
            async for line in response.aiter_lines():
                if not line:
                    continue
                chunk = json.loads(line)
                if "error" in chunk:
                    return RequestRecord(prompt, "".join(pieces), 0, 0.0, time.perf_counter() - start,
                                         f"stream error: {chunk['error']}")
                if chunk.get("response") and first is None:
                    first = time.perf_counter() - start
                pieces.append(chunk.get("response", ""))
                if chunk.get("done"):
                    tokens = int(chunk.get("eval_count", 0))
    except Exception as error:  # a failed request is counted, the load goes on
        return RequestRecord(prompt, "".join(pieces), 0, 0.0, time.perf_counter() - start,
                             f"{type(error).__name__}: {error}")
    latency = time.perf_counter() - start
    if tokens is None:
        return RequestRecord(prompt, "".join(pieces), 0, 0.0, latency, "the stream ended without its final chunk")
    return RequestRecord(prompt, "".join(pieces), tokens, latency if first is None else first, latency)
