"""Quantized APT model decoding: greedy generation of 64 new tokens after a 32-token prompt, batch 1, on a model of
D=1024, 4+4 layers, 16 heads, d_ff 4096, vocab 32000 (about 600 MB in fp32), both sides patched with apt_fast's
fused attention. APT re-decodes the whole prefix at every step, so the decoder's M grows from 1 to 64 rows.
Weight-only int8 (the tied embedding / output projection included) against the fp32 model: >= 2x tokens/s. The
greedy outputs are compared and their agreement reported, not required (quantization may change an argmax).

A second case measures what a user's process holds at its peak: the model loaded from its saved directory
(apt_fast.load) and 8 greedy tokens generated; the int8 model's peak <= 0.3x the fp32 model's."""

from __future__ import annotations

import copy
import functools
import os

import torch

from ...patching import patch
from ...quantization import Int8WeightOnlyConfig, quantize
from ..harness import BenchCase
from ..targets import Targets
from .apt_generation import NEW_TOKENS, PROMPT, agreement, generate_tokens, model, prompt

MEMORY_NEW_TOKENS = 8


@functools.lru_cache(maxsize=1)
def _models():
    fp32 = model()
    int8 = copy.deepcopy(fp32)
    quantize(int8, Int8WeightOnlyConfig(), include_embedding=True)
    for each in (fp32, int8):
        patch(each)
    return fp32, int8, prompt()


@functools.lru_cache(maxsize=1)
def _saved_models():
    """The decoding case's fp32 and int8 models saved (safetensors) in a temporary directory, and the prompt."""
    import tempfile

    from ...models.apt.loading import save

    fp32, int8, prompt = _models()
    root = tempfile.mkdtemp(prefix="apt-fast-bench-quantized-")
    save(fp32, os.path.join(root, "fp32"))
    save(int8, os.path.join(root, "int8"))
    return os.path.join(root, "fp32"), os.path.join(root, "int8"), prompt


def _load_and_generate(path: str, prompt: torch.Tensor) -> torch.Tensor:
    """What a user's process holds at its peak: the model loaded from disk, then a short greedy generation."""
    from ...models.apt.loading import load

    loaded, _ = load(path)
    return generate_tokens(loaded.eval(), prompt, MEMORY_NEW_TOKENS)


CASES = [
    BenchCase(
        name="apt_decode[int8 weight-only vs fp32]",
        family="quantized_linear",
        shape=lambda inputs: f"B=1, prompt {PROMPT}, {NEW_TOKENS} new tokens greedy; D=1024, 4+4 layers, d_ff 4096, "
                             "V=32000, patched",
        make_inputs=lambda quick: _models(),
        prepare=lambda inputs: inputs,
        baseline=lambda inputs: generate_tokens(inputs[0], inputs[2]),
        candidate=lambda inputs: generate_tokens(inputs[1], inputs[2]),
        check=agreement,
        baseline_name="the fp32 model (patched)",
        targets=Targets(min_speedup=2.0),
        quick=False,
        repeats=3,
    ),
    BenchCase(
        name="apt_model_memory[int8 weight-only vs fp32]",
        family="quantized_linear",
        shape=lambda inputs: f"apt_fast.load of the saved model + {MEMORY_NEW_TOKENS} greedy tokens; D=1024, 4+4 "
                             "layers, V=32000 (tied embedding quantized)",
        make_inputs=lambda quick: _saved_models(),
        prepare=lambda inputs: inputs,
        baseline=lambda inputs: _load_and_generate(inputs[0], inputs[2]),
        candidate=lambda inputs: _load_and_generate(inputs[1], inputs[2]),
        check=agreement,
        baseline_name="the fp32 model, loaded the same way",
        targets=Targets(max_mem_ratio=0.3),
        quick=False,
        repeats=3,
    ),
]
