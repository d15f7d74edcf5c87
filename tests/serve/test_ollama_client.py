"""The real `ollama` client against a running `apt-fast serve`: list, version, generate and chat (streamed and
not), options, stop sequences, load and unload."""

from __future__ import annotations

import threading
import time

import pytest

ollama = pytest.importorskip("ollama")

STATS = ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count",
         "eval_duration")
SEEDED = {"seed": 7, "num_predict": 6, "temperature": 0.8}


@pytest.fixture
def client(serve):
    return ollama.Client(host=serve().url)


def test_root_version_and_list(serve):
    import httpx

    server = serve()
    assert httpx.get(server.url).text == "Ollama is running"
    assert httpx.head(server.url).status_code == 200
    client = ollama.Client(host=server.url)
    version = httpx.get(f"{server.url}/api/version").json()["version"]
    assert all(part.isdigit() for part in version.split("."))
    [model] = client.list().models
    assert model.model == "tiny:latest" and model.details.family == "apt" and model.size > 0


def test_generate_not_streamed_has_the_final_stats(client):
    reply = client.generate(model="tiny", prompt="hello", options=SEEDED)
    assert reply.done and reply.done_reason == "length" and reply.model == "tiny:latest"
    assert reply.eval_count == 6 and reply.prompt_eval_count == len("hello".encode())
    assert all(isinstance(getattr(reply, stat), int) and getattr(reply, stat) >= 0 for stat in STATS)
    assert reply.total_duration >= reply.eval_duration > 0


def test_streamed_generate_joins_to_the_unstreamed_text(client):
    whole = client.generate(model="tiny:latest", prompt="hello", options=SEEDED).response
    chunks = list(client.generate(model="tiny", prompt="hello", options=SEEDED, stream=True))
    assert all(not c.done for c in chunks[:-1]) and chunks[-1].done and chunks[-1].done_reason == "length"
    assert "".join(c.response for c in chunks) == whole
    assert chunks[-1].response == "" and chunks[-1].eval_count == 6


def test_seed_gives_the_same_text_and_another_seed_another(client):
    first = client.generate(model="tiny", prompt="abc", options={"seed": 1, "num_predict": 12}).response
    again = client.generate(model="tiny", prompt="abc", options={"seed": 1, "num_predict": 12}).response
    other = client.generate(model="tiny", prompt="abc", options={"seed": 2, "num_predict": 12}).response
    assert first == again != other


def test_chat_streamed_and_not(client):
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    reply = client.chat(model="tiny", messages=messages, options=SEEDED)
    assert reply.message.role == "assistant" and reply.done and reply.eval_count == 6
    chunks = list(client.chat(model="tiny", messages=messages, options=SEEDED, stream=True))
    assert all(c.message.role == "assistant" for c in chunks)
    assert "".join(c.message.content for c in chunks) == reply.message.content
    assert chunks[-1].done and chunks[-1].message.content == "" and chunks[-1].done_reason == "length"


def test_stop_sequence_cuts_the_text_before_it(client):
    options = {"seed": 3, "num_predict": 20, "temperature": 0}
    full = client.generate(model="tiny", prompt="xyz", options=options).response
    assert len(full) >= 4
    stop = full[2:4]
    cut = full[: full.index(stop)]
    for stream in (False, True):
        reply = client.generate(model="tiny", prompt="xyz", options={**options, "stop": [stop]}, stream=stream)
        chunks = list(reply) if stream else [reply]
        assert "".join(c.response for c in chunks) == cut
        assert chunks[-1].done_reason == "stop"


def test_num_predict_and_greedy_temperature_zero(client):
    greedy = [client.generate(model="tiny", prompt="q", options={"temperature": 0, "num_predict": 5, "seed": s})
              for s in (1, 2)]
    assert greedy[0].response == greedy[1].response and greedy[0].eval_count == 5


def test_unknown_options_are_ignored(client):
    reply = client.generate(model="tiny", prompt="q", options={"num_predict": 2, "mirostat": 1})
    assert reply.done and reply.eval_count == 2


