"""GGUF export and import of APT models, and the Ollama bundle.

    from apt_fast.export import export_gguf, load_gguf
    export_gguf(model, "apt-q8_0.gguf", dtype="q8_0", tokenizer=tokenizer)
    model, tokenizer = load_gguf("apt-q8_0.gguf")   # also apt_fast.load("apt-q8_0.gguf")

The file format (types, reader, metadata keys, tensor names) is apt_fast.gguf; ``load_gguf`` lives with
the model (apt_fast.models.apt.gguf_loading) and is imported on first use, since the model side pulls in
transformers (seconds to import). The ``gguf`` package is imported only when a file is written.
"""

from ..gguf.reader import GGUFError, read_gguf
from ..gguf.tensor_types import TYPES as GGUF_TYPES
from .checkpoint import export_checkpoint
from .ollama import export_ollama
from .writer import export_gguf


def __getattr__(name):
    if name == "load_gguf":
        from ..models.apt.gguf_loading import load_gguf

        return load_gguf
    raise AttributeError(f"module 'apt_fast.export' has no attribute {name!r}")


__all__ = ["GGUF_TYPES", "GGUFError", "export_checkpoint", "export_gguf", "export_ollama", "load_gguf", "read_gguf"]
