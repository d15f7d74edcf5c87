"""F-style entry points of apt_fast's ops, one module per op family.

    import apt_fast.functional as AF
    loss = AF.distill_loss(student_logits, teacher_logits, labels, temperature=4.0, alpha=0.7, beta=0.3)
    out = AF.flash_attention(q, k, v, bias=bias)
"""

from .apt_attention import apt_attention
from .bitmap_linear import bitmap_linear
from .block_linear import block_linear
from .distill_loss import distill_loss, fused_linear_distill_loss, sparse_teacher_distill_loss
from .flash_attention import flash_attention
from .layer_fusions import add_layer_norm, bias_gelu
from .nm_linear import nm_linear
from .quantized_linear import fp8_linear, int8_linear

__all__ = ["add_layer_norm", "apt_attention", "bias_gelu",
           "bitmap_linear", "block_linear", "distill_loss", "flash_attention", "fp8_linear",
           "fused_linear_distill_loss", "int8_linear", "nm_linear", "sparse_teacher_distill_loss"]
