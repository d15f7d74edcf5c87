"""Layer freezing that really freezes (upstream's looked for attributes APTModel does not have).

Frozen parameters get ``requires_grad=False``; the trainer builds its optimizer from the trainable
parameters only, so frozen ones are neither updated nor decayed nor held in the optimizer state.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class FreezeReport:
    """What :func:`freeze_layers` froze, in parameter elements."""

    frozen_names: tuple[str, ...]
    frozen_elements: int
    trainable_elements: int

    def describe(self) -> str:
        total = self.frozen_elements + self.trainable_elements
        return (f"frozen {len(self.frozen_names)} tensors ({self.frozen_elements:,} of {total:,} parameters); "
                f"training {self.trainable_elements:,}")


class FreezeCountError(ValueError):
    """A freeze count that is not an int in [0, layers]; the message names the Python ``parameter``, the
    attributes let a caller (the CLI) name its own option instead."""

    def __init__(self, parameter: str, value, layers: int, kind: str):
        super().__init__(f"{parameter} must be an int in [0, {layers}] (the model has {layers} {kind} layers), "
                         f"got {value!r}")
        self.parameter, self.value, self.layers, self.kind = parameter, value, layers, kind


def _check_count(name: str, value: int | None, available: int, kind: str) -> int:
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= available:
        raise FreezeCountError(name, value, available, kind)
    return value


def freeze_layers(
    model: nn.Module,
    *,
    freeze_embeddings: bool = False,
    freeze_encoder_layers: int | None = None,
    freeze_decoder_layers: int | None = None,
) -> FreezeReport:
    """Freeze the token embedding and/or the first N encoder and decoder layers of an APT model.

    The embedding is tied to the output projection, so ``freeze_embeddings`` freezes both. Counts are
    validated before anything changes: a count above the number of layers raises FreezeCountError (a
    ValueError).
    """
    n_enc = _check_count("freeze_encoder_layers", freeze_encoder_layers, len(model.encoder_layers), "encoder")
    n_dec = _check_count("freeze_decoder_layers", freeze_decoder_layers, len(model.decoder_layers), "decoder")
    modules = [*model.encoder_layers[:n_enc], *model.decoder_layers[:n_dec]]
    if freeze_embeddings:
        modules.append(model.token_embedding)
    frozen = {id(p) for module in modules for p in module.parameters()}
    for p in model.parameters():
        if id(p) in frozen:
            p.requires_grad_(False)
    return report_frozen(model)


def report_frozen(model: nn.Module) -> FreezeReport:
    """The model's frozen (requires_grad False) and trainable parameters, tied ones counted once."""
    names = tuple(name for name, p in model.named_parameters() if not p.requires_grad)
    params = list(model.parameters())  # unique Parameters (ties once)
    frozen = sum(p.numel() for p in params if not p.requires_grad)
    return FreezeReport(names, frozen, sum(p.numel() for p in params) - frozen)
