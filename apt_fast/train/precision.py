"""bf16 mixed precision of the training and evaluation loops, one definition for every command and API.

With ``bf16`` the forward pass and the loss run under ``torch.autocast(device, torch.bfloat16)``: the
projections and the output layer compute in bfloat16 (so the patched attention receives bf16 q/k/v and the
fused distillation loss bf16 logits), autocast's fp32 ops (softmax, layer norm, cross-entropy) stay in
float32, and the weights, their gradients and the optimizer state remain float32 (the master copy the
optimizer updates). Without it every op runs in the weights' dtype.
"""

from __future__ import annotations

import torch
from torch import nn


def autocast(device: torch.device, bf16: bool):
    """bfloat16 autocast on ``device``'s type when ``bf16``, else a context that changes nothing."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def check_master_weights(model: nn.Module, bf16: bool) -> None:
    """bf16 training keeps float32 master weights: a trainable floating-point parameter of another dtype
    (a float16 or bfloat16 checkpoint) is a ValueError naming the flag, the dtype and the parameter."""
    if not bf16:
        return
    others = [(name, p.dtype) for name, p in model.named_parameters()
              if p.requires_grad and p.is_floating_point() and p.dtype != torch.float32]
    if others:
        name, dtype = others[0]
        more = f" and {len(others) - 1} more" if len(others) > 1 else ""
        raise ValueError(f"--bf16 (bf16=True) trains float32 master weights under bfloat16 autocast, but the model's "
                         f"weights are {str(dtype).removeprefix('torch.')} ({name}{more}); give a float32 model or "
                         f"leave out --bf16")
