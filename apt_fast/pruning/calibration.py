"""What the data-driven methods measure on calibration batches: Taylor's first-order saliency |w * dL/dw| and
Wanda's input column norms ||x[:, k]||_2. The model runs in eval mode (no dropout) and is put back as it was."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import contextmanager
from functools import partial
from typing import Callable, Iterable, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn


def check_calibration(config, calibration) -> None:
    if calibration is None:
        raise ValueError(f"calibration must be an iterable of batches for {type(config).__name__} (its scores are "
                         f"measured on data), got None")


def run_batch(model: nn.Module, batch):
    """model(**batch) for a dict, model(*batch) for a tuple or list, model(batch) otherwise."""
    if isinstance(batch, Mapping):
        return model(**batch)
    if isinstance(batch, (tuple, list)):
        return model(*batch)
    return model(batch)


def _describe(value) -> str:
    if isinstance(value, Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"


def batch_loss(model: nn.Module, batch, loss_fn: Optional[Callable]) -> Tensor:  # [] scalar
    """``loss_fn(model, batch)``, else the model's output when it is a scalar, else its ``loss``."""
    if loss_fn is not None:
        loss = loss_fn(model, batch)
    else:
        loss = run_batch(model, batch)
        if isinstance(loss, Mapping) and loss.get("loss") is not None:
            loss = loss["loss"]
        elif not isinstance(loss, Tensor) and getattr(loss, "loss", None) is not None:
            loss = loss.loss
    if not isinstance(loss, Tensor) or loss.numel() != 1:
        raise ValueError(f"each calibration batch must give a scalar loss (the model's output, its .loss with "
                         f"labels in the batch, or TaylorPruneConfig(loss_fn=...)), got {_describe(loss)}")
    return loss.reshape(())


@contextmanager
def _evaluating(model: nn.Module) -> Iterator[None]:
    training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(training)


def _check_not_empty(batches: int) -> None:
    if batches == 0:
        raise ValueError("calibration must hold at least one batch, got an empty iterable")


def taylor_saliency(model: nn.Module, layers: Sequence[nn.Linear], calibration: Iterable,
                    loss_fn: Optional[Callable]) -> Tuple[List[Tensor], int]:  # one [N, K] float32 per layer
    """(sum over batches of |w * dL/dw| for each layer's weight, the number of batches); frozen weights get
    gradients just for this."""
    weights = [layer.weight for layer in layers]
    saliency = [torch.zeros(w.shape, dtype=torch.float32, device=w.device) for w in weights]
    frozen = [not w.requires_grad for w in weights]
    batches = 0
    try:
        for w in weights:
            w.requires_grad_(True)
        with _evaluating(model), torch.enable_grad():
            for batch in calibration:
                grads = torch.autograd.grad(batch_loss(model, batch, loss_fn), weights, allow_unused=True)
                for total, w, g in zip(saliency, weights, grads):
                    if g is not None:
                        total.add_((w.detach().to(torch.float32) * g.to(torch.float32)).abs_())
                batches += 1
    finally:
        for w, was_frozen in zip(weights, frozen):
            w.requires_grad_(not was_frozen)
    _check_not_empty(batches)
    return saliency, batches


def _add_squares(sums: List[Tensor], index: int, module: nn.Module, inputs, output) -> None:
    x = inputs[0].detach()  # [..., K]
    sums[index] += x.reshape(-1, x.shape[-1]).to(torch.float32).pow(2).sum(dim=0)


def input_column_norms(model: nn.Module, layers: Sequence[nn.Linear],
                       calibration: Iterable) -> Tuple[List[Tensor], int]:  # one [K] float32 per layer
    """(||x[:, k]||_2 over every token of every batch for each layer's input, the number of batches)."""
    sums = [torch.zeros(layer.in_features, dtype=torch.float32, device=layer.weight.device) for layer in layers]
    handles = [layer.register_forward_hook(partial(_add_squares, sums, i)) for i, layer in enumerate(layers)]
    batches = 0
    try:
        with _evaluating(model), torch.no_grad():
            for batch in calibration:
                run_batch(model, batch)
                batches += 1
    finally:
        for handle in handles:
            handle.remove()
    _check_not_empty(batches)
    return [s.sqrt() for s in sums], batches
