"""How the export streams the tensor data section: the pieces each tensor is converted in, the one
scratch buffer they are converted into, and the zero padding that aligns every tensor.

A converted tensor is never held whole: it is converted a piece of CHUNK_ELEMENTS at a time into the
scratch buffer and written from there while the bytes are still in cache, so the buffer is small,
its pages are faulted in once per export, and no converted byte makes a round trip through memory
before the write copies it into the page cache. f32 tensors are written from the model's own memory.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..gguf.tensor_types import BLOCK_SIZE, GGUFType

CHUNK_ELEMENTS = 1 << 20  # fp32 elements per piece: 4 MiB read, at most 2 MiB (F16) written
assert CHUNK_ELEMENTS % BLOCK_SIZE == 0  # every piece of a block-quantized tensor is whole blocks


def pieces(tensor: torch.Tensor, qtype: GGUFType) -> list[torch.Tensor]:
    """``tensor`` flattened into consecutive 1-D slices of at most CHUNK_ELEMENTS (one slice for f32)."""
    flat = tensor.reshape(-1)  # [numel], a view of a contiguous tensor
    if qtype.name == "f32":
        return [flat]
    return [flat[start:start + CHUNK_ELEMENTS] for start in range(0, flat.numel(), CHUNK_ELEMENTS)]


def scratch_buffer(entries) -> np.ndarray:
    """uint8 [bytes of the largest converted piece] of the planned tensors ``entries`` (name, shape, qtype)."""
    sizes = [entry.qtype.nbytes((min(CHUNK_ELEMENTS, math.prod(entry.shape)),))
             for entry in entries if entry.qtype.name != "f32"]
    return np.empty(max(sizes, default=0), dtype=np.uint8)


def padding(nbytes: int, alignment: int) -> bytes:
    """The zero bytes that take ``nbytes`` to the next multiple of ``alignment``."""
    return bytes(-nbytes % alignment)
