"""The module walk shared by patch, quantize and sparsify: every (parent, attribute, path, module), so that a
module can be replaced in place by setattr on its parent."""

from __future__ import annotations

from typing import Iterator, Optional, Tuple

from torch import nn


def named_children_with_parents(model: nn.Module) -> Iterator[Tuple[Optional[nn.Module], str, str, nn.Module]]:
    """(parent, attribute name, dotted path, module) for every submodule, the root first as (None, '', '', model).
    Collect it into a list before swapping modules."""
    yield None, "", "", model
    for path, module in model.named_modules():
        for name, child in module.named_children():
            yield module, name, f"{path}.{name}" if path else name, child
