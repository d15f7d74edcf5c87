"""Instruments the worker processes of a test server (ServeConfig.worker_setup = (this module, function, *args)):
a gate that holds every decode step until the test opens it, a decoder that fails after one token, a prompt that
kills its worker, a chat template on the tokenizer, and a record of each worker's threads. ``Gate`` is the test's
side of the gate: files in a directory, as the workers are other processes."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

MODULE = "worker_hooks"


class Gate:
    """The test's side: ``setup`` for the server, ``open()``, ``started`` (generations begun) and ``steps`` (tokens
    let through)."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.setup = (MODULE, "gate", str(self.directory))

    def open(self) -> None:
        (self.directory / "open").touch()

    def close(self) -> None:
        (self.directory / "open").unlink(missing_ok=True)

    @property
    def started(self) -> int:
        return len(list(self.directory.glob("started-*")))

    @property
    def steps(self) -> int:
        path = self.directory / "steps"
        return path.stat().st_size if path.exists() else 0


def gate(directory: str) -> None:
    """Each generation marks its start; each decoded token waits until ``directory/open`` exists."""
    from apt_fast.serve import generation

    real_steps = generation.decode_steps

    def gated_steps(*args, **kwargs):
        (Path(directory) / f"started-{uuid.uuid4().hex}").touch()
        steps = real_steps(*args, **kwargs)
        yield next(steps)  # the encoder
        for token in steps:
            while not os.path.exists(os.path.join(directory, "open")):
                time.sleep(0.002)
            with open(os.path.join(directory, "steps"), "a") as f:
                f.write(".")
            yield token

    generation.decode_steps = gated_steps


def fail_after_one_token() -> None:
    from apt_fast.serve import generation

    real_steps = generation.decode_steps

    def failing_steps(*args, **kwargs):
        steps = real_steps(*args, **kwargs)
        yield next(steps)  # the encoder
        yield ord("o") + 3  # byte "o" in the byte tokenizer
        raise RuntimeError("the decoder broke")

    generation.decode_steps = failing_steps


def exit_on_prompt(prompt: str, code: int) -> None:
    """A generation of ``prompt`` ends its worker process with exit ``code``."""
    from apt_fast.serve import generation

    real_generate = generation._generate

    def generate(entry, loaded_now, request, job, start):
        if request.prompt == prompt:
            os._exit(code)
        return real_generate(entry, loaded_now, request, job, start)

    generation._generate = generate


def set_chat_template(template: str) -> None:
    """Every model the worker loads gets ``template`` as its tokenizer's chat template."""
    from apt_fast.serve import models

    real_load = models.load_for_serving

    def load_with_template(path):
        entry = real_load(path)
        entry.tokenizer.chat_template = template
        return entry

    models.load_for_serving = load_with_template


def record_threads(directory: str) -> None:
    import torch

    (Path(directory) / f"threads-{os.getpid()}").write_text(str(torch.get_num_threads()))
