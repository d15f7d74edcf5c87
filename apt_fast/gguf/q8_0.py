"""Q8_0 tensor data as int8 codes and scales, both ways, without a float round trip.

A Q8_0 row of K values is K / 32 blocks of 34 bytes: the block's scale d (fp16), then its 32 int8 codes; value =
code * d. That is an int8 weight with one scale per 32 inputs: apt_fast's Int8Linear with group_size 32, whose
fp32 scales hold every fp16 d exactly.
"""

from __future__ import annotations

import numpy as np
import torch

from .tensor_types import BLOCK_SIZE, TYPES

BLOCK_BYTES = TYPES["q8_0"].type_size  # 2 (d) + 32 (codes)


def codes_and_scales(data: np.ndarray, shape: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Q8_0 bytes of a [rows, K] tensor -> (codes [rows, K] int8, scales [rows, K / 32] float32), both copies."""
    rows, columns = shape
    blocks = data.reshape(rows, columns // BLOCK_SIZE, BLOCK_BYTES)
    scales = blocks[:, :, :2].copy().view(np.float16)[:, :, 0].astype(np.float32)
    codes = blocks[:, :, 2:].copy().view(np.int8).reshape(rows, columns)
    return torch.from_numpy(codes), torch.from_numpy(scales)


def q8_0_bytes(codes: torch.Tensor, scales: torch.Tensor) -> np.ndarray:
    """codes [rows, K] int8 and scales [rows, K / 32] -> Q8_0 bytes uint8 [rows, K / 32 * 34]; each scale is
    stored as its nearest fp16 (itself when it is an fp16 value), the codes as they are."""
    rows, columns = codes.shape
    blocks = np.empty((rows, columns // BLOCK_SIZE, BLOCK_BYTES), dtype=np.uint8)
    blocks[:, :, :2] = scales.to(torch.float16).contiguous().numpy().view(np.uint8).reshape(rows, -1, 2)
    blocks[:, :, 2:] = codes.contiguous().numpy().view(np.uint8).reshape(rows, -1, BLOCK_SIZE)
    return blocks.reshape(rows, -1)
