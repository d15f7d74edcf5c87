"""Which layers of a model a pruning method works on: its nn.Linear layers (those ``filter_fn`` selects), the ones
whose weight an embedding shares (tied, as the APT output projection), and every other module with weights, each
with the reason it is left alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, List, Optional, Tuple

from torch import nn

FilterFn = Callable[[nn.Module, str], bool]
_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
if hasattr(nn, "RMSNorm"):
    _NORMS += (nn.RMSNorm,)


@dataclass(frozen=True)
class Layer:
    path: str
    module: nn.Linear
    tied_to: Optional[str] = None  # the nn.Embedding that shares the weight


@dataclass
class ModelLayers:
    linears: List[Layer] = field(default_factory=list)  # untied nn.Linear layers, in model order
    tied: List[Layer] = field(default_factory=list)  # nn.Linear layers whose weight an embedding shares
    skipped: List[Tuple[str, str]] = field(default_factory=list)  # (path, reason)


def _reason(module: nn.Module) -> str:
    name = type(module).__name__
    if isinstance(module, _NORMS):
        return f"{name}: normalisation weights are not pruned"
    if isinstance(module, nn.Embedding):
        return f"{name}: embeddings are not pruned"
    return f"{name}: only nn.Linear weights are pruned"


def _is_linear(module: nn.Module) -> bool:
    """An nn.Linear holding a dense float weight Parameter (not a subclass that keeps packed weights)."""
    weight = module._parameters.get("weight") if isinstance(module, nn.Linear) else None
    return weight is not None and weight.dim() == 2 and weight.is_floating_point()


def _has_weights(module: nn.Module) -> bool:
    return module._parameters.get("weight") is not None or "qweight" in module._buffers


def model_layers(model: nn.Module, filter_fn: Optional[FilterFn] = None) -> ModelLayers:
    """The model's nn.Linear layers split into untied and tied ones, and the other modules with weights (or not
    selected by ``filter_fn(module, path)``) as skipped, with why."""
    embeddings = {id(m.weight): path for path, m in model.named_modules() if isinstance(m, nn.Embedding)}
    found = ModelLayers()
    tied_weights = set()
    for path, module in model.named_modules():
        if not _is_linear(module):
            continue
        if filter_fn is not None and not filter_fn(module, path):
            found.skipped.append((path, "not selected by filter_fn"))
        elif id(module.weight) in embeddings:
            found.tied.append(Layer(path, module, embeddings[id(module.weight)]))
            tied_weights.add(id(module.weight))
        else:
            found.linears.append(Layer(path, module))
    for path, module in model.named_modules():
        if _is_linear(module) or not _has_weights(module):
            continue
        if isinstance(module, nn.Embedding) and id(module.weight) in tied_weights:
            continue  # reported with the linear layer that shares its weight
        found.skipped.append((path, _reason(module)))
    return found
