"""CUDA kernels of apt_fast::distill_loss_fwd: the Triton launchers of apt_fast.kernels, imported on first use
(triton is optional). The ops check the arguments first."""

from __future__ import annotations

from ..registry import register_kernel


@register_kernel("distill_loss_fwd", "CUDA")
def distill_loss_fwd(*args):
    from ...kernels.distill_loss import distill_loss_fwd_triton

    return distill_loss_fwd_triton(*args)
