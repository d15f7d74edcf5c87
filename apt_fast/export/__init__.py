"""GGUF export and import of APT models, and the Ollama bundle.

    from apt_fast.export import export_gguf, load_gguf
    export_gguf(model, "apt-q8_0.gguf", dtype="q8_0", tokenizer=tokenizer)
    model, tokenizer = load_gguf("apt-q8_0.gguf")   # also apt_fast.load("apt-q8_0.gguf")

The ``gguf`` package is imported only when a file is written.
"""

from .importer import load_gguf
from .ollama import export_ollama
from .quantize import TYPES as GGUF_TYPES
from .reader import GGUFError, read_gguf
from .writer import export_gguf

__all__ = ["GGUF_TYPES", "GGUFError", "export_gguf", "export_ollama", "load_gguf", "read_gguf"]
