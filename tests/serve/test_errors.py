"""Error statuses and bodies: Ollama's {"error": "..."} and OpenAI's {"error": {"message", "type", ...}}."""

from __future__ import annotations

import pytest

httpx = pytest.importorskip("httpx")
ollama = pytest.importorskip("ollama")
openai = pytest.importorskip("openai")


@pytest.fixture
def server(serve):
    return serve(max_body=4096)


def test_unknown_model_is_404_in_both_apis(server):
    with pytest.raises(ollama.ResponseError) as raised:
        ollama.Client(host=server.url).chat(model="nope", messages=[{"role": "user", "content": "x"}])
    assert (raised.value.status_code, raised.value.error) == (404, "model 'nope' not found")
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert raised.value.body == {"message": "model 'nope' not found", "type": "not_found_error", "param": None,
                                 "code": None}


@pytest.mark.parametrize("content, message", [
    (b"", "missing request body"),
    (b"{not json", "invalid JSON in the request body: Expecting property name enclosed in double quotes: "
                   "line 1 column 2 (char 1)"),
    (b"[1]", "the request body must be a JSON object, got list"),
    (b'{"prompt": "x"}', "model is required"),
])
def test_bad_bodies_are_400(server, content, message):
    for route in ("/api/generate", "/api/chat"):
        response = httpx.post(server.url + route, content=content)
        assert (response.status_code, response.json()) == (400, {"error": message})
    response = httpx.post(server.url + "/v1/chat/completions", content=content)
    assert response.status_code == 400 and response.json()["error"]["message"] == message
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_prompt_longer_than_the_context_is_400_naming_both_lengths(server):
    response = httpx.post(server.url + "/api/generate", json={"model": "tiny", "prompt": "x" * 60})
    assert (response.status_code, response.json()) == (
        400, {"error": "the prompt is 60 tokens, longer than the model's context of 48 tokens"})


def test_foreign_host_header_is_403(server):
    for host in ("evil.example", "evil.example:11434", "8.8.8.8"):
        response = httpx.get(server.url + "/api/tags", headers={"Host": host})
        assert (response.status_code, response.json()) == (
            403, {"error": "forbidden: the Host header does not name this machine"})
    for host in ("localhost:11434", "127.0.0.1", "[::1]:80", "box.local", "192.168.1.5"):
        assert httpx.get(server.url + "/api/tags", headers={"Host": host}).status_code == 200


def test_host_header_is_not_checked_when_bound_elsewhere(serve):
    server = serve(check_host=False)
    assert httpx.get(server.url + "/api/tags", headers={"Host": "evil.example"}).status_code == 200


def test_body_over_the_cap_is_413(server):
    body = b'{"model": "tiny", "prompt": "' + b"x" * 5000 + b'"}'
    response = httpx.post(server.url + "/api/generate", content=body)
    assert (response.status_code, response.json()) == (413, {"error": "request body too large: the limit is 4096 "
                                                                      "bytes"})
    chunked = httpx.post(server.url + "/api/generate", content=iter([body[:3000], body[3000:]]))
    assert (chunked.status_code, chunked.json()) == (413, {"error": "request body too large: the limit is 4096 "
                                                                   "bytes"})


def test_bad_option_is_400(server):
    response = httpx.post(server.url + "/api/generate", json={"model": "tiny", "prompt": "x",
                                                              "options": {"top_p": 2}})
    assert (response.status_code, response.json()) == (400, {"error": "option top_p must be in (0, 1], got 2.0"})


def test_cors_only_for_listed_origins(serve):
    preflight = {"Access-Control-Request-Method": "POST"}
    server = serve(origins=("http://app.localhost:3000",))
    allowed = httpx.options(server.url + "/api/chat", headers={"Origin": "http://app.localhost:3000", **preflight})
    assert allowed.headers.get("access-control-allow-origin") == "http://app.localhost:3000"
    other = httpx.options(server.url + "/api/chat", headers={"Origin": "http://evil.example", **preflight})
    assert "access-control-allow-origin" not in other.headers
    unlisted = serve()
    tags = httpx.get(unlisted.url + "/api/tags", headers={"Origin": "http://app.localhost:3000"})
    assert tags.status_code == 200 and "access-control-allow-origin" not in tags.headers
