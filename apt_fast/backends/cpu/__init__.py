"""CPU kernels (apt_fast._C), one module per op family; each registers its kernels at import."""

from . import apt_attention, apt_stats, bitmap_linear, distill_loss, flash_attention, quantized_linear  # noqa: F401
