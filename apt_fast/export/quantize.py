"""Tensor -> GGUF tensor data for every type apt_fast writes: f32, f16, bf16 and ggml's legacy block types.

The block types (q8_0, q4_0, q4_1, q5_0, q5_1) run through apt_fast's C++ quantizer
(csrc/gguf_quant.cpp), byte-identical to ``gguf.quants.quantize``; f16 and bf16 are torch's
round-to-nearest-even conversions, which equal gguf-py's for every non-NaN value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .._native import native

BLOCK_SIZE = 32


@dataclass(frozen=True)
class GGUFType:
    """One tensor data type: its ggml type id, elements per block and bytes per block."""

    name: str
    ggml_id: int
    block_size: int
    type_size: int

    @property
    def is_block_quantized(self) -> bool:
        return self.block_size > 1

    def nbytes(self, shape: tuple[int, ...]) -> int:
        return math.prod(shape) // self.block_size * self.type_size

    def byte_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:  # [..., K] -> [..., K / block * type_size]
        return (*shape[:-1], shape[-1] // self.block_size * self.type_size)


TYPES = {
    t.name: t
    for t in (
        GGUFType("f32", 0, 1, 4),
        GGUFType("f16", 1, 1, 2),
        GGUFType("bf16", 30, 1, 2),
        GGUFType("q8_0", 8, BLOCK_SIZE, 34),
        GGUFType("q4_0", 2, BLOCK_SIZE, 18),
        GGUFType("q4_1", 3, BLOCK_SIZE, 20),
        GGUFType("q5_0", 6, BLOCK_SIZE, 22),
        GGUFType("q5_1", 7, BLOCK_SIZE, 24),
    )
}
TYPES_BY_ID = {t.ggml_id: t for t in TYPES.values()}


def gguf_type(name: str) -> GGUFType:
    """The type called ``name`` (case-insensitive), or ValueError listing the choices."""
    key = name.lower()
    if key not in TYPES:
        raise ValueError(f"unknown GGUF type {name!r}; choose one of {', '.join(TYPES)}")
    return TYPES[key]


def quantize_blocks(data: torch.Tensor, qtype: GGUFType, num_threads: int | None = None) -> np.ndarray:
    """ggml blocks of ``data`` (any float dtype, last dim a multiple of 32) as uint8 [..., K/32*type_size]."""
    if not qtype.is_block_quantized:
        raise ValueError(f"quantize_blocks needs a block type, got {qtype.name}")
    if data.ndim == 0 or data.shape[-1] % qtype.block_size:
        raise ValueError(
            f"{qtype.name} needs a last dimension that is a multiple of {qtype.block_size}, got shape {tuple(data.shape)}"
        )
    src = data.detach().to(device="cpu", dtype=torch.float32).contiguous()  # [..., K]
    out = np.empty(qtype.byte_shape(tuple(src.shape)), dtype=np.uint8)
    if src.numel():
        threads = num_threads if num_threads is not None else torch.get_num_threads()
        native().gguf_quantize(src.data_ptr(), src.numel(), qtype.ggml_id, out.ctypes.data, threads)
    return out


def convert(data: torch.Tensor, qtype: GGUFType) -> np.ndarray:
    """``data`` as the bytes GGUF stores for ``qtype``: float32 / float16 arrays, uint16 bf16 bits, or uint8 blocks."""
    data = data.detach().cpu()
    if qtype.name == "f32":
        return data.to(torch.float32).contiguous().numpy()
    if qtype.name == "f16":
        return data.to(torch.float16).contiguous().numpy()
    if qtype.name == "bf16":
        return data.to(torch.bfloat16).contiguous().view(torch.int16).numpy().view(np.uint16)
    return quantize_blocks(data, qtype)
