"""The GGUF export's block quantizer: a tensor as GGUF tensor data, for every type apt_fast writes
(apt_fast.gguf.tensor_types). It encodes file data; it is not a model quantization API.

The block types (q8_0, q4_0, q4_1, q5_0, q5_1) run through apt_fast's C++ quantizer
(csrc/gguf/gguf_dispatch.cpp, kernels in csrc/gguf/gguf_quant_kernels.cpp), byte-identical to
``gguf.quants.quantize``; f16 and bf16 of float32 data run through its C++ round-to-nearest-even
conversions (csrc/gguf/gguf_float_kernels.cpp), byte-identical to gguf-py's (NaNs included); other
source dtypes take torch's conversions, equal for non-NaN values.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .._native import native
from ..gguf.tensor_types import GGUFType


def _threads(num_threads: int | None) -> int:
    return num_threads if num_threads is not None else torch.get_num_threads()


_HUGE_PAGE = 2 << 20


def _fresh(shape: tuple[int, ...], dtype: type, nbytes: int) -> np.ndarray:
    """``np.empty(shape, dtype)``; when it spans several 2 MiB pages it starts on a 2 MiB boundary (in a
    buffer up to 2 MiB longer, whose unused pages are never touched), so that transparent huge pages back
    all of it and the kernel's first writes fault it in 2 MiB at a time rather than 4 KiB."""
    if nbytes < 2 * _HUGE_PAGE:
        return np.empty(shape, dtype=dtype)
    raw = np.empty(nbytes + _HUGE_PAGE, dtype=np.uint8)
    start = -raw.ctypes.data % _HUGE_PAGE
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def _output(out: np.ndarray | None, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """A fresh array of ``shape`` and ``dtype``, or the same as a view of the front of the uint8 buffer ``out``."""
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize
    if out is None:
        return _fresh(shape, dtype, nbytes)
    if out.dtype != np.uint8 or out.ndim != 1 or not out.flags.c_contiguous or out.nbytes < nbytes:
        raise ValueError(f"out must be a contiguous 1-D uint8 buffer of at least {nbytes} bytes")
    return out[:nbytes].view(dtype).reshape(shape)


def quantize_blocks(data: torch.Tensor, qtype: GGUFType, num_threads: int | None = None,
                    out: np.ndarray | None = None) -> np.ndarray:
    """ggml blocks of ``data`` (any float dtype, last dim a multiple of 32) as uint8 [..., K/32*type_size].

    ``out``: a uint8 buffer to write them into (the result is then a view of it); None allocates one.
    """
    if not qtype.is_block_quantized:
        raise ValueError(f"quantize_blocks needs a block type, got {qtype.name}")
    if data.ndim == 0 or data.shape[-1] % qtype.block_size:
        raise ValueError(
            f"{qtype.name} needs a last dimension that is a multiple of {qtype.block_size}, "
            f"got shape {tuple(data.shape)}"
        )
    src = data.detach().to(device="cpu", dtype=torch.float32).contiguous()  # [..., K]
    blocks = _output(out, qtype.byte_shape(tuple(src.shape)), np.uint8)
    if src.numel():
        native().gguf_quantize(src.data_ptr(), src.numel(), qtype.ggml_id, blocks.ctypes.data, _threads(num_threads))
    return blocks


def convert_float16(data: torch.Tensor, qtype: GGUFType, num_threads: int | None = None,
                    out: np.ndarray | None = None) -> np.ndarray:
    """float32 ``data`` as f16 (a float16 array) or bf16 (uint16 bits), same shape, converted in C++.

    ``out``: a uint8 buffer to write them into (the result is then a view of it); None allocates one.
    """
    src = data.detach().to(device="cpu").contiguous()  # [...] fp32
    if src.dtype != torch.float32:
        raise ValueError(f"convert_float16 needs float32 data, got {src.dtype}")
    halves = _output(out, tuple(src.shape), np.float16 if qtype.name == "f16" else np.uint16)
    if src.numel():
        native().gguf_convert_float(src.data_ptr(), src.numel(), qtype.ggml_id, halves.ctypes.data,
                                    _threads(num_threads))
    return halves


def convert(data: torch.Tensor, qtype: GGUFType, out: np.ndarray | None = None) -> np.ndarray:
    """``data`` as the bytes GGUF stores for ``qtype``: float32 / float16 arrays, uint16 bf16 bits, or uint8 blocks.

    ``out``: a uint8 scratch buffer of at least ``qtype.nbytes(shape)`` bytes that converted data goes into,
    so that a caller converting tensor after tensor reuses one buffer: the result may then be a view of it,
    valid until the next conversion into it. f32 data is returned as a view of ``data`` itself.
    """
    data = data.detach().cpu()
    if qtype.name == "f32":
        return data.to(torch.float32).contiguous().numpy()
    if qtype.name in ("f16", "bf16") and data.dtype == torch.float32:
        return convert_float16(data, qtype, out=out)
    if qtype.name == "f16":
        return data.to(torch.float16).contiguous().numpy()
    if qtype.name == "bf16":
        return data.to(torch.bfloat16).contiguous().view(torch.int16).numpy().view(np.uint16)
    return quantize_blocks(data, qtype, out=out)
