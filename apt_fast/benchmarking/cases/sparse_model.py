"""Sparse APT model decoding: the APT model of apt_generation.py (D=1024, 4+4 layers, V=32000) pruned to 50%
unstructured by magnitude (every linear layer, the tied embedding / output projection included at its own 50%),
then apt_fast.sparsify(min_speedup=1.05, include_embedding=True, pack_dense_layers=True): greedy generation of 64
new tokens after a 32-token prompt, batch 1, against the same pruned model held dense in fp32 (its masks removed: a
plain fp32 model with zeros, as fast as the unpruned one), both patched with apt_fast's fused attention. Target:
>= 1.4x tokens/s.

The outputs are checked first, on the dense generation's tokens: the last position's logits after prefixes that
reach every row-count bucket of the dispatcher's routes (the decoder re-decodes the whole prefix, so its M is the
prefix length), of the sparse model, the dense model and the dense model in fp64. The sparse model's error against
fp64 must be within 2x the dense fp32 model's (both sum the same products in other orders). Greedy tokens are
compared and their agreement reported; a divergence is accepted only at a near tie of the fp64 logits.

The file: apt_fast.save of both models in a temporary directory; the sparse one holds only the packed weights
(bitmap, row offsets, kept values), never the dense copies a route keeps in memory, also for the layers the
dispatcher runs dense (pack_dense_layers: they are rebuilt dense at load). Target: <= 0.6x the dense
directory's bytes, reported with the sizes and the dispatcher's decisions (which layers stayed dense and why) in
the result's extra (the harness's targets are about time and memory)."""

from __future__ import annotations

import copy
import functools
import os
import tempfile
from dataclasses import dataclass
from typing import Dict, List

import torch

from ...modules.sparse_linear import SparseLinear
from ...patching import patch
from ...pruning import MagnitudePruneConfig, prune
from ...pruning.masks import remove_masks
from ...sparsity.convert import sparsify
from ..harness import BenchCase
from ..targets import Targets
from . import apt_generation as apt

RATIO = 0.5
MIN_SPEEDUP = 1.05
MAX_FILE_RATIO = 0.6
QUICK_NEW_TOKENS = 16
ERROR_FACTOR = 2.0  # the sparse model's error against fp64 may be this many times the dense fp32 model's


@dataclass
class SparseModelInputs:
    dense: torch.nn.Module  # the pruned model, masks removed, fp32, patched
    unpatched: torch.nn.Module  # the same, not patched (the fp64 reference is made from it)
    sparse: torch.nn.Module  # the same after apt_fast.sparsify, patched
    prompt: torch.Tensor  # [1, PROMPT]
    new_tokens: int
    report: object  # the SparsifyReport
    file_bytes: Dict[str, int]  # "dense" / "sparse" -> bytes of the saved directory


def _directory_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(path, name)) for name in os.listdir(path))


@functools.lru_cache(maxsize=2)
def _models(quick: bool) -> SparseModelInputs:
    from ...models.apt.loading import save

    dense = apt.model()
    prune(dense, MagnitudePruneConfig(RATIO, embedding_ratio=RATIO))
    sparse = copy.deepcopy(dense)
    remove_masks(dense)
    report = sparsify(sparse, min_speedup=MIN_SPEEDUP, include_embedding=True, pack_dense_layers=True)
    unpatched = copy.deepcopy(dense)
    file_bytes = {}
    with tempfile.TemporaryDirectory(prefix="apt-fast-bench-sparse-") as root:  # only the sizes are kept
        for name, model in (("dense", dense), ("sparse", sparse)):
            save(model, os.path.join(root, name))
            file_bytes[name] = _directory_bytes(os.path.join(root, name))
            patch(model)
        _check_packed_file(os.path.join(root, "sparse", "model.safetensors"))
    new_tokens = QUICK_NEW_TOKENS if quick else apt.NEW_TOKENS
    return SparseModelInputs(dense, unpatched, sparse, apt.prompt(), new_tokens, report, file_bytes)


def _check_packed_file(path: str) -> None:
    """The sparse model's file holds each pruned layer packed only: no dense weight beside its values, no dense copy
    (a route's), no mask."""
    from safetensors import safe_open

    with safe_open(path, "pt") as f:
        keys = set(f.keys())
    dense = sorted(key for key in keys if key.endswith((".dense_weight", ".weight_mask"))
                   or (key.endswith(".weight") and key.removesuffix(".weight") + ".values" in keys))
    if dense or not any(key.endswith(".values") for key in keys):
        raise AssertionError(f"{path} must hold the pruned layers packed only, got dense tensors {dense[:4]} and "
                             f"{sum(key.endswith('.values') for key in keys)} packed layers")


@torch.no_grad()
def _last_logits(model, prompt: torch.Tensor, tokens: torch.Tensor, lengths: List[int]) -> torch.Tensor:
    """[len(lengths), V] fp64: the logits generate() takes its next token from, after each prefix of ``tokens``
    ([1, T], BOS first) of the given lengths."""
    padding = prompt == model.config.pad_token_id  # [1, S]
    memory = model.encode(prompt, src_key_padding_mask=padding)  # [1, S, D]
    rows = [model.output_projection(model.decode(tokens[:, :n], memory, memory_key_padding_mask=padding)[:, -1])
            for n in lengths]
    return torch.cat(rows).double()


