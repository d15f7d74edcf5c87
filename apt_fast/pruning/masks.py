"""Pruning masks that hold through training.

A pruned ``nn.Linear`` carries its keep-mask as a persistent bool buffer ``weight_mask`` [N, K] (True = kept), so
its state_dict holds the ordinary ``<path>.weight`` (zeros where pruned) plus ``<path>.weight_mask``; a weight
tied to an embedding is masked once, through the linear layer. Three things keep the pruned entries exactly zero:

* the weight is zeroed where the mask is False when the mask is attached;
* a gradient hook on the weight zeroes the gradient there (so gradient clipping and optimizer state see no
  gradient for pruned weights);
* after every ``optimizer.step()`` of any torch optimizer, the masked weights among that optimizer's parameters
  are zeroed again (a global ``torch.optim`` step post-hook, registered once, that touches only parameters
  registered here). This is what undoes AdamW's update from momentum gathered before pruning; weight decay alone
  keeps a zero at zero.

``apt_fast.load`` reads the ``weight_mask`` keys back as weight * mask (a plain model with the zeros).
``remove_masks(model)`` makes the pruning permanent: the buffers and hooks go, the zeros stay.
"""

from __future__ import annotations

import weakref
from functools import partial
from typing import Dict, List, Optional

import torch
from torch import Tensor, nn
from torch.optim.optimizer import register_optimizer_step_post_hook
from torch.utils.weak import WeakIdKeyDictionary

MASK = "weight_mask"  # the buffer's name, and the state_dict key suffix after "<path>."
_GRADIENT_HOOK = "_apt_prune_gradient_hook"

_MASKED: WeakIdKeyDictionary = WeakIdKeyDictionary()  # weight Parameter -> weakref to its masked module
_step_hook = None  # the RemovableHandle of the global optimizer hook, registered on first use


def mask_of(module: nn.Module) -> Optional[Tensor]:
    """The keep-mask [N, K] bool of a pruned layer, or None."""
    return module._buffers.get(MASK)


def _mask_gradient(module_ref: weakref.ref, grad: Tensor) -> Tensor:
    module = module_ref()
    mask = None if module is None else mask_of(module)
    return grad if mask is None else grad.masked_fill(~mask, 0)


@torch.no_grad()
def _remask_after_step(optimizer: torch.optim.Optimizer, args, kwargs) -> None:
    if not _MASKED:
        return
    for group in optimizer.param_groups:
        for param in group["params"]:
            module_ref = _MASKED.get(param)
            module = None if module_ref is None else module_ref()
            mask = None if module is None else mask_of(module)
            if mask is not None:
                param.masked_fill_(~mask, 0)


def attach_mask(module: nn.Linear, mask: Tensor) -> None:  # mask [N, K] bool, True = kept
    """Mask ``module.weight`` (replacing a mask it had): zero it where ``mask`` is False and keep it so."""
    global _step_hook
    weight = module.weight
    if mask.dtype != torch.bool or tuple(mask.shape) != tuple(weight.shape):
        raise ValueError(f"mask must be bool of shape {tuple(weight.shape)} like the weight, got "
                         f"{str(mask.dtype).replace('torch.', '')} of shape {tuple(mask.shape)}")
    mask = mask.to(weight.device)
    if MASK in module._buffers:
        module._buffers[MASK] = mask
    else:
        module.register_buffer(MASK, mask, persistent=True)
    with torch.no_grad():
        weight.masked_fill_(~mask, 0)
    handle = getattr(module, _GRADIENT_HOOK, None)
    if handle is None or weight not in _MASKED:  # first mask, or a new weight Parameter since the last one
        if handle is not None:
            handle.remove()
        frozen = not weight.requires_grad  # a frozen weight gets the hook too, for when it is trained later
        weight.requires_grad_(True)
        setattr(module, _GRADIENT_HOOK, weight.register_hook(partial(_mask_gradient, weakref.ref(module))))
        weight.requires_grad_(not frozen)
    _MASKED[weight] = weakref.ref(module)
    if _step_hook is None:
        _step_hook = register_optimizer_step_post_hook(_remask_after_step)


def masked_layers(model: nn.Module) -> Dict[str, nn.Module]:
    """path -> module for every layer of ``model`` that carries a pruning mask."""
    return {path: module for path, module in model.named_modules() if mask_of(module) is not None}


def remove_masks(model: nn.Module) -> List[str]:
    """Make the pruning of ``model`` permanent: drop every mask buffer and hook, keep the zeros in the weights.
    Returns the paths of the layers that had a mask."""
    removed = []
    for path, module in masked_layers(model).items():
        handle = getattr(module, _GRADIENT_HOOK, None)
        if handle is not None:
            handle.remove()
            delattr(module, _GRADIENT_HOOK)
        del module._buffers[MASK]
        _MASKED.pop(module.weight, None)
        removed.append(path)
    return removed
