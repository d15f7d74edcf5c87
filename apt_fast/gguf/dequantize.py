"""A tensor of a parsed GGUF file as float32, in its PyTorch shape: f32, f16 and bf16 are widened here,
the block types are dequantized by gguf-py (the PyPI ``gguf`` package)."""

from __future__ import annotations

import numpy as np
import torch

from .reader import GGUFFile


def dequantize(file: GGUFFile, name: str) -> torch.Tensor:
    """Tensor ``name`` as float32 in its PyTorch shape."""
    info = file.tensors[name]
    raw = file.raw(name)
    kind = info.qtype.name
    if kind == "f32":
        values = raw.view(np.float32).copy()
    elif kind == "f16":
        values = raw.view(np.float16).astype(np.float32)
    elif kind == "bf16":
        values = (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    else:
        import gguf

        blocks = raw.reshape(-1, info.qtype.type_size)
        values = gguf.quants.dequantize(blocks, gguf.GGMLQuantizationType(info.qtype.ggml_id))
    return torch.from_numpy(values.reshape(info.shape))
