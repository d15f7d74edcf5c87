"""The units structured pruning removes: FFN hidden neurons and attention heads, found by the modules' shapes.

* An FFN is a pair of nn.Linear layers (first, second) with first.out_features == second.in_features and only
  elementwise modules between them: a module's ``linear1`` / ``linear2`` (the APT layers, torch's Transformer
  layers), or consecutive linear layers of an nn.Sequential. Hidden neuron i is row i of the first layer (and its
  bias) and column i of the second, so removing it is exact: the rest of the network never sees it.
* An attention is a module with nn.Linear ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj`` and int ``num_heads`` and
  ``head_dim``; head h is rows h*d .. h*d+d-1 of q/k/v (and their biases) and those columns of out_proj.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

from torch import nn

ELEMENTWISE = (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU,
               nn.Softplus, nn.Mish, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Dropout, nn.Identity)
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj")


@dataclass(frozen=True)
class FeedForward:
    path: str  # the FFN's name in the report: its owner's path, or "<first> -> <second>" in an nn.Sequential
    first_path: str
    first: nn.Linear
    second_path: str
    second: nn.Linear


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def feed_forwards(model: nn.Module) -> List[FeedForward]:
    found, seen = [], set()

    def add(path, first_path, first, second_path, second):
        if id(first) not in seen and first.out_features == second.in_features:
            seen.add(id(first))
            found.append(FeedForward(path, first_path, first, second_path, second))

    for path, module in model.named_modules():
        first, second = getattr(module, "linear1", None), getattr(module, "linear2", None)
        if isinstance(first, nn.Linear) and isinstance(second, nn.Linear):
            add(path or "<root>", _join(path, "linear1"), first, _join(path, "linear2"), second)
        if isinstance(module, nn.Sequential):
            children = list(module.named_children())
            for i, (first_name, first) in enumerate(children):
                if not isinstance(first, nn.Linear):
                    continue
                for second_name, second in children[i + 1:]:
                    if isinstance(second, nn.Linear):
                        a, b = _join(path, first_name), _join(path, second_name)
                        add(f"{a} -> {b}", a, first, b, second)
                    if not isinstance(second, ELEMENTWISE):
                        break
    return found


def attentions(model: nn.Module) -> List[tuple]:
    """(path, module) for every attention module (see the module docstring)."""
    return [(path, module) for path, module in model.named_modules()
            if all(isinstance(getattr(module, name, None), nn.Linear) for name in PROJECTIONS)
            and isinstance(getattr(module, "num_heads", None), int) and isinstance(getattr(module, "head_dim", None),
                                                                                  int)]