def test_empty_prompt_loads_and_keep_alive_zero_unloads(client):
    assert client.ps().models == []
    loaded = client.generate(model="tiny", prompt="")
    assert loaded.done_reason == "load"
    [running] = client.ps().models
    assert running.model == "tiny:latest" and running.size > 0
    unloaded = client.generate(model="tiny", prompt="", keep_alive=0)
    assert unloaded.done_reason == "unload" and client.ps().models == []
    chat_loaded = client.chat(model="tiny", messages=[])
    assert chat_loaded.done_reason == "load" and chat_loaded.message.content == ""


def test_keep_alive_zero_unloads_after_the_request(client):
    client.generate(model="tiny", prompt="q", options={"num_predict": 1}, keep_alive=0)
    assert client.ps().models == []
    client.generate(model="tiny", prompt="q", options={"num_predict": 1}, keep_alive="5m")
    assert [m.model for m in client.ps().models] == ["tiny:latest"]


def test_show_gives_model_info_details_template_and_parameters(serve, tmp_path):
    from worker_hooks import Gate

    gate = Gate(tmp_path)
    server = serve(parallel=1, max_queue=0, worker_setup=gate.setup)
    client = ollama.Client(host=server.url)
    shown = client.show("tiny")
    assert shown.details.family == "apt" and shown.details.format == "safetensors"
    assert shown.modelinfo["general.architecture"] == "apt" and shown.modelinfo["apt.context_length"] == 48
    assert shown.modelinfo["apt.embedding_length"] == 32 and "{{ .Prompt }}" in shown.template
    assert shown.parameters == "num_ctx 48" and "/" not in shown.modelfile
    with pytest.raises(ollama.ResponseError) as raised:
        client.show("nope")
    assert (raised.value.status_code, raised.value.error) == (404, "model 'nope' not found")
    busy = threading.Thread(target=client.generate, kwargs=dict(model="tiny", prompt="q", options={"num_predict": 2}))
    busy.start()  # the one worker is held at the gate, the queue takes nothing more
    while gate.started == 0:
        time.sleep(0.01)
    assert client.show("tiny") == shown  # answered without a worker
    gate.open()
    busy.join()


def test_an_idle_model_is_unloaded_once_its_keep_alive_passed(serve):
    import time

    server = serve(keep_alive=1.0)
    client = ollama.Client(host=server.url)
    first = client.generate(model="tiny", prompt="q", options={"num_predict": 1})
    assert "tiny:latest" in server.app.state.registry.states and first.load_duration > 0
    deadline = time.monotonic() + 10
    while "tiny:latest" in server.app.state.registry.states:  # unloaded by the server, without a request
        assert time.monotonic() < deadline
        time.sleep(0.05)
    again = client.generate(model="tiny", prompt="q", options={"num_predict": 1}, keep_alive=-1)
    assert again.load_duration > 0  # the worker had dropped it
    [running] = client.ps().models
    assert running.expires_at.year == 9999
    assert client.generate(model="tiny", prompt="q", options={"num_predict": 1}).load_duration == 0


def test_embed_gives_unit_mean_pooled_encoder_states(client, tiny_model_dir):
    import torch

    import apt_fast

    reply = client.embed(model="tiny", input=["hello", "a longer text", "hello"])
    vectors = torch.tensor(reply.embeddings, dtype=torch.float64)  # [3, d_model]
    assert vectors.shape == (3, 32) and reply.prompt_eval_count == len("hellohelloa longer text")
    torch.testing.assert_close(vectors.norm(dim=1), torch.ones(3, dtype=torch.float64))
    assert torch.equal(vectors[0], vectors[2]) and not torch.allclose(vectors[0], vectors[1])
    model, tokenizer = apt_fast.load(tiny_model_dir)
    with torch.no_grad():
        states = model.encode(torch.tensor([tokenizer.encode("a longer text")]))[0].double()  # [S, D]
    expected = torch.nn.functional.normalize(states.mean(dim=0), dim=0)
    # the served model is patched with apt_fast's kernels, the reference is the unpatched model: both compute in
    # fp32, so on these unit vectors they differ by fp32 rounding, far below 1e-5
    torch.testing.assert_close(vectors[1], expected, atol=1e-5, rtol=0)
    single = client.embed(model="tiny", input="hello").embeddings
    assert single == [reply.embeddings[0]]
    assert client.embeddings(model="tiny", prompt="hello").embedding == reply.embeddings[0]  # the older route


