"""Generation refuses a model whose weights are unusable (training diverged) with an error naming them.

Two checks: every floating-point parameter and buffer is finite, once at the start of each ``generate``
call (one pass over the weights and one host sync, against the full decoder pass of every step); and the
logits of each step are finite, which catches finite weights so large (~1e16) that the arithmetic
overflows. Both raise :class:`NonFiniteWeightsError`, a ValueError, so the command line prints one line.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

_ADVICE = "training probably diverged; load an earlier checkpoint"


class NonFiniteWeightsError(ValueError):
    """The model's weights, or the logits they produce, contain nan or inf."""


def _weights(model: nn.Module) -> list[tuple[str, Tensor]]:
    named = itertools.chain(model.named_parameters(), model.named_buffers())
    return [(name, tensor) for name, tensor in named if tensor.is_floating_point() and tensor.numel()]


def check_finite_weights(model: nn.Module) -> None:
    """Raise naming every parameter or buffer that holds a nan or an inf."""
    weights = _weights(model)
    if not weights:
        return
    finite = torch.stack([torch.isfinite(t).all() for _, t in weights]).tolist()
    bad = [name for (name, _), ok in zip(weights, finite) if not ok]
    if bad:
        shown = ", ".join(bad[:6]) + (f" and {len(bad) - 6} more" if len(bad) > 6 else "")
        raise NonFiniteWeightsError(f"generate: the model's weights contain nan or inf in {len(bad)} of "
                                    f"{len(weights)} tensors ({shown}); {_ADVICE}")


def check_finite_logits(model: nn.Module, logits: Tensor, step: int) -> None:
    """Raise when a step's logits [B, V] hold a nan or an inf (finite weights whose arithmetic overflows)."""
    if bool(torch.isfinite(logits).all()):
        return
    name, largest = max(((n, t.detach().abs().max().item()) for n, t in _weights(model)), key=lambda item: item[1])
    raise NonFiniteWeightsError(f"generate: the logits of step {step} contain nan or inf although every weight is "
                                f"finite: the weights are too large for {logits.dtype} arithmetic (largest |weight| "
                                f"{largest:.3g}, in {name}); {_ADVICE}")
