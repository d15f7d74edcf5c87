"""Drop-in nn.Modules backed by apt_fast's ops."""

from .distillation_loss import DistillationLoss

__all__ = ["DistillationLoss"]
