"""CPU kernels (apt_fast._C), one module per op family; each registers its kernels at import."""

from . import (  # noqa: F401
    apt_attention,
    apt_stats,
    bitmap_linear,
    block_linear,
    distill_loss,
    flash_attention,
    layer_fusions,
    nm_linear,
    quantized_linear,
)
