"""The torch.library namespace `apt_fast`: one file per op with its schema, fake and argument checks.

The plain-PyTorch reference is registered as each op's default kernel (CompositeExplicitAutograd);
apt_fast.backends overrides it per device with the native CPU and Triton kernels.
"""

from . import (
    apt_attention,  # noqa: F401  (defines apt_fast::apt_head_mean_*, apt_attention_*)
    apt_stats,  # noqa: F401  (defines apt_fast::apt_stats_fwd, _bwd)
    bitmap_linear,  # noqa: F401  (defines apt_fast::bitmap_linear, bitmap_linear_backward)
    block_linear,  # noqa: F401  (defines apt_fast::block_linear, block_linear_backward)
    distill_loss,  # noqa: F401  (defines apt_fast::distill_loss_fwd)
    flash_attention,  # noqa: F401  (defines apt_fast::flash_attention_fwd, _bwd)
    layer_fusions,  # noqa: F401  (defines apt_fast::add_layer_norm_fwd, _bwd, bias_gelu_fwd, _bwd)
    nm_linear,  # noqa: F401  (defines apt_fast::nm_linear, nm_linear_backward)
    quantized_linear,  # noqa: F401  (defines apt_fast::int8_linear, fp8_linear, ...)
)
from .library import LIBRARY, OPS

__all__ = ["LIBRARY", "OPS"]