def _prefix_lengths(inputs: SparseModelInputs) -> List[int]:
    """1, then each bucket boundary of the routes and the row after it (M <= bucket and M = bucket + 1 take their
    own paths), up to the longest prefix generated."""
    buckets = set()
    for module in inputs.sparse.modules():
        if isinstance(module, SparseLinear):
            buckets.update(module.route.buckets)
    lengths = {1, inputs.new_tokens} | {n for b in buckets for n in (b, b + 1)}
    return sorted(n for n in lengths if n <= inputs.new_tokens)


def _max_relative(reference: torch.Tensor, actual: torch.Tensor) -> float:
    """max over rows of max |actual - reference| / max |reference|."""
    scale = reference.abs().amax(-1).clamp_min(1e-30)  # [rows]
    return float(((actual - reference).abs().amax(-1) / scale).max())


def _check(baseline: tuple, candidate: tuple) -> dict:
    """baseline, candidate: (the inputs, the generated tokens [1, new tokens]) of each side."""
    (inputs, dense_tokens), (_, sparse_tokens) = baseline, candidate
    bos = torch.full((1, 1), inputs.dense.config.bos_token_id, dtype=torch.long)
    tokens = torch.cat([bos, dense_tokens], 1)  # [1, 1 + new tokens]
    lengths = _prefix_lengths(inputs)
    reference_model = copy.deepcopy(inputs.unpatched).double()
    reference = _last_logits(reference_model, inputs.prompt.clone(), tokens, lengths)  # [len(lengths), V]
    dense_error = _max_relative(reference, _last_logits(inputs.dense, inputs.prompt, tokens, lengths))
    sparse_error = _max_relative(reference, _last_logits(inputs.sparse, inputs.prompt, tokens, lengths))
    if sparse_error > ERROR_FACTOR * dense_error:
        raise AssertionError(f"the sparse model's logits are off fp64 by {sparse_error:.3e} (max relative, prefixes "
                             f"{lengths}), more than {ERROR_FACTOR:g}x the dense fp32 model's {dense_error:.3e}")
    result = apt.agreement(dense_tokens, sparse_tokens)
    prefix = result["greedy_common_prefix"]
    if prefix < dense_tokens.shape[1]:
        logits = _last_logits(reference_model, inputs.prompt, tokens, [prefix + 1])[0]  # [V]
        logits[inputs.dense.config.pad_token_id] = float("-inf")  # generate() bans PAD
        top = logits.topk(2).values
        gap = float((top[0] - top[1]) / logits[torch.isfinite(logits)].abs().max())
        if gap > 2 * ERROR_FACTOR * dense_error:
            raise AssertionError(f"the greedy generations part at token {prefix} where fp64 has no tie: top-2 gap "
                                 f"{gap:.3e} of the largest logit, the fp32 error is {dense_error:.3e}")
        result["divergence_top2_gap"] = gap
    return {**result, "logits_prefix_lengths": lengths, "logits_error_vs_fp64_sparse": sparse_error,
            "logits_error_vs_fp64_dense": dense_error, **_file_and_dispatch(inputs)}


def _file_and_dispatch(inputs: SparseModelInputs) -> dict:
    """The file sizes and ratio, and the dispatcher's decisions grouped: reason -> the layers left dense for it,
    route -> the layers converted with it, and the speedups measured per layer shape (same-shape layers share one
    measurement)."""
    report = inputs.report
    ratio = inputs.file_bytes["sparse"] / inputs.file_bytes["dense"]
    dense_kept: Dict[str, List[str]] = {}
    routes: Dict[str, List[str]] = {}
    speedups: Dict[str, Dict[int, str]] = {}
    for layer in report.layers:
        group = routes.setdefault(layer.route, []) if layer.converted else dense_kept.setdefault(layer.dense_reason, [])
        group.append(layer.path)
        speedups["x".join(map(str, layer.shape))] = {m: f"{x:.2f}x" for m, x in layer.speedups.items()}
    return {"file_bytes_dense": inputs.file_bytes["dense"], "file_bytes_sparse": inputs.file_bytes["sparse"],
            "file_ratio": ratio, "file_ratio_target": f"<={MAX_FILE_RATIO:g}",
            "file_ratio_met": ratio <= MAX_FILE_RATIO, "layers_sparse": len(report.converted),
            "layers_dense": len(report.kept_dense), "dense_kept": dense_kept, "routes": routes,
            "dispatcher_speedups": speedups}


def _shape(inputs: SparseModelInputs) -> str:
    return (f"B=1, prompt {apt.PROMPT}, {inputs.new_tokens} new tokens greedy; {apt.SHAPE_LABEL}, patched; "
            f"{100 * RATIO:.0f}% magnitude (embedding too), sparsify: {len(inputs.report.converted)} layers with a "
            f"sparse path / {len(inputs.report.kept_dense)} run dense (all packed); file "
            f"{inputs.file_bytes['sparse'] / 2**20:.0f} / {inputs.file_bytes['dense'] / 2**20:.0f} MiB")


CASES = [
    BenchCase(
        name="apt_decode[sparse 50% vs dense fp32]",
        family="sparse_model",
        shape=_shape,
        make_inputs=_models,
        prepare=lambda inputs: inputs,
        baseline=lambda inputs: (inputs, apt.generate_tokens(inputs.dense, inputs.prompt, inputs.new_tokens)),
        candidate=lambda inputs: (inputs, apt.generate_tokens(inputs.sparse, inputs.prompt, inputs.new_tokens)),
        check=_check,
        baseline_name="the same pruned model, dense fp32 (patched)",
        targets=Targets(min_speedup=1.4),
        quick=False,
        repeats=5,
    ),
]