def test_embed_over_the_context_is_cut_unless_truncate_is_false(client):
    assert client.embed(model="tiny", input="x" * 60).prompt_eval_count == 48
    with pytest.raises(ollama.ResponseError) as raised:
        client.embed(model="tiny", input="x" * 60, truncate=False)
    assert (raised.value.status_code, raised.value.error) == (
        400, "input[0] is 60 tokens, longer than the model's context of 48 tokens (truncate is false)")


TEMPLATE = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}<assistant>"


def test_chat_uses_the_tokenizers_chat_template_when_it_has_one(serve):
    from worker_hooks import MODULE

    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}]
    greedy = {"temperature": 0, "num_predict": 8}
    client = ollama.Client(host=serve().url)
    default_layout = client.generate(model="tiny", prompt="system: s\nhi", raw=True, options=greedy).response
    reply = client.chat(model="tiny", messages=messages, options=greedy)
    assert (reply.message.content, reply.prompt_eval_count) == (default_layout, len("system: s\nhi"))
    client = ollama.Client(host=serve(worker_setup=(MODULE, "set_chat_template", TEMPLATE)).url)
    templated = client.generate(model="tiny", prompt="<system>s<user>hi<assistant>", raw=True, options=greedy)
    reply = client.chat(model="tiny", messages=messages, options=greedy)
    assert (reply.message.content, reply.prompt_eval_count) == (templated.response, len("<system>s<user>hi<assistant>"))
    broken = (MODULE, "set_chat_template", "{{ messages[0].content | no_such_filter }}")
    with pytest.raises(ollama.ResponseError) as raised:
        ollama.Client(host=serve(worker_setup=broken).url).chat(model="tiny", messages=messages)
    assert raised.value.status_code == 400 and raised.value.error.startswith("the model's chat template failed")


def test_show_gives_the_chat_template_as_an_ollama_template(serve):
    from worker_hooks import MODULE

    server = serve(worker_setup=(MODULE, "set_chat_template", TEMPLATE))
    shown = ollama.Client(host=server.url).show("tiny")
    assert shown.template == ("{{ if .System }}<system>{{ .System }}<user>{{ .Prompt }}<assistant>{{ else }}"
                              "<user>{{ .Prompt }}<assistant>{{ end }}")


def test_generate_system_line_and_raw(client):
    reply = client.generate(model="tiny", prompt="hi", system="be brief", options={"num_predict": 1})
    assert reply.prompt_eval_count == len("system: be brief\nhi")
    raw = client.generate(model="tiny", prompt="system: be brief\nhi", raw=True, options={"num_predict": 1})
    assert raw.prompt_eval_count == reply.prompt_eval_count
    with pytest.raises(ollama.ResponseError) as raised:
        client.generate(model="tiny", prompt="hi", system="s", raw=True)
    assert (raised.value.status_code, raised.value.error) == (400, "raw mode does not support template, system, "
                                                                   "or context")


def test_a_requests_go_template_lays_out_the_prompt(client):
    template = "{{- if .System }}<s>{{ .System }}</s>\n{{- end }}\n<u>{{ .Prompt }}</u>{{ .Response }}"
    reply = client.generate(model="tiny", prompt="hi", system="be brief", template=template,
                            options={"num_predict": 1})
    assert reply.prompt_eval_count == len("<s>be brief</s>\n<u>hi</u>")
    plain = client.generate(model="tiny", prompt="hi", template=template, options={"num_predict": 1})
    assert plain.prompt_eval_count == len("\n<u>hi</u>")
    with pytest.raises(ollama.ResponseError) as raised:
        client.generate(model="tiny", prompt="hi", template="{{ range .Messages }}{{ end }}")
    assert (raised.value.status_code, raised.value.error) == (
        400, "template: unsupported action '{{ range .Messages }}' (apt-fast serve supports .System, .Prompt, "
             ".Response, if, else and end)")
    with pytest.raises(ollama.ResponseError) as raised:
        client.generate(model="tiny", prompt="hi", template="{{ if .System }}x")
    assert raised.value.error == "template: {{ if .System }} has no {{ end }}"
