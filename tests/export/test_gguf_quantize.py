"""apt_fast's C++ GGUF quantizer is byte-identical to gguf.quants.quantize, at every SIMD level."""

from __future__ import annotations

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf")

from apt_fast._native import native  # noqa: E402
from apt_fast.export.gguf_blocks import convert, quantize_blocks  # noqa: E402
from apt_fast.gguf.tensor_types import TYPES, gguf_type  # noqa: E402

BLOCK_TYPES = ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1"]


def _inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    blocks = {
        "randn": rng.standard_normal((37, 160)),
        "zeros": np.zeros((3, 64)),
        "constant": np.full((3, 64), 0.37),
        "negative constant": np.full((3, 64), -3.5),
        "huge": rng.standard_normal((8, 64)) * 1e37,
        "tiny": rng.standard_normal((8, 64)) * 1e-30,
        "near subnormal (1/d overflows)": rng.standard_normal((8, 64)) * 1e-38,
        "mixed magnitudes": rng.standard_normal((8, 64)) * np.exp(rng.uniform(-30, 30, (8, 64))),
        "integers (ties)": rng.integers(-8, 8, (8, 64)),
        "halves (ties)": rng.integers(-64, 64, (8, 64)) / 2,
        "+a and -a tie": np.tile([1.0, -1.0] + [0.5] * 30, (4, 2)),
        "-a before +a": np.tile([-2.0, 2.0] + [0.25] * 30, (4, 2)),
        "sparse (pruned)": rng.standard_normal((8, 64)) * (rng.random((8, 64)) < 0.1),
    }
    return {name: a.astype(np.float32) for name, a in blocks.items()}


@pytest.mark.parametrize("qtype", BLOCK_TYPES)
def test_byte_identical_to_gguf_py(qtype, simd_tier):
    for name, data in _inputs().items():
        with np.errstate(all="ignore"):
            expected = gguf.quants.quantize(data, gguf.GGMLQuantizationType[qtype.upper()])
        actual = quantize_blocks(torch.from_numpy(data), TYPES[qtype])
        assert actual.dtype == np.uint8 and actual.shape == expected.shape, name
        mismatched = np.argwhere(actual != expected)
        assert len(mismatched) == 0, \
            f"{qtype} at {simd_tier}, {name}: {len(mismatched)} bytes differ, first {mismatched[:3]}"


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_threads_do_not_change_bytes(threads):
    data = torch.randn(67, 96)  # 201 blocks: uneven split, a partial last group
    single = quantize_blocks(data, TYPES["q5_1"], num_threads=1)
    assert np.array_equal(quantize_blocks(data, TYPES["q5_1"], num_threads=threads), single)


@pytest.mark.parametrize("qtype", ["f16", "bf16"])
def test_float_conversions_match_gguf_py(qtype):
    rng = np.random.default_rng(2)
    values = rng.standard_normal(50_000) * 10.0 ** rng.integers(-12, 8, 50_000)
    edges = [65504, 65519.99, 65520, 65536, 1e-8, 2**-25, 2**-24, 3 * 2**-26, 0.0, -0.0, 1e38]
    data = np.concatenate([values, edges]).astype(np.float32)
    with np.errstate(all="ignore"):
        expected = gguf.quants.quantize(data, gguf.GGMLQuantizationType[qtype.upper()])
    actual = convert(torch.from_numpy(data), TYPES[qtype])
    assert actual.tobytes() == expected.tobytes()


def test_scalar_fp16_scale_conversion_matches_numpy():
    rng = np.random.default_rng(3)
    data = (rng.standard_normal(5000) * 10.0 ** rng.integers(-9, 6, 5000)).astype(np.float32)
    with np.errstate(over="ignore"):
        expected = data.astype(np.float16).view(np.uint16)
    assert [native().fp32_to_fp16_bits(float(x)) for x in data] == expected.tolist()


def test_bad_input_is_reported():
    with pytest.raises(ValueError, match=r"q4_0 needs a last dimension that is a multiple of 32, got shape \(4, 33\)"):
        quantize_blocks(torch.zeros(4, 33), TYPES["q4_0"])
    with pytest.raises(ValueError, match=r"unknown GGUF type 'q3_k'; choose one of f32, f16, bf16, q8_0"):
        gguf_type("q3_k")
    with pytest.raises(ValueError, match="unsupported GGUF quantization type id 5"):
        native().gguf_quantize(0, 0, 5, 0, 1)
    with pytest.raises(ValueError, match="element count must be a multiple of 32, got 33"):
        native().gguf_quantize(0, 33, 8, 0, 1)
