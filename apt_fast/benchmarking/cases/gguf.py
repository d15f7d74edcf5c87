"""GGUF benchmarks: apt_fast's C++ quantizer against gguf.quants.quantize on the same fp32 tensor
(target >= 20x faster), and an F16 export of an APT model against writing the same tensor bytes with
numpy's tofile (target <= 2x the time). Full runs use 128 MiB of fp32 weights (bandwidth-bound: more
than the L3), quick runs 16 MiB.
"""

from __future__ import annotations

import os
import tempfile
from functools import partial

import numpy as np
import torch

from ..harness import BenchCase
from ..targets import Targets

# --- quantizer ------------------------------------------------------------------------------------

def _weights(quick: bool) -> torch.Tensor:  # [rows, 4096] fp32: 16 MiB quick, 128 MiB full
    rows = 1024 if quick else 8192
    return torch.randn(rows, 4096, generator=torch.Generator().manual_seed(0))


def _gguf_py_quantize(qtype: str, weights: torch.Tensor) -> np.ndarray:
    import gguf

    return gguf.quants.quantize(weights.numpy(), gguf.GGMLQuantizationType[qtype.upper()])


def _apt_fast_quantize(qtype: str, weights: torch.Tensor) -> np.ndarray:
    from ...export.gguf_blocks import quantize_blocks
    from ...gguf.tensor_types import TYPES

    return quantize_blocks(weights, TYPES[qtype])


def _check_identical(baseline: np.ndarray, candidate: np.ndarray) -> None:
    if baseline.shape != candidate.shape or not np.array_equal(baseline, candidate):
        raise AssertionError("apt_fast's quantized bytes differ from gguf.quants.quantize")


def _quantize_case(qtype: str) -> BenchCase:
    return BenchCase(
        name=f"gguf_quantize[{qtype}]",
        family="gguf",
        shape=lambda w: f"{w.shape[0]}x{w.shape[1]} fp32 ({w.numel() * 4 >> 20} MiB)",
        make_inputs=_weights,
        prepare=lambda w: w,
        baseline=partial(_gguf_py_quantize, qtype),
        candidate=partial(_apt_fast_quantize, qtype),
        check=_check_identical,
        baseline_name="gguf.quants.quantize",
        targets=Targets(min_speedup=20),
        quick=True,
    )


# --- F16 export -------------------------------------------------------------------------------------

def _model(quick: bool):
    from ...models.apt import APTConfig, APTModel

    torch.manual_seed(0)
    d_model, vocab = (256, 8192) if quick else (768, 16384)  # about 16 MiB / 128 MiB of fp32 weights
    config = APTConfig(vocab_size=vocab, d_model=d_model, num_heads=8, num_encoder_layers=2, num_decoder_layers=2,
                       d_ff=4 * d_model, max_seq_len=128, use_dbc_dac=False)
    model = APTModel(config).eval()
    return model, tempfile.mkdtemp(prefix="apt-fast-bench-gguf-"), _exported_arrays(model)


def _exported_arrays(model) -> list[np.ndarray]:
    """Each tensor as the export writes it (F16 matrices, F32 rest), converted ahead of the timing."""
    from ...export.gguf_blocks import convert
    from ...export.writer import plan_tensors
    from ...gguf.tensor_types import TYPES

    state = model.state_dict()
    return [convert(state[entry.key].reshape(entry.shape), entry.qtype) for entry in plan_tensors(model, TYPES["f16"])]


def _tofile_same_bytes(inputs) -> int:
    """The baseline: the already converted tensor bytes written with numpy's tofile."""
    _, directory, arrays = inputs
    path = os.path.join(directory, "tofile.bin")
    with open(path, "wb") as f:
        for array in arrays:
            array.tofile(f)
    return os.path.getsize(path)


def _export_f16(inputs) -> int:
    from ...export.writer import export_gguf

    model, directory, _ = inputs
    return os.path.getsize(export_gguf(model, os.path.join(directory, "model.gguf"), "f16", progress=False))


def _check_sizes(baseline: int, candidate: int) -> None:
    if not 0 <= candidate - baseline < 1 << 20:  # the same tensor bytes plus metadata and padding
        raise AssertionError(f"the export wrote {candidate} bytes, the tensors alone are {baseline}")


EXPORT_CASE = BenchCase(
    name="gguf_export[f16]",
    family="gguf",
    shape=lambda inputs: f"APT D={inputs[0].config.d_model} V={inputs[0].config.vocab_size} 2+2 layers, "
                         f"{sum(t.numel() for t in inputs[0].state_dict().values()) * 4 >> 20} MiB fp32",
    make_inputs=_model,
    prepare=lambda inputs: inputs,
    baseline=_tofile_same_bytes,
    candidate=_export_f16,
    check=_check_sizes,
    baseline_name="numpy tofile of the same bytes",
    targets=Targets(max_time_ratio=2.0),
    quick=True,
)

CASES = [*(_quantize_case(q) for q in ("q8_0", "q4_0", "q4_1", "q5_0", "q5_1")), EXPORT_CASE]
