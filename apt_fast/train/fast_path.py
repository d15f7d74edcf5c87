"""The fast path: apt_fast's fused kernels swapped into the model by ``apt_fast.patch`` when it exists."""

from __future__ import annotations

import logging

from torch import nn

logger = logging.getLogger("apt_fast.train")


def apply_fast_path(model: nn.Module, fast: bool) -> str:
    """Patch ``model`` in place when ``fast`` and apt_fast.patch is available; returns what runs (logged)."""
    if not fast:
        message = "fast path off (--no-fast): plain PyTorch modules"
    else:
        import apt_fast

        patch = getattr(apt_fast, "patch", None)
        if patch is None:
            message = "fast path unavailable (apt_fast.patch is not in this build): plain PyTorch modules"
        else:
            message = f"fast path: apt_fast.patch -> {patch(model)}"
    logger.info(message)
    return message
