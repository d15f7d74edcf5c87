"""``export_checkpoint``: an APT checkpoint on disk as one GGUF file; what `apt-fast export-gguf` and the
demo's export stage run."""

from __future__ import annotations

import os

from ..gguf.tensor_types import gguf_type
from ..validation import check_output_file
from .ollama import gguf_sampling, sampling_settings
from .writer import FILE_TYPES, export_gguf


def export_checkpoint(model_path: str | os.PathLike, output: str | os.PathLike, dtype: str = "f16", *,
                      name: str | None = None, progress: bool = True) -> str:
    """Load the checkpoint at ``model_path`` (any format ``apt_fast.load`` reads) and write the model and
    its tokenizer to the GGUF file ``output`` with :func:`export_gguf` (atomically: a failure leaves no
    partial file), with the sampling settings of the model's generation_config.json; returns the path.

    Where ``output`` goes is checked before the model is loaded (a writable directory, or one that can be
    created, which it then is); an existing file there is replaced. ``progress``: show a progress bar.
    """
    from ..models.apt.loading import load

    output = check_output_file("output", output)
    model, tokenizer = load(model_path)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    return export_gguf(model, output, dtype, tokenizer, name=name, progress=progress,
                       sampling=gguf_sampling(sampling_settings(model_path)))


def export_summary(path: str, dtype: str) -> str:
    """The line that reports an export: ``wrote <path> (<type>, general.file_type <ggml file-type code>)``."""
    qtype = gguf_type(dtype)
    return f"wrote {path} ({qtype.name}, general.file_type {FILE_TYPES[qtype.name]})"
