"""Recognise APT attentions by their parameters and swap them for FusedAPTAttention, in place.

An APT attention is any module, whatever its class or package, that owns q_proj / k_proj / v_proj /
out_proj (nn.Linear D -> D), sr_conv1 (Conv2d 1 -> Hd, 1x1), sr_conv2 (Conv2d Hd -> 1, 1x1) and a
parameter tau of shape [1], plus the settings num_heads, epsilon (or eps), dropout (a float or an
nn.Dropout) and use_autopoietic (default True). restore_attentions() puts the original module objects back
(they share the Parameters, so training done while patched is kept).
"""

from __future__ import annotations

from typing import Dict, List, Optional

from torch import nn

from ..modules.apt_attention import FusedAPTAttention
from ..modules.quantized_linear import QuantizedLinear
from ..modules.sparse_linear import SparseLinear
from .report import PatchReport
from .swap import named_children_with_parents

LINEARS = ("q_proj", "k_proj", "v_proj", "out_proj")
LINEAR_TYPES = (nn.Linear, QuantizedLinear, SparseLinear)  # the projections may be quantized or sparse
CONVS = ("sr_conv1", "sr_conv2")


def _looks_like_attention(module: nn.Module) -> bool:
    return any(hasattr(module, name) for name in (*LINEARS, *CONVS)) and not isinstance(module, LINEAR_TYPES)


def _missing_parts(module: nn.Module) -> List[str]:
    missing = [n for n in LINEARS if not isinstance(getattr(module, n, None), LINEAR_TYPES)]
    missing += [n for n in CONVS if not isinstance(getattr(module, n, None), nn.Conv2d)]
    tau = getattr(module, "tau", None)
    if not (isinstance(tau, nn.Parameter) and tuple(tau.shape) == (1,)):
        missing.append("tau (a [1] parameter)")
    return missing


def _settings(module: nn.Module) -> Dict[str, object]:
    """FusedAPTAttention's settings read from the module; raises ValueError naming what is missing or wrong."""
    num_heads = getattr(module, "num_heads", None)
    if not isinstance(num_heads, int) or num_heads <= 0:
        raise ValueError("num_heads attribute missing (it cannot be inferred from the weights)")
    epsilon = getattr(module, "epsilon", getattr(module, "eps", None))
    if epsilon is None:
        raise ValueError("epsilon (or eps) attribute missing")
    dropout = getattr(module, "dropout", 0.0)
    dropout = dropout.p if isinstance(dropout, nn.Dropout) else float(dropout)
    width = module.q_proj.out_features  # H·d: the embedding width, or less after structured head pruning
    if width % num_heads != 0:
        raise ValueError(f"num_heads ({num_heads}) must divide the attention width ({width})")
    if module.sr_conv1.kernel_size != (1, 1) or module.sr_conv1.in_channels != 1 or module.sr_conv2.out_channels != 1:
        raise ValueError("sr_conv1 / sr_conv2 must be 1x1 convolutions 1 -> Hd -> 1")
    return dict(num_heads=num_heads, epsilon=float(epsilon), dropout=dropout,
                use_autopoietic=bool(getattr(module, "use_autopoietic", True)))


def swap_attentions(model: nn.Module, report: PatchReport) -> None:
    """Swap every APT attention in `model` for FusedAPTAttention, in place, recording each one in `report`.

    The root module itself is never replaced (there is no parent to hold the swap); wrap it first.
    """
    for parent, name, path, module in list(named_children_with_parents(model)):
        if isinstance(module, FusedAPTAttention):
            report.left_alone.append((path, "already FusedAPTAttention"))
            continue
        if not _looks_like_attention(module):
            continue
        missing = _missing_parts(module)
        if missing:
            report.left_alone.append((path, f"not an APT attention: lacks {', '.join(missing)}"))
            continue
        if parent is None:
            report.left_alone.append((path, "the root module cannot be swapped in place; patch its parent"))
            continue
        try:
            fused = FusedAPTAttention(module, **_settings(module))
        except ValueError as error:
            report.left_alone.append((path, str(error)))
            continue
        fused.train(module.training)
        setattr(parent, name, fused)
        report.swapped.append((path, type(module).__name__, type(fused).__name__))


def restore_attentions(model: nn.Module) -> int:
    """Put back every attention that swap_attentions replaced; returns how many were restored."""
    restored = 0
    for parent, name, _, module in list(named_children_with_parents(model)):
        original: Optional[nn.Module] = (
            module.__dict__.get("replaced") if isinstance(module, FusedAPTAttention) else None
        )
        if parent is not None and original is not None:
            original.train(module.training)
            setattr(parent, name, original)
            restored += 1
    return restored
