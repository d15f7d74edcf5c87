"""CUDA kernels (Triton, apt_fast.kernels), one module per op family; each registers its kernels at import.
apt_stats has none: on CUDA its reference runs."""

from . import (  # noqa: F401
    apt_attention,
    bitmap_linear,
    block_linear,
    distill_loss,
    flash_attention,
    layer_fusions,
    nm_linear,
    quantized_linear,
)
