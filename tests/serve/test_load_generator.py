"""The load generator of the serve benchmark against a real server: its figures, its bounds, failed requests
counted as errors; and the benchmark case's check."""

from __future__ import annotations

import pytest

from apt_fast.benchmarking.load_generator import LoadReport, RequestRecord, run_load

pytest.importorskip("httpx")

GREEDY = {"temperature": 0, "num_predict": 8}


def test_every_request_is_recorded_with_its_figures(serve):
    server = serve(parallel=2)
    report = run_load(server.url, "tiny", ["hello", "world"], GREEDY, clients=3, requests=7)
    assert len(report.records) == 7 and not report.errors
    assert {r.prompt for r in report.records} == {"hello", "world"}
    assert all(0 < r.ttft <= r.latency <= report.wall and 0 < r.tokens <= 8 for r in report.records)
    by_prompt = {}
    for record in report.records:  # greedy: one text per prompt, however the requests interleaved
        assert by_prompt.setdefault(record.prompt, record.text) == record.text
    figures = report.summary()
    assert figures["requests"] == 7 and figures["errors"] == 0 and "first_error" not in figures
    assert figures["tokens_per_s"] == pytest.approx(report.tokens / report.wall)
    assert figures["ttft_p50_ms"] <= figures["ttft_p99_ms"] and figures["latency_p50_ms"] <= figures["latency_p99_ms"]


def test_failed_requests_are_errors_with_their_bodies(serve):
    report = run_load(serve().url, "nope", ["hello"], GREEDY, clients=2, requests=3)
    assert len(report.errors) == 3 and report.tokens == 0
    assert report.errors[0] == 'HTTP 404: {"error":"model \'nope\' not found"}'
    assert report.summary()["first_error"] == report.errors[0]


def test_the_time_limit_stops_sending(serve):
    server = serve()
    report = run_load(server.url, "tiny", ["hello"], {"temperature": 0, "num_predict": 40}, clients=1,
                      requests=10_000, time_limit=0.3)
    assert 1 <= len(report.records) < 10_000 and not report.errors


def test_bad_bounds_are_refused():
    with pytest.raises(ValueError, match="run_load needs clients >= 1, requests >= 1 and time_limit > 0, got "
                                         "clients=0, requests=5, time_limit=20.0"):
        run_load("http://127.0.0.1:9", "tiny", ["x"], {}, clients=0, requests=5)


def test_the_benchmark_check_wants_no_errors_and_the_direct_texts():
    from apt_fast.benchmarking.cases.serve_load import _check_served_texts

    direct = [("a", "one"), ("b", "two")]
    ok = LoadReport(2, 1.0, [RequestRecord("a", "one", 3, 0.1, 0.2), RequestRecord("b", "two", 3, 0.1, 0.2)])
    assert _check_served_texts(direct, ok) == {"served_texts_equal": "2/2"}
    differing = LoadReport(2, 1.0, [RequestRecord("a", "one", 3, 0.1, 0.2), RequestRecord("b", "tw", 2, 0.1, 0.2)])
    with pytest.raises(AssertionError, match="1 of 2 served texts differ from model.generate's, the first for the "
                                             "prompt 'b'"):
        _check_served_texts(direct, differing)
    failed = LoadReport(2, 1.0, [RequestRecord("a", "", 0, 0.0, 0.2, "HTTP 503: busy")])
    with pytest.raises(AssertionError, match="1 of 1 requests failed, the first: HTTP 503: busy"):
        _check_served_texts(direct, failed)
