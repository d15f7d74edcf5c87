"""apt_fast.sparsify(model): replace the pruned nn.Linear layers of a model by SparseLinear where the sparse kernel
is faster, in place, and report per layer what was decided and why.

For each selected nn.Linear: the mask is its pruning mask (``weight_mask``, apt_fast.pruning) or else its nonzero
weights; the format is the first that fits the mask (patterns.py: N:M, block, bitmap); the dispatcher times the
packed weight against the layer's dense F.linear at each row count of ``m_buckets`` (dispatch.py). A layer whose
sparse kernel is not ``min_speedup`` times faster at any of them stays an nn.Linear, its mask kept (the report
gives the speedup at each row count); a converted layer sends each row count to the faster path (sparse where >=
min_speedup), keeping a dense copy only when some row count goes dense. A model whose decoder re-reads its whole
prefix (the APT model's generate) runs its layers at every row count from 1 up, so a layer that wins only at a few
rows still pays. A model with a ``config`` (the APT model) records the sparse layers there as
``sparsity_config``, so that apt_fast.save / apt_fast.load keep them sparse.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ..modules.sparse_linear import FLOAT_VALUE_DTYPES, Route, SparseEmbedding, SparseLinear
from ..patching.swap import named_children_with_parents
from ..pruning.masks import mask_of
from .dispatch import M_BUCKETS, Measure, time_layer
from .formats import SparseWeight, pack
from .patterns import check_formats, fitting_formats
from .report import LayerDecision, SparsifyReport

FilterFn = Callable[[nn.Module, str], bool]
MIN_SPARSITY = 0.3
VALUE_DTYPES = (None, torch.float32, torch.bfloat16, torch.int8)
SPARSITY_CONFIG_VERSION = 1


def _check_arguments(min_speedup, dtype, min_sparsity, m_buckets) -> Route:
    if isinstance(min_speedup, bool) or not isinstance(min_speedup, (int, float)) or not math.isfinite(min_speedup) \
            or min_speedup <= 0:
        raise ValueError(f"min_speedup must be a positive number (1.05: sparse only where 5% faster), got "
                         f"{min_speedup!r}")
    if dtype not in VALUE_DTYPES:
        raise ValueError(f"dtype must be None (the weights' dtype), torch.float32, torch.bfloat16 or torch.int8, got "
                         f"{dtype!r}")
    if isinstance(min_sparsity, bool) or not isinstance(min_sparsity, (int, float)) or not 0 <= min_sparsity < 1:
        raise ValueError(f"min_sparsity must be a number in [0, 1), got {min_sparsity!r}")
    try:
        return Route(tuple(m_buckets), (False,) * len(tuple(m_buckets)))
    except (TypeError, ValueError):
        raise ValueError(f"m_buckets must be ascending distinct row counts >= 1, got {m_buckets!r}") from None


def _tied_embeddings(model: nn.Module) -> Dict[int, tuple]:
    """id(weight) -> (parent, attribute, path, embedding) for every nn.Embedding."""
    return {id(m.weight): (parent, name, path, m) for parent, name, path, m in named_children_with_parents(model)
            if isinstance(m, nn.Embedding) and parent is not None}


def _packed(weight: torch.Tensor, mask: torch.Tensor, formats: Sequence[str],
            dtype: torch.dtype) -> Tuple[Optional[SparseWeight], str, str]:
    """(the weight packed in the first format that fits and takes ``dtype``, its description; or None and why not)."""
    fits, reasons = fitting_formats(mask, formats)
    for candidate in fits:
        try:
            return pack(weight, mask, candidate.format, dtype, **candidate.options), candidate.describe(dtype), ""
        except ValueError as error:
            reasons.append(f"{candidate.describe(dtype)}: {error}")
    return None, "", "; ".join(reasons) or "no sparse format fits"


def _decide(module: nn.Linear, path: str, formats: Sequence[str], dtype: Optional[torch.dtype], min_speedup: float,
            min_sparsity: float, buckets: Tuple[int, ...], measure: Optional[Measure], tied: bool,
            pack_dense_layers: bool) -> Tuple[LayerDecision, Optional[SparseLinear]]:
    weight = module.weight.detach()  # [N, K]
    mask = mask_of(module)
    mask = weight != 0 if mask is None else mask  # [N, K] bool
    sparsity = 1.0 - float(mask.sum()) / mask.numel()
    decision = LayerDecision(path, tuple(weight.shape), sparsity)
    if sparsity < min_sparsity:
        return replace(decision, dense_reason=f"sparsity {100 * sparsity:.1f}% below the {100 * min_sparsity:.0f}% "
                                              f"where any format pays"), None
    dense_dtype = weight.dtype if weight.dtype in FLOAT_VALUE_DTYPES else torch.float32
    sparse, kind, why_not = _packed(weight, mask, formats, dtype or dense_dtype)
    if sparse is None:
        return replace(decision, dense_reason=why_not), None
    timings = time_layer(sparse, weight, module.bias, sparsity, buckets, measure)
    speedups = {m: timing.speedup for m, timing in timings.items()}
    decision = replace(decision, kind=kind, speedups=speedups)
    route = Route(buckets, tuple(speedups[m] < min_speedup for m in buckets))
    if not pack_dense_layers and all(route.dense):
        measured = " / ".join(f"{speedups[m]:.2f}x" for m in buckets)
        return replace(decision, dense_reason=f"sparse {measured} dense at M={' / '.join(map(str, buckets))}, none "
                                              f">= {min_speedup:g}x ({100 * sparsity:.1f}% sparse, {kind})"), None
    layer = SparseLinear(sparse, module.bias, route=route, dense_dtype=dense_dtype)
    layer.train(module.training)
    if all(route.dense):  # pack_dense_layers: packed in the file, the dense copy serves every call
        measured = " / ".join(f"{speedups[m]:.2f}x" for m in buckets)
        return replace(decision, route="dense, held packed", dense_reason=f"sparse {measured} dense at M="
                       f"{' / '.join(map(str, buckets))}, none >= {min_speedup:g}x ({100 * sparsity:.1f}% sparse, "
                       f"{kind}); held packed (saved compressed), run dense"), layer
    copy_bytes = layer.dense_copy_bytes() or (weight.numel() * weight.element_size() if tied else 0)
    return replace(decision, route=route.describe() + (", embedding lookups from a dense copy" if tied else ""),
                   bytes_before=weight.numel() * weight.element_size(), bytes_after=layer.weight_bytes(),
                   dense_copy_bytes=copy_bytes), layer


def sparsify(model: nn.Module, min_speedup: float = 1.05, formats: Union[str, Sequence[str]] = "auto",
             dtype: Optional[torch.dtype] = None, *, filter_fn: Optional[FilterFn] = None,
             include_embedding: bool = False, min_sparsity: float = MIN_SPARSITY,
             m_buckets: Sequence[int] = M_BUCKETS, measure: Optional[Measure] = None,
             pack_dense_layers: bool = False) -> SparsifyReport:
    """Convert the pruned nn.Linear layers of ``model`` (those ``filter_fn(module, path)`` selects, default all) to
    SparseLinear in place where that is at least ``min_speedup`` times faster at some row count of ``m_buckets``
    (each row count then takes the faster path), and return the report.

    formats: "auto" (N:M, block or bitmap, whichever the mask fits first) or the format names to consider, in
    order. dtype: the sparse values' dtype (None: the weights'; torch.int8 quantizes them per output channel, for
    the bitmap and N:M formats). A layer below ``min_sparsity`` stays dense unmeasured. m_buckets: the row counts
    timed; ``measure(sparse_call, dense_call, x) -> (sparse s, dense s)`` replaces
    the timing (tests). A linear layer tied to an input embedding (the APT output projection) is left alone unless
    include_embedding=True, which converts it and makes the embedding look its rows up. pack_dense_layers=True
    also holds the layers the dispatcher keeps on the dense path as SparseLinear with an all-dense route: they are
    saved compressed like the sparse ones (the file shrinks with the sparsity), and run from a dense copy built
    in memory (the report still lists them as kept dense, with the reason).
    """
    route = _check_arguments(min_speedup, dtype, min_sparsity, m_buckets)
    names = check_formats(formats)
    report = SparsifyReport(min_speedup=float(min_speedup), m_buckets=route.buckets)
    embeddings = _tied_embeddings(model)
    for parent, name, path, module in list(named_children_with_parents(model)):
        if parent is None:
            continue
        if isinstance(module, SparseLinear):
            report.left_alone.append((path, f"already SparseLinear ({module.format} "
                                            f"{str(module.values.dtype).replace('torch.', '')})"))
            continue
        selected = filter_fn(module, path) if filter_fn is not None else isinstance(module, nn.Linear)
        if not selected:
            if isinstance(module, nn.Linear):
                report.left_alone.append((path, "not selected by filter_fn"))
            continue
        if not isinstance(module, nn.Linear):
            raise ValueError(f"filter_fn selected {path} ({type(module).__name__}), but only nn.Linear layers can be "
                             f"sparsified: return True for nn.Linear modules only")
        tied = embeddings.get(id(module.weight))
        if tied is not None and not include_embedding:
            report.left_alone.append((path, f"tied to the input embedding {tied[2]}; include_embedding=True "
                                            "converts both"))
            continue
        decision, layer = _decide(module, path, names, dtype, float(min_speedup), float(min_sparsity),
                                  route.buckets, measure, tied is not None, bool(pack_dense_layers))
        report.layers.append(decision)
        if layer is None:
            continue
        setattr(parent, name, layer)
        report.swapped.append((path, type(module).__name__, "SparseLinear" + (" (dense path)" if
                                                                              not decision.converted else "")))
        if tied is not None:
            embedding_parent, embedding_name, embedding_path, embedding = tied
            setattr(embedding_parent, embedding_name, SparseEmbedding(layer, embedding.padding_idx))
            report.swapped.append((embedding_path, "Embedding", "SparseEmbedding"))
    record_sparsity_config(model)
    return report


def sparsity_config(model: nn.Module) -> Optional[dict]:
    """The ``sparsity_config`` entry describing the model's SparseLinear layers (None when it has none):
    {"format_version", "layers": {path: {format, dtype, the format's options, "m_buckets", "dense_m"}},
    "include_embedding": whether the input embedding looks up a sparse output projection}."""
    layers = {path: {**module.options(), "m_buckets": list(module.route.buckets),
                     "dense_m": list(module.route.dense_buckets)}
              for path, module in model.named_modules() if isinstance(module, SparseLinear)}
    if not layers:
        return None
    include_embedding = any(isinstance(module, SparseEmbedding) for module in model.modules())
    return {"format_version": SPARSITY_CONFIG_VERSION, "layers": layers, "include_embedding": include_embedding}


def record_sparsity_config(model: nn.Module) -> None:
    """Write :func:`sparsity_config` into the model's config (when it has one), or drop a stale entry."""
    model_config = getattr(model, "config", None)
    if model_config is None:
        return
    entry = sparsity_config(model)
    if entry is not None:
        model_config.sparsity_config = entry
    elif hasattr(model_config, "sparsity_config"):
        del model_config.sparsity_config
