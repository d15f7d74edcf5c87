"""Pruning masks that hold through training.

A pruned ``nn.Linear`` carries its keep-mask as a persistent bool buffer ``weight_mask`` [N, K] (True = kept), so
its state_dict holds the ordinary ``<path>.weight`` (zeros where pruned) plus ``<path>.weight_mask``; a weight
tied to an embedding is masked once, through the linear layer. Three things keep the pruned entries exactly zero:

* the weight is zeroed where the mask is False when the mask is attached;
* a gradient hook on the weight zeroes the gradient there (so gradient clipping and optimizer state see no
  gradient for pruned weights);
* after every ``optimizer.step()`` of any torch optimizer, the masked weights among that optimizer's parameters
  are zeroed again (a global ``torch.optim`` step post-hook, registered once, that touches only the weights
  registered here). This is what undoes AdamW's update from momentum gathered before pruning; weight decay alone
  keeps a zero at zero.

The weight is registered (gradient hook, post-step re-masking) when the mask is attached and again, if needed,
before each forward of the layer (a forward pre-hook): a deep copy of the model, or a weight Parameter replaced
since, is masked from its first forward on. ``load_state_dict`` re-zeroes the pruned weights after loading (a
post-hook), so rewinding a pruned model to dense earlier weights (lottery tickets) keeps the masks:
``model.load_state_dict(initial_weights, strict=False)``.

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

_MASKED: WeakIdKeyDictionary = WeakIdKeyDictionary()  # weight Parameter -> (weakref to its layer, gradient hook)
_step_hook = None  # the RemovableHandle of the global optimizer hook, registered on first use


def mask_of(module: nn.Module) -> Optional[Tensor]:
    """The keep-mask [N, K] bool of a pruned layer, or None."""
    return module._buffers.get(MASK)


def _layer_mask(module_ref: weakref.ref) -> Optional[Tensor]:
    module = module_ref()
    return None if module is None else mask_of(module)


def _mask_gradient(module_ref: weakref.ref, grad: Tensor) -> Tensor:
    mask = _layer_mask(module_ref)
    return grad if mask is None else grad.masked_fill(~mask, 0)


@torch.no_grad()
def _remask_after_step(optimizer: torch.optim.Optimizer, args, kwargs) -> None:
    if not _MASKED:
        return
    for group in optimizer.param_groups:
        for param in group["params"]:
            entry = _MASKED.get(param)
            mask = None if entry is None else _layer_mask(entry[0])
            if mask is not None:
                param.masked_fill_(~mask, 0)


def _register(module: nn.Module) -> None:
    """Register ``module.weight`` for gradient masking and post-step re-masking, unless it is already."""
    global _step_hook
    weight = module.weight
    entry = _MASKED.get(weight)
    if entry is not None and entry[0]() is module:
        return
    if entry is not None:
        entry[1].remove()
    frozen = not weight.requires_grad  # a frozen weight gets the hook too, for when it is trained later
    weight.requires_grad_(True)
    handle = weight.register_hook(partial(_mask_gradient, weakref.ref(module)))
    weight.requires_grad_(not frozen)
    _MASKED[weight] = (weakref.ref(module), handle)
    if _step_hook is None:
        _step_hook = register_optimizer_step_post_hook(_remask_after_step)


def _register_before_forward(module: nn.Module, args) -> None:
    if mask_of(module) is not None:
        _register(module)


@torch.no_grad()
def _remask_after_load(module: nn.Module, incompatible_keys) -> None:
    mask = mask_of(module)
    if mask is not None:
        module.weight.masked_fill_(~mask, 0)


def attach_mask(module: nn.Linear, mask: Tensor) -> None:  # mask [N, K] bool, True = kept
    """Mask ``module.weight`` (replacing a mask it had): zero it where ``mask`` is False and keep it so."""
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
    if _register_before_forward not in module._forward_pre_hooks.values():
        module.register_forward_pre_hook(_register_before_forward)
    if _remask_after_load not in module._load_state_dict_post_hooks.values():
        module.register_load_state_dict_post_hook(_remask_after_load)
    _register(module)


def masked_layers(model: nn.Module) -> Dict[str, nn.Module]:
    """path -> module for every layer of ``model`` that carries a pruning mask."""
    return {path: module for path, module in model.named_modules() if mask_of(module) is not None}


def remove_masks(model: nn.Module) -> List[str]:
    """Make the pruning of ``model`` permanent: drop every mask buffer and hook, keep the zeros in the weights.
    Returns the paths of the layers that had a mask."""
    removed = []
    for path, module in masked_layers(model).items():
        entry = _MASKED.pop(module.weight, None)
        if entry is not None:
            entry[1].remove()
        for hooks, hook in ((module._forward_pre_hooks, _register_before_forward),
                            (module._load_state_dict_post_hooks, _remask_after_load)):
            for key in [k for k, value in hooks.items() if value is hook]:
                del hooks[key]
        del module._buffers[MASK]
        removed.append(path)
    return removed
