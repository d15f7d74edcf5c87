"""The real `openai` client against a running `apt-fast serve`: models, chat completions and completions,
streamed (SSE ending with [DONE]) and not, usage and stop sequences, embeddings."""

from __future__ import annotations

import pytest

openai = pytest.importorskip("openai")
ollama = pytest.importorskip("ollama")

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def server(serve):
    return serve()


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def test_models(client):
    assert [m.id for m in client.models.list().data] == ["tiny:latest"]


def test_chat_completion_with_usage_and_finish_reason(client):
    reply = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=5, seed=4)
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    assert reply.choices[0].finish_reason == "length" and reply.choices[0].message.role == "assistant"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (2, 5, 7)


def test_streamed_chat_completion_matches_the_whole_reply(client):
    whole = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=6, seed=4)
    chunks = list(client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=6, seed=4, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finish] == ["length"] and finish[0].choices[0].delta.content is None
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 6


def test_sse_stream_ends_with_done(server):
    import httpx

    body = {"model": "tiny", "messages": MESSAGES, "max_tokens": 3, "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"


def test_stop_and_greedy(client):
    full = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=20, temperature=0)
    text = full.choices[0].message.content
    stop = text[3:5]
    cut = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=20, temperature=0, stop=stop)
    assert cut.choices[0].message.content == text[: text.index(stop)] and cut.choices[0].finish_reason == "stop"


def test_completions_streamed_and_not(client):
    whole = client.completions.create(model="tiny", prompt="abc", max_tokens=4, seed=9)
    assert whole.object == "text_completion" and whole.usage.completion_tokens == 4
    chunks = list(client.completions.create(model="tiny", prompt="abc", max_tokens=4, seed=9, stream=True))
    assert "".join(c.choices[0].text for c in chunks) == whole.choices[0].text
    assert chunks[-1].choices[0].finish_reason == "length"


def test_embeddings_are_the_ollama_vectors(client, server):
    vectors = ollama.Client(host=server.url).embed(model="tiny", input=["hello", "a longer text"]).embeddings
    reply = client.embeddings.create(model="tiny", input=["hello", "a longer text"])
    assert [d.embedding for d in reply.data] == vectors and [d.index for d in reply.data] == [0, 1]
    assert reply.usage.prompt_tokens == len("helloa longer text") and reply.model == "tiny:latest"
    as_floats = client.embeddings.create(model="tiny", input="hello", encoding_format="float")
    assert as_floats.data[0].embedding == vectors[0]
    with pytest.raises(openai.BadRequestError) as raised:
        client.embeddings.create(model="tiny", input="x" * 60)
    assert raised.value.body["message"] == ("input[0] is 60 tokens, longer than the model's context of 48 tokens "
                                            "(truncate is false)")
