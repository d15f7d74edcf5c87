"""Drop-in nn.Modules backed by apt_fast's ops."""

from .apt_attention import FusedAPTAttention
from .distillation_loss import DistillationLoss

__all__ = ["DistillationLoss", "FusedAPTAttention"]
