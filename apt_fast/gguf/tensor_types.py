"""The GGUF tensor data types apt_fast writes and reads: f32, f16, bf16 and ggml's legacy block types
(q8_0, q4_0, q4_1, q5_0, q5_1), each with its ggml type id, elements per block and bytes per block."""

from __future__ import annotations

import math
from dataclasses import dataclass

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
