"""apt_fast.patch(model) swaps apt_fast's fused modules into a model in place; apt_fast.unpatch(model)
restores the originals. See apt_fast.patching.attention and apt_fast.patching.layers for what is recognised."""

from .patch import patch, unpatch
from .report import PatchReport

__all__ = ["PatchReport", "patch", "unpatch"]
