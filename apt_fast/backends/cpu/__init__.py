"""CPU kernels (apt_fast._C), one module per op family; each registers its kernels at import."""

from . import distill_loss, flash_attention, apt_attention, apt_stats, quantized_linear  # noqa: F401
