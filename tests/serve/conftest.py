"""A real `apt-fast serve` app under uvicorn on an ephemeral loopback port, with a tiny byte-level APT model."""

from __future__ import annotations

import threading
import time

import pytest
import torch

TINY = dict(d_model=32, num_heads=2, num_encoder_layers=1, num_decoder_layers=1, d_ff=64, max_seq_len=48,
            dropout=0.0, use_dbc_dac=False)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread (and leave the other core to other work)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    import apt_fast
    from apt_fast.models.apt import APTConfig, APTModel
    from apt_fast.models.apt.tokenization_byte import APTByteTokenizer

    tokenizer = APTByteTokenizer()
    torch.manual_seed(0)
    config = APTConfig(vocab_size=tokenizer.vocab_size, pad_token_id=0, bos_token_id=1, eos_token_id=2, **TINY)
    path = tmp_path_factory.mktemp("models") / "tiny"
    apt_fast.save(APTModel(config).eval(), path, tokenizer)
    return str(path)


class RunningServer:
    def __init__(self, app):
        import uvicorn

        self.app = app
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the server did not start"
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)
        self.app.state.pool.shutdown()


@pytest.fixture
def serve(tiny_model_dir):
    """``serve(**config)``: a running server offering the tiny model as ``tiny`` (config: ServeConfig fields);
    the test is skipped without the serve extra."""
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    from apt_fast.serve.app import ServeConfig, create_app

    servers = []

    def start(**config) -> RunningServer:
        server = RunningServer(create_app(ServeConfig(models={"tiny:latest": tiny_model_dir}, **config)))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
