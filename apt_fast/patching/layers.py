"""Recognise post-LN APT encoder/decoder layers by their parts and swap them for apt_fast's fused layers
(FusedPostLNEncoderLayer / FusedPostLNDecoderLayer), in place.

An encoder layer is any module, whatever its class or package, that owns self_attn, linear1, dropout, linear2,
norm1, norm2, dropout1, dropout2 and an `activation` function; a decoder layer also owns multihead_attn, norm3
and dropout3. The norms must be nn.LayerNorm over the last dim with weight and bias, the dropouts nn.Dropout. A
layer with forward hooks of its own is left alone (the swap would drop them). restore_layers() puts the original
layers back (they share the submodules, so training done while patched is kept).
"""

from __future__ import annotations

from typing import List, Optional

from torch import nn

from ..modules.layer_fusions import FusedPostLNDecoderLayer, FusedPostLNEncoderLayer
from .report import PatchReport
from .swap import named_children_with_parents

ENCODER_PARTS = ("self_attn", "linear1", "dropout", "linear2", "norm1", "norm2", "dropout1", "dropout2")
DECODER_PARTS = (*ENCODER_PARTS, "multihead_attn", "norm3", "dropout3")
FUSED_LAYERS = (FusedPostLNEncoderLayer, FusedPostLNDecoderLayer)


def _looks_like_layer(module: nn.Module) -> bool:
    return all(hasattr(module, name) for name in ("self_attn", "linear1", "linear2", "norm1", "norm2"))


def _why_not_fusable(module: nn.Module, decoder: bool) -> Optional[str]:
    """None if `module` can be swapped for its fused layer, else the reason."""
    parts = DECODER_PARTS if decoder else ENCODER_PARTS
    missing: List[str] = [name for name in parts if not isinstance(getattr(module, name, None), nn.Module)]
    if not callable(getattr(module, "activation", None)):
        missing.append("an activation function")
    if missing:
        return f"not a post-LN APT layer: lacks {', '.join(missing)}"
    count = 3 if decoder else 2
    norms = [getattr(module, f"norm{i}") for i in range(1, count + 1)]
    if not all(isinstance(n, nn.LayerNorm) and n.weight is not None and n.bias is not None
               and len(n.normalized_shape) == 1 for n in norms):
        return "its norms are not nn.LayerNorm over the last dim with weight and bias"
    dropouts = ("dropout", *(f"dropout{i}" for i in range(1, count + 1)))
    if not all(isinstance(getattr(module, name), nn.Dropout) for name in dropouts):
        return "its dropouts are not nn.Dropout"
    if module._forward_hooks or module._forward_pre_hooks:
        return "it has forward hooks of its own (the swap would drop them)"
    return None


def swap_layers(model: nn.Module, report: PatchReport) -> None:
    """Swap every post-LN APT layer in `model` for its fused layer, in place, recording each one in `report`."""
    for parent, name, path, module in list(named_children_with_parents(model)):
        if isinstance(module, FUSED_LAYERS):
            report.left_alone.append((path, f"already {type(module).__name__}"))
            continue
        if not _looks_like_layer(module):
            continue
        decoder = hasattr(module, "multihead_attn")
        reason = _why_not_fusable(module, decoder)
        if reason is None and parent is None:
            reason = "the root module cannot be swapped in place; patch its parent"
        if reason is not None:
            report.left_alone.append((path, reason))
            continue
        fused = (FusedPostLNDecoderLayer if decoder else FusedPostLNEncoderLayer)(module)
        fused.train(module.training)
        setattr(parent, name, fused)
        report.swapped.append((path, type(module).__name__, type(fused).__name__))


def restore_layers(model: nn.Module) -> int:
    """Put back every layer that swap_layers replaced; returns how many were restored."""
    restored = 0
    for parent, name, _, module in list(named_children_with_parents(model)):
        if parent is not None and isinstance(module, FUSED_LAYERS):
            original = module.__dict__["replaced"]
            original.train(module.training)
            setattr(parent, name, original)
            restored += 1
    return restored
